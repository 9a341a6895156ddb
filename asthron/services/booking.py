"""Bookings: create (idempotent, never double), cancel, reschedule, signed manage links, reminders.

Every change runs in the caller's transaction: the booking row, its audit entry, the event, the
emails and reminders (outbox jobs) and the calendar sync commit together or not at all. The
database refuses an overlapping booking (see asthron/models/booking.py); this module turns that
refusal into `SlotTaken`.

Leads: a booking joins the timeline of the conversation's lead, else of the workspace's lead with
the same email; when there is none, the booking creates one through `leads.capture` (source
"widget", or "ai" for the AI's `book` tool), so every person who booked is in the pipeline.
"""
import hashlib
import json
import logging
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

from flask import current_app
from itsdangerous import BadSignature, URLSafeSerializer
from sqlalchemy import select, text
from sqlalchemy.exc import IntegrityError

from asthron import jobs
from asthron.extensions import db
from asthron.models.base import utcnow
from asthron.models.booking import Booking, BookingSettings, BookingStatus, is_overlap_error
from asthron.providers.events import BookingCancelled, BookingCreated, BookingRescheduled
from asthron.services import availability, events

log = logging.getLogger(__name__)

LINK_SALT = "asthron.booking.manage"
LOCK_SPACE = 0x6B6F6F62  # the first key of PostgreSQL advisory locks on bookable resources
MAX_NAME = 200
MAX_EMAIL = 320


class BookingError(Exception):
    """A booking request that cannot be served; `code` names the kind for the web layers."""

    code = "invalid_request"


class BookingInvalid(BookingError):
    """Bad input; `errors` maps each field to a sentence."""

    def __init__(self, errors):
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))
        self.errors = errors


class ServiceNotFound(BookingError):
    code = "not_found"

    def __init__(self):
        super().__init__("There is no such service.")


class SlotTaken(BookingError):
    """The time is not offered (any more): taken, outside hours, too soon or too far ahead."""

    code = "conflict"

    def __init__(self):
        super().__init__("That time is no longer available. Please pick another slot.")


class IdempotencyMismatch(BookingError):
    code = "unprocessable"

    def __init__(self):
        super().__init__("This Idempotency-Key was already used for a different booking request.")


class LinkInvalid(BookingError):
    code = "not_found"

    def __init__(self, message="This link is not valid."):
        super().__init__(message)


class LinkExpired(LinkInvalid):
    def __init__(self):
        super().__init__("This link has expired: the appointment has already started.")


# --- Input ---------------------------------------------------------------------------------------------

def clean_request(*, name, email, start, visitor_time_zone):
    """Return (name, email, start as UTC, zone name) or raise BookingInvalid with per-field errors."""
    from asthron.services.notifications import EMAIL

    errors = {}
    name = (name or "").strip() if isinstance(name, str) else ""
    if not name:
        errors["name"] = "Enter your name."
    elif len(name) > MAX_NAME:
        errors["name"] = f"Use at most {MAX_NAME} characters."
    email = (email or "").strip().lower() if isinstance(email, str) else ""
    if len(email) > MAX_EMAIL or not EMAIL.match(email):
        errors["email"] = "Enter a valid email address."
    start_utc = parse_instant(start, errors, "start")
    try:
        availability.zone(visitor_time_zone or "UTC")
    except ValueError as exc:
        errors["tz"] = str(exc)
    if errors:
        raise BookingInvalid(errors)
    return name, email, start_utc, visitor_time_zone or "UTC"


def parse_instant(value, errors, field):
    """Return an ISO 8601 time with an offset as aware UTC, recording an error for anything else."""
    if isinstance(value, datetime):
        moment = value
    else:
        try:
            moment = datetime.fromisoformat(value) if isinstance(value, str) and len(value) <= 40 else None
        except ValueError:
            moment = None
    if moment is None or moment.tzinfo is None:
        errors[field] = "Give an ISO 8601 time with its offset, e.g. 2026-03-29T09:00:00+02:00."
        return None
    return moment.astimezone(UTC)


