"""Conversations: messages in and out, with live events sent once the change is committed."""
import hashlib
import hmac
import secrets

from sqlalchemy import event as sa_event
from sqlalchemy import select
from sqlalchemy.orm import Session, joinedload

from asthron import tenancy
from asthron.extensions import db
from asthron.models.base import utcnow
from asthron.models.chat import (
    ConsentRecord,
    Conversation,
    ConversationOwner,
    Message,
    MessageRole,
    UsageEntry,
    WidgetSettings,
)
from asthron.services import streams, widget_settings


# What the visitor sees: everything but internal staff notes.
VISITOR_ROLES = frozenset({MessageRole.visitor, MessageRole.assistant, MessageRole.staff, MessageRole.system})


def message_json(message):
    """Return a message as the visitor API and the live stream show it."""
    return {"id": message.id, "role": message.role.value, "text": message.text, "author": message.author,
            "time": message.created_at.isoformat() if message.created_at else None}


def add_message(conversation, role, text, *, author=None, meta=None):
    """Store a message in `conversation` and publish it to live streams after commit."""
    message = Message(workspace_id=conversation.workspace_id, conversation_id=conversation.id,
                      role=MessageRole(role), text=text, author=author, meta=meta or {}, created_at=utcnow())
    db.session.add(message)
    conversation.last_message_at = message.created_at
    db.session.flush()
    if message.role in VISITOR_ROLES:  # internal notes never reach the visitor's stream
        publish_after_commit(conversation.id, {"type": "message", "message": message_json(message)})
    # The workspace's staff inbox sees every message, notes included, live.
    publish_after_commit(staff_channel(conversation.workspace_id), {
        "type": "message", "conversation_id": conversation.id, "message": message_json(message)})
    return message


def staff_channel(workspace_id):
    """Return the live-event key of a workspace's staff inbox (conversation ids start with c_, so no clash)."""
    return f"staff:{workspace_id}"


def publish_after_commit(conversation_id, event):
    """Publish `event` to the conversation's streams once the current transaction commits."""
    from flask import current_app

    session = db.session()
    session.info.setdefault("asthron_live_events", []).append(
        (current_app._get_current_object(), conversation_id, event))


def _flush_events(session):
    if session.in_nested_transaction():
        return  # a released SAVEPOINT counts as a commit to SQLAlchemy; wait for the real one
    # After commit the session cannot emit SQL: events are built beforehand, from flushed rows.
    for app, conversation_id, event in session.info.pop("asthron_live_events", []):
        streams.publish(conversation_id, event, app=app)


def _drop_events(session):
    session.info.pop("asthron_live_events", None)


if not getattr(Session, "_asthron_live_events", False):
    sa_event.listen(Session, "after_commit", _flush_events)
    sa_event.listen(Session, "after_soft_rollback", lambda session, tx: _drop_events(session))
    Session._asthron_live_events = True


# --- The visitor side: start a conversation, prove the token, consent, post and read messages ---

MAX_TEXT = 4000
PAGE_SIZE = 100


class ConsentRequired(Exception):
    """The workspace requires consent to its current notice before the visitor may write."""


class WrongNoticeVersion(ValueError):
    """The accepted notice version is not the workspace's current one."""


def hash_token(token):
    """Return the SHA-256 hex digest under which a conversation token is stored."""
    return hashlib.sha256(token.encode()).hexdigest()


def workspace_for_key(key):
    """Return the workspace whose public widget key is `key`, or None."""
    from asthron.models.tenancy import Workspace

    with tenancy.unrestricted():  # the key itself is what identifies the workspace
        return db.session.execute(select(Workspace).where(Workspace.public_key == key)).scalar()


def consent_pending(conversation, settings):
    """Say whether the visitor must still accept the workspace's current notice."""
    return bool(settings.consent_required) and conversation.consent_version != settings.notice_version


def start_conversation(workspace, *, origin=None):
    """Create a conversation for a visitor of `workspace`; return it and its secret token."""
    token = secrets.token_urlsafe(32)
    conversation = Conversation(workspace_id=workspace.id, token_hash=hash_token(token), owner=ConversationOwner.ai,
                                origin=(origin or None) and origin[:300])
    db.session.add(conversation)
    db.session.flush()
    return conversation, token


def check_token(conversation_id, token):
    """Return the conversation `token` opens, its workspace loaded, or None (also when the id is unknown)."""
    opened = open_conversation(conversation_id, token)
    return opened[0] if opened else None


def open_conversation(conversation_id, token):
    """Return (conversation, widget settings) for a valid token in one query, or None."""
    if not conversation_id or not token or len(conversation_id) > 40 or len(token) > 200:
        return None
    query = (select(Conversation, WidgetSettings)
             .outerjoin(WidgetSettings, WidgetSettings.workspace_id == Conversation.workspace_id)
             .options(joinedload(Conversation.workspace)).where(Conversation.id == conversation_id))
    with tenancy.unrestricted():  # the token is the visitor's credential; its workspace comes from the row
        row = db.session.execute(query).first()
    if row is None or not hmac.compare_digest(row[0].token_hash, hash_token(token)):
        return None
    return row[0], row[1] or widget_settings.defaults(row[0].workspace_id)


def record_consent(conversation, settings, notice_version):
    """Store the visitor's acceptance of the workspace's current notice; return the ConsentRecord."""
    if notice_version != settings.notice_version:
        raise WrongNoticeVersion(f"notice_version must be the current notice's version ({settings.notice_version}).")
    record = ConsentRecord(workspace_id=conversation.workspace_id, conversation_id=conversation.id,
                           notice_version=notice_version, accepted_at=utcnow())
    db.session.add(record)
    conversation.consent_version = notice_version
    conversation.consented_at = record.accepted_at
    db.session.flush()
    return record


def post_visitor_message(conversation, settings, text):
    """Store a visitor's message, meter it, and ask the AI for a reply when the AI owns the conversation."""
    from asthron import jobs

    if consent_pending(conversation, settings):
        raise ConsentRequired("Accept the notice before sending a message.")
    message = add_message(conversation, MessageRole.visitor.value, text)
    db.session.add(UsageEntry(workspace_id=conversation.workspace_id, day=message.created_at.date(), kind="message",
                              conversation_id=conversation.id, created_at=message.created_at))
    if conversation.owner == ConversationOwner.ai:
        jobs.add(db.session, "ai.reply", conversation_id=conversation.id, message_id=message.id)
    elif conversation.owner == ConversationOwner.closed:
        from asthron.services import handoff  # the visitor came back after staff closed it: the team answers

        handoff.request_handoff(conversation, reason=REOPENED_BY_VISITOR, announce=False)
    return message


REOPENED_BY_VISITOR = "The visitor wrote again after the chat was closed."


def list_messages(conversation_id, *, after=0, limit=PAGE_SIZE):
    """Return up to `limit` messages the visitor may see with an id above `after`, oldest first (no notes)."""
    return list(db.session.scalars(select(Message).where(Message.conversation_id == conversation_id,
                                                         Message.id > after, Message.role.in_(VISITOR_ROLES))
                                   .order_by(Message.id).limit(limit)))
