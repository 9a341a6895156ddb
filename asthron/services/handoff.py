"""Human handoff: who answers a conversation (the AI, nobody yet, a named staff member, nobody: closed).

Every change of owner is one conditional UPDATE (`... WHERE owner IN (...)`) whose row count says
whether this caller won, so two staff taking the same conversation at once cannot both succeed:
on PostgreSQL the second UPDATE waits for the first transaction's row lock and then finds the
owner changed; on SQLite writers take turns on the database lock. The loser gets `AlreadyTaken`
naming the winner. Each change is audited, emitted as a domain event, and published after commit
to the visitor's stream (`state`) and to the workspace's staff channel (the inbox's live view).
Callers commit.
"""
import logging

from flask_appbuilder.security.sqla.models import User
from sqlalchemy import or_, select, update

from asthron import audit, tenancy
from asthron.extensions import db
from asthron.models.base import utcnow
from asthron.models.chat import Conversation, ConversationOwner, MessageRole
from asthron.models.inbox import InboxSettings, StaffAvailability
from asthron.models.tenancy import Membership, Role, Workspace
from asthron.providers.events import ConversationClosed, HandoffAssigned, HandoffRequested, HandoffReturned
from asthron.services import conversations, events

log = logging.getLogger(__name__)

HANDOFF_NOTICE = "A person will join shortly."
BACK_TO_AI_NOTICE = "You are chatting with the assistant again."
CLOSED_NOTICE = "This conversation was closed. Write again any time."
WORKER_ROLES = (Role.staff, Role.workspace_admin, Role.agency_admin)
OPEN = (ConversationOwner.ai, ConversationOwner.waiting, ConversationOwner.human)


class HandoffError(Exception):
    """A handoff change that cannot be made; the message is shown to staff as is."""


class NotFound(HandoffError):
    """The conversation does not exist in the caller's workspaces."""


class NotAllowed(HandoffError):
    """The person may not work this conversation (not staff of its workspace, or read-only)."""


class InvalidTransition(HandoffError):
    """The conversation's current owner does not allow this change."""


class AlreadyTaken(HandoffError):
    """Someone else took the conversation first."""

    def __init__(self, conversation_id, *, user_id, name):
        super().__init__(f"{name} has already taken this conversation.")
        self.conversation_id, self.user_id, self.name = conversation_id, user_id, name


# --- People ------------------------------------------------------------------------------------------

def display_name(user):
    """Return the name visitors and colleagues see for a staff member (their first name, else user name)."""
    if user is None:
        return None
    return (user.first_name or "").strip() or user.username


def user_name(user_id):
    """Return the display name of user `user_id`, or None."""
    with tenancy.unrestricted():
        return display_name(db.session.get(User, user_id)) if user_id else None


def can_work(user_id, workspace_id):
    """Say whether a user is active staff (or an admin) of the workspace, not a read-only client."""
    with tenancy.unrestricted():
        agency_id = db.session.scalar(select(Workspace.agency_id).where(Workspace.id == workspace_id))
        user = db.session.get(User, user_id) if user_id else None
        if user is None or not user.active or agency_id is None:
            return False
        found = db.session.execute(select(Membership.id).where(
            Membership.user_id == user_id,
            or_((Membership.workspace_id == workspace_id) & Membership.role.in_(WORKER_ROLES),
                (Membership.agency_id == agency_id) & (Membership.role == Role.agency_admin))).limit(1)).first()
        return found is not None


def _require_worker(user_id, workspace_id, *, whom="You"):
    if not can_work(user_id, workspace_id):
        verb = "do" if whom == "You" else "does"
        raise NotAllowed(f"{whom} {verb} not work in this conversation's workspace.")


def settings_for(workspace_id):
    """Return the workspace's inbox settings, or unsaved defaults."""
    found = db.session.execute(select(InboxSettings).where(InboxSettings.workspace_id == workspace_id)).scalar()
    if found is not None:
        return found
    defaults = {c.name: c.default.arg for c in InboxSettings.__table__.columns
                if c.default is not None and c.default.is_scalar}
    return InboxSettings(workspace_id=workspace_id, **defaults)


def anyone_available(workspace_id):
    """Say whether a staff member of the workspace is marked available."""
    return _next_available(workspace_id, claim=False) is not None


# --- Transitions ---------------------------------------------------------------------------------------

