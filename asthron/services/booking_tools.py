"""The AI's booking tools: `list_slots` and `book`, run by the server within the conversation's workspace.

`book` never books on the model's word alone. Its first call checks the slot and returns a signed
confirmation code bound to the conversation, the exact booking details and the visitor's latest
message; a second call with that code books only if the visitor has written since (the model must
ask and the visitor must answer). The code expires after 30 minutes and cannot be made up by the
model. A workspace enables the tools in its widget settings (they are not on by default: a
workspace without services would offer tools that can only fail).
"""
import hashlib
from datetime import date

from flask import current_app
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from sqlalchemy import func, select

from asthron.extensions import db
from asthron.models.base import utcnow
from asthron.models.chat import Message, MessageRole
from asthron.providers.ai import Tool
from asthron.services import availability, booking
from asthron.services.tools import ToolArgumentError, _only, _text, register

CONFIRM_SALT = "asthron.booking.ai-confirm"
CONFIRM_MAX_AGE = 30 * 60
MAX_LISTED = 24

LIST_SLOTS = Tool(
    name="list_slots",
    description="List the services that can be booked, or, with service_id, the free start times of one "
                "service. Times are ISO 8601 in the given time zone (the business's zone by default).",
    parameters={"type": "object", "additionalProperties": False, "properties": {
        "service_id": {"type": "integer", "description": "The service, from a list_slots call without it."},
        "date": {"type": "string", "description": "The first day to look at, YYYY-MM-DD (default today)."},
        "days": {"type": "integer", "minimum": 1, "maximum": 7, "description": "How many days (default 3)."},
        "time_zone": {"type": "string", "description": "The visitor's IANA time zone, e.g. Europe/Paris."},
    }},
)
BOOK = Tool(
    name="book",
    description="Book a free slot for the visitor. First call it without confirmation: it checks the slot and "
                "returns a confirmation code and a summary. Read the summary to the visitor and ask them to "
                "confirm. Only after the visitor says yes, call it again with the same details and the code.",
    parameters={"type": "object", "additionalProperties": False,
                "required": ["service_id", "start", "name", "email"], "properties": {
                    "service_id": {"type": "integer"},
                    "start": {"type": "string", "description": "A start time exactly as list_slots gave it."},
                    "name": {"type": "string", "maxLength": 200},
                    "email": {"type": "string", "maxLength": 254},
                    "time_zone": {"type": "string", "description": "The visitor's IANA time zone."},
                    "confirmation": {"type": "string", "description": "The code from the first call, once the "
                                                                      "visitor has confirmed."},
                }},
)


def _zone_name(conversation, arguments):
    name = _text(arguments, "time_zone", limit=64) or conversation.workspace.time_zone or "UTC"
    try:
        availability.zone(name)
    except ValueError as exc:
        raise ToolArgumentError(str(exc)) from None
    return name


def _service(conversation, arguments):
    service_id = arguments.get("service_id")
    if not isinstance(service_id, int) or isinstance(service_id, bool):
        raise ToolArgumentError("service_id must be a service's id (a whole number).")
    service = availability.service_in_workspace(conversation.workspace_id, service_id)
    if service is None:
        raise ToolArgumentError("There is no such service here.")
    return service


def list_slots(conversation, arguments):
    """Return the bookable services, or the free starts of one service in the visitor's zone."""
    _only(arguments, ("service_id", "date", "days", "time_zone"))
    if arguments.get("service_id") is None:
        return {"ok": True, "services": [{"id": s.id, "name": s.name, "duration_minutes": s.duration_minutes,
                                          "price": s.price_text}
                                         for s in availability.bookable_services(conversation.workspace_id)]}
    service = _service(conversation, arguments)
    tz_name = _zone_name(conversation, arguments)
    tz = availability.zone(tz_name)
    days = arguments.get("days", 3)
    if not isinstance(days, int) or not 1 <= days <= 7:
        raise ToolArgumentError("days must be a whole number from 1 to 7.")
    raw = _text(arguments, "date", limit=10)
    try:
        first = date.fromisoformat(raw) if raw else utcnow().astimezone(tz).date()
    except ValueError:
        raise ToolArgumentError("date must be YYYY-MM-DD.") from None
    start, end = availability.visitor_window(first, days, tz)
    starts = availability.listing(service, start=start, end=end).starts()
    return {"ok": True, "service": service.name, "time_zone": tz_name,
            "slots": availability.isoformat_local(starts[:MAX_LISTED], tz), "more": len(starts) > MAX_LISTED}


