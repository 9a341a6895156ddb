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
        data = asdict(self)
        data["occurred_at"] = self.occurred_at.isoformat()
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
class BookingCreated(Event):
    """An appointment was booked.

    :param booking_id: the new booking.
    :param starts_at: when the appointment starts (timezone-aware).
    """

    name: ClassVar[str] = "booking.created"
    booking_id: int
    starts_at: datetime

    def to_dict(self):
        data = super().to_dict()
        data["starts_at"] = self.starts_at.isoformat()
        return data


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
