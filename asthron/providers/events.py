"""Typed domain events that the core fans out to plugins through the `track_event` hook.

Events carry ids and facts about what happened, not personal data: a plugin that needs more asks
the REST API with its own key, under the workspace's permissions.
"""
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import ClassVar


def _now():
    return datetime.now(UTC)


@dataclass(frozen=True, kw_only=True)
class Event:
    """Something that happened in one workspace.

    :param workspace_id: the workspace it happened in.
    :param occurred_at: when, in UTC (defaults to now).
    """

    name: ClassVar[str] = "event"
    workspace_id: int
    occurred_at: datetime = field(default_factory=_now)

    def to_dict(self):
        """Return the event as a JSON-ready dict, with its name."""
        data = {key: value.isoformat() if isinstance(value, datetime) else value
                for key, value in asdict(self).items()}
        return {"name": self.name, **data}


@dataclass(frozen=True, kw_only=True)
class MessageReceived(Event):
    """A visitor sent a message.

    :param conversation_id: the conversation the message belongs to.
    :param message_id: the stored message.
    """

    name: ClassVar[str] = "message.received"
    conversation_id: str
    message_id: int


@dataclass(frozen=True, kw_only=True)
class LeadCreated(Event):
    """A lead was captured.

    :param lead_id: the new lead.
    :param conversation_id: the conversation it came from, if any.
    """

    name: ClassVar[str] = "lead.created"
    lead_id: int
    conversation_id: str | None = None


@dataclass(frozen=True, kw_only=True)
class LeadUpdated(Event):
    """A lead's details, score or stage changed, or other leads were merged into it.

    :param lead_id: the lead that changed (the one kept, after a merge).
    :param fields: the keys of what changed, e.g. ("email", "budget", "score", "stage"); never their values.
    :param merged_lead_ids: leads merged into this one and deleted, if any.
    """

    name: ClassVar[str] = "lead.updated"
    lead_id: int
    fields: tuple = ()
    merged_lead_ids: tuple = ()


@dataclass(frozen=True, kw_only=True)
class LeadQualified(Event):
    """A lead entered the workspace's qualified pipeline stage.

    :param lead_id: the lead.
    :param stage_id: the qualified stage it entered.
    :param score: its score at that moment.
    """

    name: ClassVar[str] = "lead.qualified"
    lead_id: int
    stage_id: int
    score: int


@dataclass(frozen=True, kw_only=True)
class BookingCreated(Event):
    """An appointment was booked.

    :param booking_id: the new booking.
    :param starts_at: when the appointment starts (timezone-aware).
    """

    name: ClassVar[str] = "booking.created"
    booking_id: int
    starts_at: datetime


@dataclass(frozen=True, kw_only=True)
class BookingCancelled(Event):
    """An appointment was cancelled (by the visitor's link or by staff); its slot is free again.

    :param booking_id: the cancelled booking.
    :param starts_at: when the appointment would have started (timezone-aware).
    """

    name: ClassVar[str] = "booking.cancelled"
    booking_id: int
    starts_at: datetime


@dataclass(frozen=True, kw_only=True)
class BookingRescheduled(Event):
    """An appointment was moved to another time.

    :param booking_id: the moved booking.
    :param starts_at: the new start (timezone-aware).
    :param previous_starts_at: the start before the move (timezone-aware).
    """

    name: ClassVar[str] = "booking.rescheduled"
    booking_id: int
    starts_at: datetime
    previous_starts_at: datetime


@dataclass(frozen=True, kw_only=True)
class HandoffRequested(Event):
    """A conversation was handed from the AI to a human.

    :param conversation_id: the conversation handed over.
    :param reason: why, e.g. "visitor asked", "provider failed".
    """

    name: ClassVar[str] = "handoff.requested"
    conversation_id: str
    reason: str


@dataclass(frozen=True, kw_only=True)
class HandoffAssigned(Event):
    """A named staff member now answers a conversation (took it, was assigned it, or reopened it).

    :param conversation_id: the conversation.
    :param user_id: the staff member who answers it now.
    :param by_user_id: who made the change (None: automatic round robin).
    """

    name: ClassVar[str] = "handoff.assigned"
    conversation_id: str
    user_id: int
    by_user_id: int | None = None


@dataclass(frozen=True, kw_only=True)
class HandoffReturned(Event):
    """Staff handed a conversation back to the AI.

    :param conversation_id: the conversation.
    :param by_user_id: the staff member who handed it back.
    """

    name: ClassVar[str] = "handoff.returned"
    conversation_id: str
    by_user_id: int


@dataclass(frozen=True, kw_only=True)
class ConversationClosed(Event):
    """Staff closed a conversation.

    :param conversation_id: the conversation.
    :param by_user_id: the staff member who closed it.
    """

    name: ClassVar[str] = "conversation.closed"
    conversation_id: str
    by_user_id: int


@dataclass(frozen=True, kw_only=True)
class PaymentReceived(Event):
    """A payment was confirmed by a gateway.

    :param payment_id: the stored payment.
    :param amount_minor: the amount in the currency's minor unit (cents).
    :param currency: ISO 4217 code, e.g. "EUR".
    """

    name: ClassVar[str] = "payment.received"
    payment_id: int
    amount_minor: int
    currency: str