def fingerprint(**fields):
    """Return a stable digest of a request's meaningful fields (what an Idempotency-Key promises)."""
    canonical = json.dumps({k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in fields.items()},
                           sort_keys=True)
    return hashlib.sha256(canonical.encode()).hexdigest()


# --- Create --------------------------------------------------------------------------------------------

def create(workspace_id, *, service_id, start, name, email, visitor_time_zone="UTC", conversation_id=None,
           idempotency_key=None, source="widget", actor_id=None, now=None):
    """Book `service_id` at `start` and return (booking, created); a replayed key returns the first booking."""
    name, email, start, tz_name = clean_request(name=name, email=email, start=start,
                                                visitor_time_zone=visitor_time_zone)
    digest = fingerprint(service_id=service_id, start=start, name=name, email=email,
                         conversation_id=conversation_id)
    if idempotency_key:
        replay = _replay(workspace_id, idempotency_key, digest)
        if replay is not None:
            return replay, False
    service = availability.service_in_workspace(workspace_id, service_id)
    if service is None:
        raise ServiceNotFound()
    for resource_id in availability.free_resources_at(service, start, now=now):
        booking = Booking(workspace_id=workspace_id, service_id=service.id, resource_id=resource_id,
                          name=name, email=email, visitor_time_zone=tz_name, conversation_id=conversation_id,
                          source=source, idempotency_key=idempotency_key or None, request_fingerprint=digest)
        _place(booking, service, start)
        try:
            with _savepoint(resource_id):
                db.session.add(booking)
        except IntegrityError as exc:
            if is_overlap_error(exc):
                continue  # another request won this resource a moment ago: try the next one
            if idempotency_key:
                replay = _replay(workspace_id, idempotency_key, digest)  # the same key raced us
                if replay is not None:
                    return replay, False
            raise
        _after_create(booking, actor_id=actor_id)
        return booking, True
    raise SlotTaken()


@contextmanager
def _savepoint(resource_id):
    _lock_resource(resource_id)
    with db.session.begin_nested():
        yield


def _lock_resource(resource_id):
    """Take the resource's booking lock for the rest of the transaction."""
    connection = db.session.connection()
    if connection.dialect.name == "sqlite":
        if not connection.connection.dbapi_connection.in_transaction:
            # pysqlite begins transactions lazily, so a SAVEPOINT alone would start (and RELEASE commit) one.
            # IMMEDIATE takes the write lock now: no shared lock is held while waiting, so no deadlock.
            connection.exec_driver_sql("BEGIN IMMEDIATE")
    elif connection.dialect.name == "postgresql":
        # Two inserts that violate the exclusion constraint against each other can deadlock in PostgreSQL;
        # queueing the writers of one resource makes the loser see a plain constraint violation instead.
        connection.execute(text("SELECT pg_advisory_xact_lock(:space, :id)"), {"space": LOCK_SPACE, "id": resource_id})


def _replay(workspace_id, key, digest):
    existing = db.session.scalars(select(Booking).where(Booking.workspace_id == workspace_id,
                                                        Booking.idempotency_key == key)).first()
    if existing is not None and existing.request_fingerprint != digest:
        raise IdempotencyMismatch()
    return existing


def _place(booking, service, start):
    booking.start_at = start
    booking.end_at = start + timedelta(minutes=service.duration_minutes)
    booking.blocked_start = start - timedelta(minutes=service.buffer_before_minutes)
    booking.blocked_end = booking.end_at + timedelta(minutes=service.buffer_after_minutes)


def _after_create(booking, *, actor_id):
    from asthron.services import booking_emails

    _link_lead(booking, actor_id=actor_id)
    events.emit(BookingCreated(workspace_id=booking.workspace_id, booking_id=booking.id,
                               starts_at=availability.as_utc(booking.start_at)))
    booking_emails.send(booking, "booking_confirmation")
    schedule_reminders(booking)
    _sync(booking)


