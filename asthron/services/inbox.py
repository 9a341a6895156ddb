"""The staff inbox: lists by tab, staff replies and internal notes, availability, and the visitor's email.

Reads run under the caller's tenant scope (the query guard), so a list or a conversation of another
tenant is simply not there. Changes of owner are in asthron/services/handoff.py. Callers commit.
"""
from dataclasses import dataclass

from flask_appbuilder.security.sqla.models import User
from sqlalchemy import func, select

from asthron import tenancy
from asthron.extensions import db
from asthron.models.base import utcnow
from asthron.models.chat import Conversation, ConversationOwner, Message, MessageRole
from asthron.models.inbox import CannedReply, StaffAvailability
from asthron.models.tenancy import Workspace
from asthron.services import conversations, handoff

TABS = ("waiting", "mine", "open", "closed")
LIST_LIMIT = 100
TRANSCRIPT_LIMIT = 500
MAX_TEXT = conversations.MAX_TEXT
PREVIEW_CHARS = 120


class InboxInputError(ValueError):
    """Input staff or a visitor can fix; `errors` maps field names to messages."""

    def __init__(self, errors):
        super().__init__("; ".join(errors.values()))
        self.errors = errors


@dataclass(frozen=True)
class Row:
    """One line of an inbox list."""

    conversation: Conversation
    workspace_name: str
    assignee: str | None
    preview: str | None


def clean_text(value, field="text"):
    """Return trimmed message text of 1 to MAX_TEXT characters, or raise InboxInputError."""
    text = (value or "").strip() if isinstance(value, str) else ""
    if not text:
        raise InboxInputError({field: "Write something first."})
    if len(text) > MAX_TEXT:
        raise InboxInputError({field: f"At most {MAX_TEXT} characters."})
    if "\x00" in text:
        raise InboxInputError({field: "The text contains a NUL character."})
    return text


# --- Lists --------------------------------------------------------------------------------------------

def conversations_for(tab, *, user_id, workspace_id=None, limit=LIST_LIMIT):
    """Return the Rows of one inbox tab in the caller's workspaces (or one of them), most urgent first."""
    query = select(Conversation).where(Conversation.last_message_at.is_not(None))
    if workspace_id is not None:
        query = query.where(Conversation.workspace_id == workspace_id)
    if tab == "waiting":
        query = query.where(Conversation.owner == ConversationOwner.waiting).order_by(Conversation.handoff_at)
    elif tab == "mine":
        query = query.where(Conversation.owner == ConversationOwner.human, Conversation.assignee_id == user_id)
        query = query.order_by(Conversation.last_message_at.desc())
    elif tab == "closed":
        query = query.where(Conversation.owner == ConversationOwner.closed).order_by(Conversation.closed_at.desc())
    else:
        query = query.where(Conversation.owner.in_(handoff.OPEN)).order_by(Conversation.last_message_at.desc())
    found = db.session.execute(query.limit(limit)).scalars().all()
    return _rows(found)


def _rows(found):
    ids = [c.id for c in found]
    if not ids:
        return []
    # The preview is what the visitor last said: that is what staff triage by.
    last = (select(func.max(Message.id)).where(Message.conversation_id.in_(ids), Message.role == MessageRole.visitor)
            .group_by(Message.conversation_id))
    previews = {m.conversation_id: m.text for m in db.session.execute(
        select(Message).where(Message.id.in_(last))).scalars()}
    names = workspace_names({c.workspace_id for c in found})
    people = _names({c.assignee_id for c in found if c.assignee_id})
    return [Row(c, names.get(c.workspace_id, ""), people.get(c.assignee_id),
                (previews.get(c.id) or "")[:PREVIEW_CHARS] or None) for c in found]


def workspace_names(ids):
    """Return {workspace id: name} for the given ids that the caller's scope sees."""
    return dict(db.session.execute(select(Workspace.id, Workspace.name).where(Workspace.id.in_(ids))).all())


def _names(user_ids):
    if not user_ids:
        return {}
    with tenancy.unrestricted():
        return {u.id: handoff.display_name(u) for u in db.session.scalars(select(User).where(User.id.in_(user_ids)))}


def counts(*, user_id, workspace_id=None):
    """Return {tab: number of conversations} for the tab badges (up to LIST_LIMIT each)."""
    return {tab: len(conversations_for(tab, user_id=user_id, workspace_id=workspace_id)) for tab in TABS}


def transcript(conversation_id, *, after=0, limit=TRANSCRIPT_LIMIT):
    """Return the conversation's latest messages after id `after`, notes included, oldest first."""
    rows = db.session.execute(select(Message).where(Message.conversation_id == conversation_id, Message.id > after)
                              .order_by(Message.id.desc()).limit(limit)).scalars().all()
    return list(reversed(rows))


def staff_message_json(message):
    """Return a message as the inbox shows it: the visitor's view plus whether it is an internal note."""
    return {**conversations.message_json(message), "internal": message.role == MessageRole.note}


def conversation_json(conversation):
    """Return the inbox header of one conversation."""
    return {"id": conversation.id, "workspace_id": conversation.workspace_id, "owner": conversation.owner.value,
            "assignee_id": conversation.assignee_id, "assignee": handoff.user_name(conversation.assignee_id),
            "needs_human": conversation.needs_human, "flag_reason": conversation.flag_reason,
            "has_email": bool(conversation.visitor_email)}