def get(conversation_id):
    """Return the conversation if the caller's scope sees it; raise NotFound otherwise."""
    conversation = db.session.execute(select(Conversation).where(Conversation.id == str(conversation_id)[:40])
                                      .execution_options(populate_existing=True)).scalar()
    if conversation is None:
        raise NotFound("There is no such conversation.")
    return conversation


def _transition(conversation, allowed_from, **values):
    """Change the conversation if its owner is still one of `allowed_from`; return whether this call won."""
    statement = (update(Conversation)
                 .where(Conversation.id == conversation.id, Conversation.owner.in_(allowed_from))
                 .values(updated_at=utcnow(), **values).execution_options(synchronize_session=False))
    won = db.session.execute(statement).rowcount == 1
    db.session.refresh(conversation)
    return won


def _changed(conversation, action, *, by_user_id=None, **details):
    """Audit, and publish the new state to the visitor and to the workspace's staff."""
    owner = conversation.owner.value
    audit.record_in_session(f"conversation.{action}", target_type="Conversation", target_id=conversation.id,
                            workspace_id=conversation.workspace_id,
                            details={"owner": owner, "assignee_id": conversation.assignee_id, **details})
    staff = user_name(conversation.assignee_id) if conversation.owner == ConversationOwner.human else None
    state = {"type": "state", "owner": owner, "needs_human": conversation.needs_human}
    if staff:
        state["staff"] = staff
    conversations.publish_after_commit(conversation.id, state)
    conversations.publish_after_commit(conversations.staff_channel(conversation.workspace_id), {
        "type": "conversation", "conversation_id": conversation.id, "owner": owner,
        "assignee_id": conversation.assignee_id, "assignee": staff, "action": action, "by_user_id": by_user_id})


def request_handoff(conversation, *, reason, announce=True):
    """Hand an AI-owned (or closed) conversation to the team; return whether it changed (idempotent).

    Round robin assigns it to the available staff member who waited longest when the workspace
    assigns automatically; otherwise it waits in the inbox. `announce` adds a notice for the visitor.
    """
    if conversation.owner in (ConversationOwner.waiting, ConversationOwner.human):
        return False
    reason = (reason or "The visitor asked for a person.")[:200]
    won = _transition(conversation, (ConversationOwner.ai, ConversationOwner.closed), owner=ConversationOwner.waiting,
                      needs_human=True, flag_reason=reason, handoff_at=utcnow(), closed_at=None, assignee_id=None)
    if not won:
        return False
    events.emit(HandoffRequested(workspace_id=conversation.workspace_id, conversation_id=conversation.id,
                                 reason=reason))
    settings = settings_for(conversation.workspace_id)
    picked = _next_available(conversation.workspace_id, claim=True) if settings.auto_assign else None
    assigned = picked is not None and _assign(conversation, picked, by_user_id=None, action="auto_assign",
                                              allowed_from=(ConversationOwner.waiting,), reason=reason)
    if not assigned:
        if announce:
            conversations.add_message(conversation, MessageRole.system.value, HANDOFF_NOTICE)
        _changed(conversation, "handoff", reason=reason)
    _notify_staff(conversation)
    return True


def _notify_staff(conversation):
    from asthron.services import notifications

    notifications.notify_staff(workspace_id=conversation.workspace_id, template="handoff_requested",
                               context={"conversation_id": conversation.id})


def _assign(conversation, user_id, *, by_user_id, allowed_from, action, **details):
    """Give the conversation to `user_id` if its owner is still one of `allowed_from`; say whether it did."""
    won = _transition(conversation, allowed_from, owner=ConversationOwner.human, assignee_id=user_id,
                      needs_human=False, closed_at=None)
    if won:
        name = user_name(user_id)
        conversations.add_message(conversation, MessageRole.system.value, f"{name} from the team joined the chat.")
        events.emit(HandoffAssigned(workspace_id=conversation.workspace_id, conversation_id=conversation.id,
                                    user_id=user_id, by_user_id=by_user_id))
        _changed(conversation, action, by_user_id=by_user_id, **details)
    return won


def _next_available(workspace_id, *, claim):
    """Return the id of the available staff member assigned longest ago (round robin), or None."""
    rows = db.session.execute(
        select(StaffAvailability).where(StaffAvailability.workspace_id == workspace_id,
                                        StaffAvailability.available.is_(True))
        .order_by(StaffAvailability.last_assigned_at.asc().nulls_first(), StaffAvailability.id)).scalars().all()
    for row in rows:
        if can_work(row.user_id, workspace_id):  # a member who left or became read-only is skipped
            if claim:
                row.last_assigned_at = utcnow()
            return row.user_id
    return None


