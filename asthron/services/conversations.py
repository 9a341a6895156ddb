"""Conversations: messages in and out, with live events sent once the change is committed."""
from sqlalchemy import event as sa_event
from sqlalchemy.orm import Session

from asthron.extensions import db
from asthron.models.chat import Message, MessageRole
from asthron.models.base import utcnow
from asthron.services import streams


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
    publish_after_commit(conversation.id, {"type": "message", "message": message_json(message)})
    return message


def publish_after_commit(conversation_id, event):
    """Publish `event` to the conversation's streams once the current transaction commits."""
    from flask import current_app

    session = db.session()
    session.info.setdefault("asthron_live_events", []).append(
        (current_app._get_current_object(), conversation_id, event))


def _flush_events(session):
    # After commit the session cannot emit SQL: events are built beforehand, from flushed rows.
    for app, conversation_id, event in session.info.pop("asthron_live_events", []):
        streams.publish(conversation_id, event, app=app)


def _drop_events(session):
    session.info.pop("asthron_live_events", None)


if not getattr(Session, "_asthron_live_events", False):
    sa_event.listen(Session, "after_commit", _flush_events)
    sa_event.listen(Session, "after_soft_rollback", lambda session, tx: _drop_events(session))
    Session._asthron_live_events = True
