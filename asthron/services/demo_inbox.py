"""The demo's inbox: handoff settings, canned replies, available staff and a conversation in each state.

Idempotent: settings and canned replies are refreshed by name, availability is set once, and the
sample conversations are created only when the workspace has none marked as demo conversations.
"""
import secrets
from datetime import timedelta

from sqlalchemy import select

from asthron.extensions import db
from asthron.models.base import utcnow
from asthron.models.chat import Conversation, ConversationOwner, Message, MessageRole
from asthron.models.inbox import CannedReply, InboxSettings, StaffAvailability
from asthron.services import conversations, handoff

DEMO_ORIGIN = "demo:inbox"  # marks the sample conversations, so a second seed does not add more
CANNED = [
    ("Thanks, one moment", "Thank you! Give me a moment while I check that for you."),
    ("Book a call", "I'd be happy to set up a call. Which day and time suit you best?"),
    ("Anything else?", "Is there anything else I can help you with today?"),
]
# (owner, visitor text, the reply that followed, or None)
SAMPLES = [
    (ConversationOwner.ai, "What are your opening hours?", "We are open on weekdays; see the hours on our site."),
    (ConversationOwner.waiting, "Can I talk to a real person about my booking?", None),
    (ConversationOwner.human, "I need to move my appointment to next week.", "Of course, which day works for you?"),
    (ConversationOwner.closed, "Thanks, that is all!", "You're welcome, have a nice day."),
]


def seed_workspace(workspace, *, available_user_ids=()):
    """Give a demo workspace inbox settings, canned replies, available staff and sample conversations."""
    settings = db.session.execute(select(InboxSettings).where(InboxSettings.workspace_id == workspace.id)).scalar()
    if settings is None:
        db.session.add(InboxSettings(workspace_id=workspace.id, auto_assign=True,
                                     expected_reply="We usually reply within an hour on weekdays."))
    titles = set(db.session.scalars(select(CannedReply.title).where(CannedReply.workspace_id == workspace.id)))
    for title, body in CANNED:
        if title not in titles:
            db.session.add(CannedReply(workspace_id=workspace.id, title=title, body=body))
    workers = [uid for uid in available_user_ids if handoff.can_work(uid, workspace.id)]
    for user_id in workers:
        found = db.session.execute(select(StaffAvailability).where(
            StaffAvailability.workspace_id == workspace.id, StaffAvailability.user_id == user_id)).scalar()
        if found is None:
            db.session.add(StaffAvailability(workspace_id=workspace.id, user_id=user_id, available=True))
    db.session.flush()
    if workers and not db.session.scalar(select(Conversation.id).where(
            Conversation.workspace_id == workspace.id, Conversation.origin == DEMO_ORIGIN).limit(1)):
        _sample_conversations(workspace, assignee_id=workers[0])


def _sample_conversations(workspace, *, assignee_id):
    now = utcnow()
    for age, (owner, question, answer) in enumerate(SAMPLES, start=1):
        when = now - timedelta(minutes=15 * age)
        conversation = Conversation(workspace_id=workspace.id, token_hash=secrets.token_hex(32), owner=owner,
                                    origin=DEMO_ORIGIN, needs_human=owner == ConversationOwner.waiting,
                                    flag_reason="The visitor asked for a person." if owner != ConversationOwner.ai
                                    else None, handoff_at=when if owner != ConversationOwner.ai else None,
                                    assignee_id=assignee_id if owner == ConversationOwner.human else None,
                                    closed_at=when if owner == ConversationOwner.closed else None)
        db.session.add(conversation)
        db.session.flush()
        conversations.add_message(conversation, MessageRole.visitor.value, question)
        if answer:
            role = MessageRole.assistant if owner == ConversationOwner.ai else MessageRole.staff
            author = "Assistant" if role == MessageRole.assistant else handoff.user_name(assignee_id)
            conversations.add_message(conversation, role.value, answer, author=author)
        if owner == ConversationOwner.human:
            conversations.add_message(conversation, MessageRole.note.value,
                                      "Internal note: regular patient, prefers mornings.",
                                      author=handoff.user_name(assignee_id))
        for message in db.session.scalars(select(Message).where(Message.conversation_id == conversation.id)):
            message.created_at = when  # the samples look like they came in over the last hour
        conversation.last_message_at = when
    db.session.flush()
