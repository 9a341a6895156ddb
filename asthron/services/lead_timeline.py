"""A lead's timeline (its activity entries and its conversation's transcript, merged by time) and who may own it."""
from dataclasses import dataclass
from datetime import datetime, timezone

from sqlalchemy import or_, select

from asthron.extensions import db
from asthron.models.chat import Message
from asthron.models.leads import LeadActivity
from asthron.models.tenancy import Membership, Role, Workspace
from asthron.tenancy import unrestricted

TRANSCRIPT_LIMIT = 500
ACTIVITY_LIMIT = 500
ROLE_LABELS = {"visitor": "Visitor", "assistant": "Assistant", "staff": "Team", "system": "System"}
OWNER_ROLES = (Role.staff, Role.workspace_admin, Role.agency_admin)


@dataclass(frozen=True)
class Entry:
    """One line of the timeline: when, what kind, who, and the text (rendered as text, never HTML)."""

    at: datetime
    kind: str  # an ActivityKind value, or "message"
    who: str
    text: str


def _aware(moment):
    if moment is None:
        return datetime.min.replace(tzinfo=timezone.utc)
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def entries(lead):
    """Return the lead's timeline, oldest first: activities and the messages of its conversation."""
    items = []
    activities = db.session.scalars(select(LeadActivity).where(LeadActivity.lead_id == lead.id)
                                    .order_by(LeadActivity.id.desc()).limit(ACTIVITY_LIMIT)).all()
    for activity in activities:
        who = activity.actor.username if activity.actor is not None else "System"
        items.append(Entry(_aware(activity.created_at), activity.kind.value, who, activity.summary))
    if lead.conversation_id:
        messages = db.session.scalars(select(Message).where(Message.conversation_id == lead.conversation_id)
                                      .order_by(Message.id.desc()).limit(TRANSCRIPT_LIMIT)).all()
        for message in messages:
            role = message.role.value
            who = ROLE_LABELS.get(role, role) + (f" ({message.author})" if message.author else "")
            items.append(Entry(_aware(message.created_at), "message", who, message.text))
    return sorted(items, key=lambda e: e.at)


def owner_choices(workspace_id):
    """Return [(user id, username)] of the people who may own a lead of the workspace: its staff and admins."""
    from flask_appbuilder.security.sqla.models import User

    # Memberships of the agency's admins are outside a staff member's scope; the caller has already
    # been shown the workspace, so reading who works in it is within what they may see.
    with unrestricted():
        agency_id = db.session.execute(select(Workspace.agency_id).where(Workspace.id == workspace_id)).scalar()
        rows = db.session.execute(
            select(User.id, User.username).join(Membership, Membership.user_id == User.id)
            .where(or_(Membership.workspace_id == workspace_id, Membership.agency_id == agency_id),
                   Membership.role.in_(OWNER_ROLES), User.active.is_(True))
            .order_by(User.username).distinct()).all()
    return [(uid, name) for uid, name in rows]
