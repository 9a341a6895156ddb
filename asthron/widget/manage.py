"""Booking manage pages behind signed links from the visitor's emails: see, cancel, move; no account needed.

The token in the URL is the only credential (asthron/services/booking.py signs it; it expires when the
appointment starts). Forms carry Flask-WTF's CSRF token like every other form of the app.
"""
from datetime import date, timedelta

from flask import Blueprint, redirect, render_template, request, url_for

from asthron import tenancy
from asthron.extensions import db
from asthron.models.base import utcnow
from asthron.models.booking import BookingStatus
from asthron.services import availability, booking as service

bp = Blueprint("booking_manage", __name__, url_prefix="/booking/manage")
DAYS_SHOWN = 7
MAX_TOKEN = 400


def _load(token):
    booking = service.booking_for_token(token[:MAX_TOKEN])
    return booking, _workspace_scope(booking)


def _workspace_scope(booking):
    return tenancy.Scope(agency_ids=frozenset({booking.workspace.agency_id}),
                         workspace_ids=frozenset({booking.workspace_id}),
                         data_workspace_ids=frozenset({booking.workspace_id}))


@bp.errorhandler(service.LinkInvalid)
def _bad_link(exc):
    return render_template("errors/error.html", code=404, title="Link not valid", message=str(exc)), 404


def _first_day(booking, tz):
    raw = request.args.get("from", "")
    try:
        first = date.fromisoformat(raw) if len(raw) == 10 else None
    except ValueError:
        first = None
    today = utcnow().astimezone(tz).date()
    return max(first or today, today)


@bp.get("/<token>")
def show(token, *, error=None, status=200):
    """Show the booking, a cancel button and the free times it can move to."""
    booking, scope = _load(token)
    with tenancy.scoped(scope):
        tz = availability.zone(booking.visitor_time_zone)
        first = _first_day(booking, tz)
        start, end = availability.visitor_window(first, DAYS_SHOWN, tz)
        free = availability.slots(booking.service, start=start, end=end, ignore_booking_id=booking.id)
        days = {}
        for slot in free:
            local = slot.start.astimezone(tz)
            days.setdefault(local.date(), []).append(local)
        body = render_template(
            "booking/manage.html", booking=booking, token=token, tz=tz, error=error,
            start=availability.as_utc(booking.start_at).astimezone(tz), days=sorted(days.items()),
            previous=(first - timedelta(days=DAYS_SHOWN)).isoformat(),
            next=(first + timedelta(days=DAYS_SHOWN)).isoformat(), confirmed=booking.status == BookingStatus.confirmed)
    return body, status


@bp.post("/<token>/cancel")
def cancel(token):
    """Cancel the booking."""
    booking, scope = _load(token)
    with tenancy.scoped(scope):
        service.cancel(booking, reason="Cancelled by the visitor")
        db.session.commit()
    return redirect(url_for(".show", token=token, done="cancelled"), 303)


@bp.post("/<token>/reschedule")
def reschedule(token):
    """Move the booking to the chosen free time."""
    booking, scope = _load(token)
    with tenancy.scoped(scope):
        try:
            service.reschedule(booking, start=request.form.get("start", ""))
        except (service.SlotTaken, service.BookingInvalid) as exc:
            db.session.rollback()
            return show(token, error=str(exc) if isinstance(exc, service.SlotTaken)
                        else "Choose one of the free times.", status=409 if isinstance(exc, service.SlotTaken)
                        else 400)
        db.session.commit()
        new_token = service.manage_token(booking)  # the old link expires at the old start time
    return redirect(url_for(".show", token=new_token, done="moved"), 303)


def init_app(app):
    """Register the manage pages."""
    app.register_blueprint(bp)
