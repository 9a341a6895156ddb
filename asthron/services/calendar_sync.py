"""Calendar sync: write bookings to their resource's calendar and read its busy times into BusyBlock rows.

Bookings never wait for a calendar. `booking_changed` only queues `calendar.push_booking` in the
booking's own transaction; the job writes (or removes) the event through the resource's backend
plugin. A retryable failure is retried with back-off; after the last attempt, or at once when the
calendar refused for good (wrong password, revoked access), the booking is flagged (`sync_status`
"failed", `sync_error`) for staff, who see it under Bookings -> Calendar sync and can retry.

Busy times: `calendar.refresh_busy` reads the next ASTHRON_CALENDAR_BUSY_DAYS days and replaces the
resource's blocks in one transaction. Each resource with an external calendar has one chain of
scheduled reads, every ASTHRON_CALENDAR_REFRESH_MINUTES; `ensure_refresh` starts a chain that is
missing or overdue, and runs when a calendar is set up or connected, after each booking push, and
wherever slots are computed (docs/calendar.md).
"""
import logging
from datetime import timedelta

from flask import current_app
from sqlalchemy import delete, or_, select, update

from asthron import jobs
from asthron.extensions import db
from asthron.models.base import utcnow
from asthron.models.booking import Booking, BookingStatus, BusyBlock, Resource
from asthron.providers.calendar import CalendarError, CalendarEvent, OAuthCalendarBackend, OAuthToken
from asthron.providers.secrets import SecretError, resolve
from asthron.services import encryption, slot_cache

log = logging.getLogger(__name__)

PENDING, SYNCED, FAILED = "pending", "synced", "failed"
PUSH_JOB, REFRESH_JOB = "calendar.push_booking", "calendar.refresh_busy"
INTERNAL = "internal"
FAILED_TEMPLATE = "calendar_sync_failed"
SLACK = timedelta(seconds=60)


def booking_changed(booking):
    """Queue writing, moving or removing the booking's calendar event, in the caller's transaction."""
    booking.sync_status = PENDING
    booking.sync_error = None
    db.session.flush()
    jobs.add(db.session, PUSH_JOB, booking_id=booking.id)


def retry(booking):
    """Queue the booking's calendar sync again (staff's retry of a flagged booking)."""
    booking_changed(booking)


# --- Backends and their settings ------------------------------------------------------------------------

def backend_for(resource):
    """Return the installed calendar backend the resource uses; raise CalendarError when it is not installed."""
    from asthron.registry import calendar_backends

    try:
        return calendar_backends.get(resource.calendar_backend or INTERNAL)
    except LookupError:
        raise CalendarError(f"the calendar backend {resource.calendar_backend!r} is not installed") from None


def settings_for(resource, backend):
    """Return the settings to hand `backend`: `$env` references resolved, the OAuth token for OAuth backends."""
    try:
        settings = resolve(resource.calendar_settings or {})
    except SecretError as exc:
        raise CalendarError(f"the calendar settings cannot be used: {exc}") from None
    settings.setdefault("time_zone", resource.time_zone or "UTC")
    if isinstance(backend, OAuthCalendarBackend):
        settings["oauth"] = OAuthToken(load_token(resource), on_save=lambda token: store_token(resource, token))
    return settings


def load_token(resource):
    """Return the resource's decrypted OAuth token; raise CalendarError when there is none that opens."""
    if not resource.calendar_token_encrypted:
        raise CalendarError("the calendar is not connected yet; connect it in the admin (Bookings -> Calendars)")
    try:
        return encryption.decrypt_json(resource.calendar_token_encrypted)
    except encryption.DecryptionError:
        raise CalendarError("the stored calendar authorisation cannot be decrypted (the encryption key "
                            "changed); connect the calendar again") from None


def store_token(resource, token):
    """Keep an OAuth token on the resource, encrypted."""
    resource.calendar_token_encrypted = encryption.encrypt_json(dict(token))


def event_for(booking):
    """Return the calendar event of a booking: service and reference only, no visitor contact details."""
    service = booking.service
    return CalendarEvent(
        summary=f"{service.name} ({booking.reference})",
        start=_aware(booking.start_at), end=_aware(booking.end_at), uid=event_uid(booking),
        description=f"Booking {booking.reference}, made through Asthron. The visitor's details are in the "
                    "admin under Bookings.",
        location=service.location_text or "")


def event_uid(booking):
    """Return the stable uid of a booking's event (the same as in the visitor's invitation)."""
    return f"{booking.reference}@asthron"