# --- Change --------------------------------------------------------------------------------------------

def cancel(booking, *, reason=None, actor_id=None):
    """Cancel a confirmed booking (its slot is free at once); cancelling twice changes nothing."""
    from asthron.services import booking_emails

    if booking.status == BookingStatus.cancelled:
        return booking
    booking.status = BookingStatus.cancelled
    booking.cancelled_at = utcnow()
    booking.cancel_reason = (reason or "")[:300] or None
    db.session.flush()
    events.emit(BookingCancelled(workspace_id=booking.workspace_id, booking_id=booking.id,
                                 starts_at=availability.as_utc(booking.start_at)))
    booking_emails.send(booking, "booking_cancelled")
    _activity(booking, f"Booking cancelled: {booking.service.name}", actor_id=actor_id)
    _sync(booking)
    return booking


def reschedule(booking, *, start, actor_id=None, now=None):
    """Move a confirmed booking to another offered `start` (same service; its resource if free)."""
    from asthron.services import booking_emails

    if booking.status != BookingStatus.confirmed:
        raise BookingInvalid({"booking": "A cancelled booking cannot be moved."})
    errors = {}
    start = parse_instant(start, errors, "start")
    if errors:
        raise BookingInvalid(errors)
    old_start = availability.as_utc(booking.start_at)
    if start == old_start:
        return booking
    free = _free_ignoring(booking, start, now=now)
    for resource_id in sorted(free):
        _lock_resource(resource_id)  # all up front, in id order, as create takes them: no lock cycle
    candidates = sorted(free, key=lambda rid: rid != booking.resource_id)  # keep the same person if possible
    for resource_id in candidates:
        try:
            with _savepoint(resource_id):
                booking.resource_id = resource_id
                _place(booking, booking.service, start)
                db.session.flush()
        except IntegrityError as exc:
            if not is_overlap_error(exc):
                raise
            db.session.refresh(booking)
            continue
        events.emit(BookingRescheduled(workspace_id=booking.workspace_id, booking_id=booking.id,
                                       starts_at=start, previous_starts_at=old_start))
        booking_emails.send(booking, "booking_rescheduled")
        schedule_reminders(booking)
        _activity(booking, f"Booking moved to {start:%Y-%m-%d %H:%M} UTC: {booking.service.name}", actor_id=actor_id)
        _sync(booking)
        return booking
    raise SlotTaken()


def _free_ignoring(booking, start, *, now):
    # The booking's own range must not hide the slots next to it.
    return availability.free_resources_at(booking.service, start, now=now, ignore_booking_id=booking.id)


def _sync(booking):
    from asthron.services import calendar_sync

    calendar_sync.booking_changed(booking)


# --- Leads ---------------------------------------------------------------------------------------------

def _link_lead(booking, *, actor_id):
    from asthron.models.leads import ActivityKind
    from asthron.services import leads

    lead = _find_lead(booking)
    if lead is None:
        try:
            lead = leads.capture(booking.workspace_id, source="ai" if booking.source == "ai" else "widget",
                                 values={"name": booking.name, "email": booking.email},
                                 conversation_id=booking.conversation_id, actor_id=actor_id, require_all=False)
        except leads.LeadValidationError as exc:
            # The workspace's form may require more than a booking asks for: book anyway, unlinked.
            log.info("booking %s not linked to a new lead: %s", booking.id, sorted(exc.errors))
            return
    booking.lead_id = lead.id
    leads.record_activity(lead, ActivityKind.booking, _summary(booking, "Booked"),
                          meta={"booking_id": booking.id}, actor_id=actor_id)