def _serializer():
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt=CONFIRM_SALT)


def _last_visitor_message_id(conversation):
    return db.session.scalar(select(func.max(Message.id)).where(Message.conversation_id == conversation.id,
                                                              Message.role == MessageRole.visitor)) or 0


def book(conversation, arguments):
    """Check a slot and return a confirmation code, or, given a valid code after the visitor answered, book it."""
    _only(arguments, ("service_id", "start", "name", "email", "time_zone", "confirmation"))
    service = _service(conversation, arguments)
    tz_name = _zone_name(conversation, arguments)
    try:
        name, email, start, _tz = booking.clean_request(name=arguments.get("name"), email=arguments.get("email"),
                                                         start=arguments.get("start"), visitor_time_zone=tz_name)
    except booking.BookingInvalid as exc:
        raise ToolArgumentError(" ".join(f"{k}: {v}" for k, v in exc.errors.items())) from None
    digest = booking.fingerprint(conversation=conversation.id, service_id=service.id, start=start, name=name,
                                 email=email)
    code = arguments.get("confirmation")
    if code is None:
        if not availability.free_resources_at(service, start):
            return {"ok": False, "error": "That time is not free. Call list_slots and offer another."}
        local = start.astimezone(availability.zone(tz_name))
        code = _serializer().dumps({"f": digest, "m": _last_visitor_message_id(conversation)})
        return {"ok": True, "needs_confirmation": True, "confirmation": code,
                "summary": f"{service.name} on {local:%A %d %B %Y at %H:%M} ({tz_name}) for {name} <{email}>",
                "next": "Ask the visitor to confirm these details; call book again with the code only if they agree."}
    return _confirmed(conversation, service, code, digest, start=start, name=name, email=email, tz_name=tz_name)


def _confirmed(conversation, service, code, digest, *, start, name, email, tz_name):
    try:
        data = _serializer().loads(code if isinstance(code, str) else "", max_age=CONFIRM_MAX_AGE)
    except SignatureExpired:
        raise ToolArgumentError("The confirmation code has expired. Call book without it again.") from None
    except BadSignature:
        raise ToolArgumentError("That is not a confirmation code from book, or the details changed.") from None
    if not isinstance(data, dict) or data.get("f") != digest:
        raise ToolArgumentError("That is not a confirmation code from book, or the details changed.")
    if _last_visitor_message_id(conversation) <= data.get("m", 0):
        raise ToolArgumentError("The visitor has not answered yet. Ask them to confirm first.")
    try:
        made, _created = booking.create(
            conversation.workspace_id, service_id=service.id, start=start, name=name, email=email,
            visitor_time_zone=tz_name, conversation_id=conversation.id, source="ai",
            idempotency_key="ai:" + hashlib.sha256(code.encode()).hexdigest()[:40])
    except booking.BookingError as exc:
        return {"ok": False, "error": str(exc)}
    local = availability.as_utc(made.start_at).astimezone(availability.zone(tz_name))
    return {"ok": True, "booked": True, "reference": made.reference,
            "summary": f"{service.name} on {local:%A %d %B %Y at %H:%M} ({tz_name}); "
                       "a confirmation email is on its way."}


register(LIST_SLOTS, list_slots)
register(BOOK, book)