# --- Staff writing --------------------------------------------------------------------------------------

def reply(conversation_id, *, user_id, text):
    """Send a staff reply to the visitor; taking the conversation first if nobody has it."""
    text = clean_text(text)
    conversation = handoff.get(conversation_id)
    if not handoff.can_work(user_id, conversation.workspace_id):
        raise handoff.NotAllowed("You may read this conversation but not answer it.")
    if conversation.owner == ConversationOwner.closed:
        raise handoff.InvalidTransition("This conversation is closed: reopen it to answer.")
    if conversation.owner in (ConversationOwner.ai, ConversationOwner.waiting):
        handoff.take(conversation_id, user_id=user_id)  # the AI must not answer over a person
    message = conversations.add_message(conversation, MessageRole.staff.value, text, author=handoff.user_name(user_id),
                                        meta={"user_id": user_id})
    _send_transcript_if_asked(conversation)
    return message


def add_note(conversation_id, *, user_id, text):
    """Add an internal note that only staff see (never the visitor, never the AI)."""
    text = clean_text(text)
    conversation = handoff.get(conversation_id)
    if not handoff.can_work(user_id, conversation.workspace_id):
        raise handoff.NotAllowed("You may read this conversation but not write in it.")
    return conversations.add_message(conversation, MessageRole.note.value, text, author=handoff.user_name(user_id),
                                     meta={"user_id": user_id})


def _send_transcript_if_asked(conversation):
    """Email the transcript to a visitor who left an address, once per visitor turn, when staff answer."""
    if not conversation.visitor_email:
        return None
    last_visitor = db.session.scalar(select(func.max(Message.created_at)).where(
        Message.conversation_id == conversation.id, Message.role == MessageRole.visitor))
    sent = conversation.transcript_sent_at
    if sent is not None and (last_visitor is None or _aware(last_visitor) <= _aware(sent)):
        return None
    from asthron.services import notifications

    conversation.transcript_sent_at = utcnow()
    return notifications.send_email(workspace_id=conversation.workspace_id, to=conversation.visitor_email,
                                    template="transcript", context={"conversation_id": conversation.id})


def _aware(moment):
    from datetime import timezone

    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)  # SQLite returns naive times


# --- Availability and canned replies -----------------------------------------------------------------------

def availability(user_id, workspace_id):
    """Return whether the user takes new handoffs in the workspace."""
    return bool(db.session.scalar(select(StaffAvailability.available).where(
        StaffAvailability.user_id == user_id, StaffAvailability.workspace_id == workspace_id)))


def set_available(user_id, workspace_id, available):
    """Mark the user available (or away) for new handoffs in the workspace; return the row."""
    if not handoff.can_work(user_id, workspace_id):
        raise handoff.NotAllowed("You do not work in this workspace.")
    row = db.session.execute(select(StaffAvailability).where(
        StaffAvailability.user_id == user_id, StaffAvailability.workspace_id == workspace_id)).scalar()
    if row is None:
        row = StaffAvailability(user_id=user_id, workspace_id=workspace_id)
        db.session.add(row)
    row.available = bool(available)
    db.session.flush()
    return row


def canned_replies(workspace_ids):
    """Return the canned replies of the given workspaces, by title."""
    return db.session.execute(select(CannedReply).where(CannedReply.workspace_id.in_(workspace_ids))
                              .order_by(CannedReply.title)).scalars().all()


def workers(workspace_id):
    """Return [(user id, display name)] of the staff who may answer in the workspace."""
    from asthron.models.tenancy import Membership

    with tenancy.unrestricted():
        agency_id = db.session.scalar(select(Workspace.agency_id).where(Workspace.id == workspace_id))
        ids = set(db.session.scalars(select(Membership.user_id).where(
            (Membership.workspace_id == workspace_id) | (Membership.agency_id == agency_id))))
        users = db.session.scalars(select(User).where(User.id.in_(ids), User.active.is_(True))).all()
    return sorted(((u.id, handoff.display_name(u)) for u in users if handoff.can_work(u.id, workspace_id)),
                  key=lambda pair: pair[1].lower())


# --- The visitor's side ---------------------------------------------------------------------------------

def visitor_state(conversation):
    """Return what the widget shows about who answers: owner, staff name, reply time, whether to ask an email."""
    state = {"owner": conversation.owner.value, "staff": None}
    if conversation.owner == ConversationOwner.human:
        state["staff"] = handoff.user_name(conversation.assignee_id)
    away = conversation.owner == ConversationOwner.waiting and not handoff.anyone_available(conversation.workspace_id)
    settings = handoff.settings_for(conversation.workspace_id)
    state["away"] = away
    state["expected_reply"] = settings.expected_reply if away else None
    state["ask_email"] = bool(away and settings.ask_email_when_away and not conversation.visitor_email)
    return state


def set_visitor_email(conversation, value):
    """Store the address a visitor left to receive the answer by email; raise InboxInputError if invalid."""
    from asthron.services.tools import ToolArgumentError, valid_email

    email = value.strip() if isinstance(value, str) else ""
    if not email:
        raise InboxInputError({"email": "email is required."})
    try:
        email = valid_email(email)
    except ToolArgumentError as exc:
        raise InboxInputError({"email": str(exc)}) from None
    conversation.visitor_email = email
    db.session.flush()
    return email