def configure(resource, *, backend_name, settings):
    """Give the resource another calendar set-up (validated by the caller) and bring the calendar up to date."""
    changed = (backend_name, settings) != (resource.calendar_backend, resource.calendar_settings or {})
    if backend_name != resource.calendar_backend:
        resource.calendar_token_encrypted = None  # a token belongs to the backend that issued it
    resource.calendar_backend, resource.calendar_settings = backend_name, settings
    calendar_ready(resource, resync_upcoming=changed)


def connected(resource, token):
    """Store the token an OAuth connection brought and bring the calendar up to date."""
    store_token(resource, token)
    calendar_ready(resource, resync_upcoming=True)


def calendar_ready(resource, *, resync_upcoming):
    """Read busy times again and queue the bookings whose event the calendar (now) lacks."""
    resource.busy_sync_error = None
    if resource.calendar_backend == INTERNAL:
        _clear_busy(resource)
    request_refresh(resource)
    ensure_refresh([resource])
    wanted = Booking.sync_status == FAILED
    if resync_upcoming:  # a new calendar has none of the upcoming bookings yet
        wanted = or_(wanted, (Booking.status == BookingStatus.confirmed) & (Booking.end_at > utcnow()))
    for booking in db.session.scalars(select(Booking).where(Booking.resource_id == resource.id, wanted)):
        booking_changed(booking)


# --- Pushing a booking ----------------------------------------------------------------------------------

def push_booking(booking_id):
    """Make the booking's calendar match it: create, move or remove its event (the job's body)."""
    booking = db.session.get(Booking, booking_id)
    if booking is None:
        return
    try:
        moved = _push(booking)
    except Exception as exc:
        _retry_or_flag(booking_id, exc)
        return
    booking.sync_status, booking.sync_error = SYNCED, None
    if moved:  # the old event's busy time may still be in the blocks: read them again now
        request_refresh(booking.resource)
    ensure_refresh([booking.resource])


def _push(booking):
    """Write the calendar side of `booking`; return whether an earlier event was removed or moved."""
    old_resource_id = booking.calendar_resource_id or booking.resource_id
    moved = bool(booking.external_event_id)
    leaving = booking.status != BookingStatus.confirmed or old_resource_id != booking.resource_id
    if booking.external_event_id and leaving:
        old = db.session.get(Resource, old_resource_id)
        if old is not None:
            backend = backend_for(old)
            backend.delete_event(settings=settings_for(old, backend), event_id=booking.external_event_id)
        booking.external_event_id = booking.calendar_resource_id = None
    if booking.status == BookingStatus.confirmed:
        backend = backend_for(booking.resource)
        event_id = backend.create_event(settings=settings_for(booking.resource, backend), event=event_for(booking))
        booking.external_event_id = str(event_id)[:500]
        booking.calendar_resource_id = booking.resource_id
    return moved


def _retry_or_flag(booking_id, exc):
    """Raise JobError to retry a failure that may pass; otherwise flag the booking for staff."""
    from asthron.jobs.runner import is_last_attempt

    message = describe(exc)
    if not isinstance(exc, CalendarError):
        log.warning("calendar sync of booking #%s: unexpected %s", booking_id, type(exc).__name__, exc_info=exc)
    retryable = getattr(exc, "retryable", not isinstance(exc, CalendarError))
    if retryable and not is_last_attempt():
        raise jobs.JobError(message) from None
    log.warning("calendar sync of booking #%s failed for good: %s", booking_id, message)
    db.session.rollback()  # drop half-done work; the flag is this run's only write
    booking = db.session.get(Booking, booking_id)
    if booking is None:
        return
    booking.sync_status, booking.sync_error = FAILED, message[:500]
    _notify_staff(booking)


def describe(exc):
    """Return what may be shown and stored about a sync failure (a CalendarError's message, else its type)."""
    if isinstance(exc, CalendarError):
        return str(exc)[:500]
    return f"unexpected error in the calendar plugin ({type(exc).__name__})"


def _notify_staff(booking):
    from asthron.services import notifications

    try:
        notifications.notify_staff(workspace_id=booking.workspace_id, template=FAILED_TEMPLATE,
                                   context={"booking_id": booking.id})
    except notifications.NotificationError:
        log.exception("could not queue the calendar-sync-failed notice of booking #%s", booking.id)


# --- Reading busy times ---------------------------------------------------------------------------------

def _interval():
    return timedelta(minutes=current_app.config.get("ASTHRON_CALENDAR_REFRESH_MINUTES", 15))


def request_refresh(resource):
    """Queue an immediate read of the resource's busy times, in the caller's transaction."""
    if resource is not None and resource.calendar_backend != INTERNAL:
        jobs.add(db.session, REFRESH_JOB, resource_id=resource.id)