def _find_lead(booking):
    from asthron.models.chat import Conversation
    from asthron.models.leads import Lead
    from asthron.services import leads

    if booking.conversation_id:
        conversation = db.session.get(Conversation, booking.conversation_id)
        if conversation is not None and (lead := leads.lead_for_conversation(conversation)) is not None:
            return lead
    return db.session.scalars(select(Lead).where(Lead.workspace_id == booking.workspace_id,
                                                 Lead.email == booking.email)).first()


def _activity(booking, summary, *, actor_id):
    from asthron.models.leads import ActivityKind, Lead
    from asthron.services import leads

    lead = db.session.get(Lead, booking.lead_id) if booking.lead_id else None
    if lead is not None:
        leads.record_activity(lead, ActivityKind.booking, summary, meta={"booking_id": booking.id},
                              actor_id=actor_id)


def _summary(booking, verb):
    return f"{verb} {booking.service.name} with {booking.resource.name} at " \
           f"{availability.as_utc(booking.start_at):%Y-%m-%d %H:%M} UTC"


# --- Signed manage links -------------------------------------------------------------------------------

def _serializer():
    return URLSafeSerializer(current_app.config["SECRET_KEY"], salt=LINK_SALT)


def manage_token(booking):
    """Return a signed token that lets its holder see, cancel and move `booking` until it starts."""
    return _serializer().dumps({"b": booking.id, "r": booking.reference,
                                "x": int(availability.as_utc(booking.start_at).timestamp())})


def booking_for_token(token, *, now=None):
    """Return the booking a manage token names; raise LinkInvalid (tampered) or LinkExpired (past its start)."""
    try:
        data = _serializer().loads(token or "")
    except BadSignature:
        raise LinkInvalid() from None
    if not isinstance(data, dict) or not isinstance(data.get("b"), int):
        raise LinkInvalid()
    from asthron import tenancy

    with tenancy.unrestricted():
        booking = db.session.get(Booking, data["b"])
    if booking is None or booking.reference != data.get("r"):
        raise LinkInvalid()
    now = availability.as_utc(now or utcnow())
    if now.timestamp() >= data.get("x", 0) or now >= availability.as_utc(booking.start_at):
        raise LinkExpired()
    return booking


# --- Reminders -----------------------------------------------------------------------------------------

def settings_for(workspace_id):
    """Return the workspace's BookingSettings (defaults when it has none stored)."""
    settings = db.session.scalars(select(BookingSettings).where(BookingSettings.workspace_id == workspace_id)).first()
    return settings or BookingSettings(workspace_id=workspace_id, reminder_offsets_minutes=[1440, 60],
                                       reminders_enabled=True)


def schedule_reminders(booking, *, now=None):
    """Queue one reminder per configured offset that is still in the future, for the booking's current start."""
    settings = settings_for(booking.workspace_id)
    if not settings.reminders_enabled:
        return
    start = availability.as_utc(booking.start_at)
    now = availability.as_utc(now or utcnow())
    for minutes in sorted({int(m) for m in settings.reminder_offsets_minutes or () if int(m) > 0}):
        when = start - timedelta(minutes=minutes)
        if when > now:
            jobs.add(db.session, "notifications.booking_reminder", booking_id=booking.id, minutes=minutes,
                     starts=int(start.timestamp()), at=when)


def send_reminder(booking_id, *, minutes, starts):
    """Send one reminder unless the booking was cancelled, moved or already reminded at this offset."""
    from asthron import tenancy
    from asthron.services import booking_emails

    with tenancy.unrestricted():
        booking = db.session.get(Booking, booking_id)
    if booking is None or booking.status != BookingStatus.confirmed:
        return False
    if int(availability.as_utc(booking.start_at).timestamp()) != starts:
        return False  # moved since: the reschedule queued reminders for the new time
    marker = f"{minutes}@{starts}"
    if marker in (booking.reminders_sent or []):
        return False
    booking.reminders_sent = [*(booking.reminders_sent or []), marker]
    booking_emails.send(booking, "booking_reminder", extra={"minutes": minutes})
    return True
