"""The visitor booking API on the widget blueprint: services, free slots in the visitor's zone, booking.

The workspace is named by `key` (its public key); a booking made from a chat also names the
conversation and sends its token. Domain work is in asthron/services/booking.py and availability.py.
"""
import threading
from collections import OrderedDict
from datetime import date, datetime

from flask import current_app, jsonify, request

from asthron import tenancy
from asthron.extensions import db
from asthron.services import availability, booking as service
from asthron.services.conversations import open_conversation
from asthron.widget import limits
from asthron.widget.api import (
    MAX_KEY, ApiError, _bearer_token, _client_ip, _json_body, _keyed_workspace, _request_origin, _scope, _string, bp,
    error_response,
)

MAX_DAYS = availability.MAX_DAYS  # two months and a bit: a month view never needs two requests
MAX_IDEMPOTENCY_KEY = 200
CODES = {"not_found": "not_found", "conflict": "slot_taken", "unprocessable": "idempotency_mismatch"}


def service_json(svc):
    """Return what the widget shows of a service."""
    return {"id": svc.id, "name": svc.name, "description": svc.description or "",
            "duration_minutes": svc.duration_minutes, "price": svc.price_text or None,
            "location": svc.location_text or None}


def _workspace():
    workspace = _keyed_workspace(request.args.get("key", "")[:MAX_KEY], _request_origin())
    limits.hit(("ASTHRON_WIDGET_LIMIT_READS_PER_IP", _client_ip()))
    return workspace


def _slot_query():
    errors = {}
    tz_name = request.args.get("tz") or "UTC"
    try:
        tz = availability.zone(tz_name)
    except ValueError as exc:
        errors["tz"], tz = str(exc), None
    raw_days = request.args.get("days") or "7"
    days = int(raw_days) if raw_days.isdigit() and len(raw_days) < 4 else 0
    if not 1 <= days <= MAX_DAYS:
        errors["days"] = f"days must be a whole number from 1 to {MAX_DAYS}."
    raw_start = request.args.get("start")
    try:
        first = date.fromisoformat(raw_start) if raw_start else None
    except ValueError:
        errors["start"], first = "start must be a date as YYYY-MM-DD.", None
    if raw_start and first is not None and len(raw_start) != 10:
        errors["start"] = "start must be a date as YYYY-MM-DD."
    if errors:
        raise service.BookingInvalid(errors)
    return first or datetime.now(tz).date(), days, tz, tz_name


@bp.errorhandler(service.BookingInvalid)
def _invalid(exc):
    message = "Please correct: " + ", ".join(sorted(exc.errors)) + "."
    return jsonify(error={"code": "invalid_request", "message": message, "fields": exc.errors}), 400


@bp.errorhandler(service.BookingError)
def _booking_error(exc):
    return error_response(CODES.get(exc.code, "invalid_request"), str(exc))


@bp.get("/services")
def list_services():
    """Return the workspace's bookable services."""
    workspace = _workspace()
    with tenancy.scoped(_scope(workspace)):
        return jsonify(services=[service_json(s) for s in availability.bookable_services(workspace.id)])


@bp.get("/services/<int:service_id>/slots")
def list_slots(service_id):
    """Return the free slots of `days` local days from `start`, in the visitor's zone `tz`."""
    workspace = _workspace()
    first, days, tz, tz_name = _slot_query()
    with tenancy.scoped(_scope(workspace)):
        svc = availability.service_in_workspace(workspace.id, service_id)
        if svc is None:
            raise ApiError("not_found", "There is no such service.")
        start, end = availability.visitor_window(first, days, tz)
        found = availability.listing(svc, start=start, end=end, on_load=_refresh_stale_calendars)
        body = '{"service":%s,"slots":%s,"time_zone":%s}' % (_json(service_json(svc)), _slots_json(found, tz),
                                                             _json(tz_name))
        return current_app.response_class(body, mimetype="application/json")


def _json(value):
    return current_app.json.dumps(value, separators=(",", ":"))