def ensure_refresh(resources, *, now=None):
    """Start the scheduled busy-time reads of resources whose chain is missing or overdue; return how many."""
    now = now or utcnow()
    overdue = now - 2 * _interval()
    started = 0
    for resource in resources:
        if resource is None or resource.calendar_backend == INTERNAL or not resource.active:
            continue
        if resource.busy_refresh_at is not None and _aware(resource.busy_refresh_at) >= overdue:
            continue  # the chain is alive: no write at all (this runs wherever slots are listed)
        # A conditional update: of two requests that both find the chain missing, one starts it.
        claimed = db.session.execute(
            update(Resource).where(Resource.id == resource.id,
                                   or_(Resource.busy_refresh_at.is_(None), Resource.busy_refresh_at < overdue))
            .values(busy_refresh_at=now), execution_options={"synchronize_session": False}).rowcount
        if claimed:
            jobs.add(db.session, REFRESH_JOB, resource_id=resource.id)
            started += 1
    return started


def refresh_busy(resource_id):
    """Read the resource's busy times into its BusyBlock rows and schedule the next read (the job's body)."""
    resource = db.session.get(Resource, resource_id)
    if resource is None:
        return
    now = utcnow()
    if resource.calendar_backend == INTERNAL or not resource.active:
        _clear_busy(resource)
        return
    end = now + timedelta(days=current_app.config.get("ASTHRON_CALENDAR_BUSY_DAYS", 60))
    try:
        backend = backend_for(resource)
        periods = backend.busy_times(settings=settings_for(resource, backend), start=now, end=end)
    except Exception as exc:
        _retry_or_record(resource, exc)
    else:
        replace_blocks(resource, [(p.start, p.end) for p in periods], now=now)
        resource.busy_synced_at, resource.busy_sync_error = now, None
    _schedule_next(resource, now)


def _retry_or_record(resource, exc):
    from asthron.jobs.runner import is_last_attempt

    message = describe(exc)
    if getattr(exc, "retryable", not isinstance(exc, CalendarError)) and not is_last_attempt():
        raise jobs.JobError(message) from None
    log.warning("reading the busy times of resource #%s failed: %s", resource.id, message)
    resource.busy_sync_error = message[:500]  # the old blocks stay: stale busy times beat none


def replace_blocks(resource, periods, *, now):
    """Replace all of the resource's busy blocks with `periods`, minus its own bookings' times."""
    from asthron.services.availability import merge, subtract

    own = db.session.execute(select(Booking.start_at, Booking.end_at).where(
        Booking.resource_id == resource.id, Booking.status == BookingStatus.confirmed,
        Booking.end_at > now)).all()
    # A booking's own event comes back as busy time; availability counts the booking already, and a
    # block of it would stop the booking from moving to an overlapping time.
    holes = merge([(_aware(s), _aware(e)) for s, e in own])
    blocks = subtract(merge([(_aware(s), _aware(e)) for s, e in periods]), holes)
    stored = db.session.execute(select(BusyBlock.start_at, BusyBlock.end_at, BusyBlock.source).where(
        BusyBlock.resource_id == resource.id)).all()
    if sorted((_aware(s), _aware(e), source) for s, e, source in stored) == \
            [(s, e, resource.calendar_backend) for s, e in blocks]:
        return  # the calendar reports what is stored: no write, and the slot cache stays valid
    _clear_busy(resource)
    db.session.add_all([BusyBlock(workspace_id=resource.workspace_id, resource_id=resource.id, start_at=s,
                                  end_at=e, source=resource.calendar_backend) for s, e in blocks])


def _schedule_next(resource, now):
    """Continue this resource's chain of reads, unless a later read is already scheduled."""
    following = now + _interval()
    # The slack lets a run that starts a little early (clocks of workers differ) still continue the chain.
    claimed = db.session.execute(
        update(Resource).where(Resource.id == resource.id,
                               or_(Resource.busy_refresh_at.is_(None), Resource.busy_refresh_at <= now + SLACK))
        .values(busy_refresh_at=following), execution_options={"synchronize_session": False}).rowcount
    if claimed:
        jobs.add(db.session, REFRESH_JOB, resource_id=resource.id, at=following)


def _clear_busy(resource):
    """Delete the resource's busy blocks (one statement, past the ORM: the slot cache is told by hand)."""
    db.session.execute(delete(BusyBlock).where(BusyBlock.resource_id == resource.id))
    slot_cache.changed(db.session(), resource.workspace_id)


def _aware(moment):
    from asthron.services.availability import as_utc

    return as_utc(moment)