def take(conversation_id, *, user_id):
    """Let a staff member take an AI-owned or waiting conversation; raise AlreadyTaken if someone was first."""
    conversation = get(conversation_id)
    _require_worker(user_id, conversation.workspace_id)
    if conversation.owner == ConversationOwner.human and conversation.assignee_id == user_id:
        return conversation
    if _assign(conversation, user_id, by_user_id=user_id, action="take",
               allowed_from=(ConversationOwner.ai, ConversationOwner.waiting)):
        return conversation
    if conversation.owner == ConversationOwner.human:
        if conversation.assignee_id == user_id:
            return conversation  # a double click: the first one won
        raise AlreadyTaken(conversation.id, user_id=conversation.assignee_id, name=user_name(conversation.assignee_id))
    raise InvalidTransition("This conversation is closed: reopen it to answer.")


def assign(conversation_id, *, user_id, by_user_id):
    """Assign (or reassign) an open conversation to a staff member of its workspace."""
    conversation = get(conversation_id)
    _require_worker(by_user_id, conversation.workspace_id)
    _require_worker(user_id, conversation.workspace_id, whom=user_name(user_id) or "That person")
    if conversation.owner == ConversationOwner.human and conversation.assignee_id == user_id:
        return conversation
    if not _assign(conversation, user_id, by_user_id=by_user_id, allowed_from=OPEN, action="assign"):
        raise InvalidTransition("This conversation is closed: reopen it to assign it.")
    return conversation


def hand_back(conversation_id, *, user_id):
    """Give a conversation back to the AI; it answers the visitor's next message."""
    conversation = get(conversation_id)
    _require_worker(user_id, conversation.workspace_id)
    if conversation.owner == ConversationOwner.ai:
        return conversation
    if not _transition(conversation, (ConversationOwner.waiting, ConversationOwner.human), owner=ConversationOwner.ai,
                       assignee_id=None, needs_human=False, flag_reason=None):
        raise InvalidTransition("This conversation is closed: reopen it first.")
    conversations.add_message(conversation, MessageRole.system.value, BACK_TO_AI_NOTICE)
    events.emit(HandoffReturned(workspace_id=conversation.workspace_id, conversation_id=conversation.id,
                                by_user_id=user_id))
    _changed(conversation, "hand_back", by_user_id=user_id)
    return conversation


def close(conversation_id, *, user_id):
    """Close a conversation: nobody answers it until the visitor writes again or staff reopen it."""
    conversation = get(conversation_id)
    _require_worker(user_id, conversation.workspace_id)
    if conversation.owner == ConversationOwner.closed:
        return conversation
    if not _transition(conversation, OPEN, owner=ConversationOwner.closed, closed_at=utcnow(), needs_human=False):
        return get(conversation_id)  # closed meanwhile by someone else: the same outcome
    conversations.add_message(conversation, MessageRole.system.value, CLOSED_NOTICE)
    events.emit(ConversationClosed(workspace_id=conversation.workspace_id, conversation_id=conversation.id,
                                   by_user_id=user_id))
    _changed(conversation, "close", by_user_id=user_id)
    return conversation


def reopen(conversation_id, *, user_id):
    """Reopen a closed conversation, owned by the staff member who reopens it."""
    conversation = get(conversation_id)
    _require_worker(user_id, conversation.workspace_id)
    if conversation.owner != ConversationOwner.closed:
        raise InvalidTransition("This conversation is not closed.")
    if not _assign(conversation, user_id, by_user_id=user_id, allowed_from=(ConversationOwner.closed,),
                   action="reopen"):
        raise InvalidTransition("This conversation was reopened by someone else.")
    return conversation


def check_lead_rule(lead):
    """Hand the lead's conversation to a person when its score reaches the workspace's threshold."""
    if lead is None or not lead.conversation_id:
        return False
    threshold = settings_for(lead.workspace_id).handoff_score_threshold
    if threshold is None or (lead.score or 0) < threshold:
        return False
    conversation = db.session.get(Conversation, lead.conversation_id)
    if conversation is None or conversation.workspace_id != lead.workspace_id or \
            conversation.owner != ConversationOwner.ai:
        return False
    return request_handoff(conversation, reason=f"Lead score {lead.score} reached {threshold}.")