MAX_RENDERED_CHARACTERS = 8_000_000  # per process: about 25 two-month listings of a large team
_rendered, _rendered_size, _rendered_lock = OrderedDict(), [0], threading.Lock()


def _slots_json(found, tz):
    """Return the JSON text of a Listing's slots in zone `tz`, written once per process for the same listing.

    A listing's ranges determine the text completely, so a kept text is never stale; visitors of one
    widget ask for the same weeks, and writing two months of a team's slots costs more than finding them.
    """
    key = (tz.key, found)
    text = _rendered.get(key)
    if text is not None:
        return text
    starts = found.starts()
    begins = availability.isoformat_local(starts, tz)
    ends = availability.isoformat_local([s + found.duration for s in starts], tz)
    text = _json([{"start": b, "end": e} for b, e in zip(begins, ends)])
    with _rendered_lock:
        if key not in _rendered:
            _rendered[key] = text
            _rendered_size[0] += len(text)
            while _rendered_size[0] > MAX_RENDERED_CHARACTERS and len(_rendered) > 1:
                _rendered_size[0] -= len(_rendered.popitem(last=False)[1])
    return text


def _refresh_stale_calendars(resources):
    """Start the busy-time reads of calendars whose reads stopped (H6); these slots use the blocks there are.

    It runs whenever slots are computed rather than served from the slot cache, whose entries live minutes.
    """
    from asthron.services import calendar_sync

    if calendar_sync.ensure_refresh(resources):
        db.session.commit()


@bp.post("/bookings")
def create_booking():
    """Book a slot; the Idempotency-Key header makes a retry return the first booking instead of a second."""
    origin = _request_origin()
    data = _json_body()
    workspace = _keyed_workspace(_string(data, "key", max_length=MAX_KEY), origin)
    limits.hit(("ASTHRON_WIDGET_LIMIT_MESSAGES_PER_IP", _client_ip()),
               ("ASTHRON_WIDGET_LIMIT_WRITES_PER_WORKSPACE", workspace.id))
    key = (request.headers.get("Idempotency-Key") or "").strip() or None
    if key is not None and len(key) > MAX_IDEMPOTENCY_KEY:
        raise ApiError("invalid_request", f"Idempotency-Key must be at most {MAX_IDEMPOTENCY_KEY} characters.")
    service_id = data.get("service_id")
    if not isinstance(service_id, int) or isinstance(service_id, bool):
        raise service.BookingInvalid({"service_id": "service_id must be a service's id (a whole number)."})
    with tenancy.scoped(_scope(workspace)):
        conversation_id = _conversation_id(data, workspace)
        booking, created = service.create(
            workspace.id, service_id=service_id, start=data.get("start"), name=data.get("name"),
            email=data.get("email"), visitor_time_zone=data.get("tz") or "UTC", conversation_id=conversation_id,
            idempotency_key=key, source="widget")
        body = booking_json(booking)
        db.session.commit()
    response = jsonify(booking=body)
    # A replay answers as the first request did, and says it is one (as Stripe's API does).
    response.headers["Idempotent-Replayed"] = "false" if created else "true"
    return response, 201


def _conversation_id(data, workspace):
    conversation_id = data.get("conversation_id")
    if conversation_id in (None, ""):
        return None
    if not isinstance(conversation_id, str) or len(conversation_id) > 40:
        raise service.BookingInvalid({"conversation_id": "conversation_id must be a conversation's id."})
    token = _bearer_token()
    if not token:
        raise ApiError("unauthorized")
    opened = open_conversation(conversation_id, token)
    if opened is None or opened[0].workspace_id != workspace.id:
        raise ApiError("not_found", "There is no such conversation.")
    return conversation_id


def booking_json(booking):
    """Return what the visitor sees of a booking, in their zone."""
    tz = availability.zone(booking.visitor_time_zone)
    return {"id": booking.id, "reference": booking.reference, "status": booking.status.value,
            "service": {"id": booking.service_id, "name": booking.service.name},
            "with": booking.resource.name,
            "start": availability.as_utc(booking.start_at).astimezone(tz).isoformat(),
            "end": availability.as_utc(booking.end_at).astimezone(tz).isoformat()}
