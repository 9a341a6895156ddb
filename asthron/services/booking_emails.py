"""The visitor's booking emails: confirmation (with an ICS file), reminder, cancellation, new time.

Templates render when the email is sent, from the booking as it is then, so a queued confirmation
of a booking moved in the meantime shows the new time; the context holds only the booking's id.
Times are shown in the visitor's zone; each email carries the signed manage link (valid until the
appointment starts).
"""
from datetime import UTC, datetime

from flask import current_app
from icalendar import Calendar, Event

from asthron.extensions import db
from asthron.models.booking import Booking, BookingStatus
from asthron.providers.email import Attachment
from asthron.services import availability, notifications
from asthron.tenancy import unrestricted

SUBJECTS = {
    "booking_confirmation": "Booking confirmed: {service} on {when}",
    "booking_reminder": "Reminder: {service} on {when}",
    "booking_cancelled": "Booking cancelled: {service} on {when}",
    "booking_rescheduled": "Booking moved: {service} now on {when}",
}
LEADS = {
    "booking_confirmation": "Your appointment is booked.",
    "booking_reminder": "This is a reminder of your appointment.",
    "booking_cancelled": "Your appointment has been cancelled. The time is free again.",
    "booking_rescheduled": "Your appointment has a new time.",
}
LABELS = {
    "booking_confirmation": "Booking confirmation (to the visitor)",
    "booking_reminder": "Booking reminder (to the visitor)",
    "booking_cancelled": "Booking cancelled (to the visitor)",
    "booking_rescheduled": "Booking rescheduled (to the visitor)",
}


def send(booking, template, *, extra=None):
    """Queue `template` about `booking` to the visitor, in the caller's transaction."""
    return notifications.send_email(workspace_id=booking.workspace_id, to=booking.email, template=template,
                                    context={"booking_id": booking.id, **(extra or {})})


def manage_url(booking):
    """Return the absolute URL of the booking's manage page (signed, no account needed)."""
    from asthron.services.booking import manage_token

    base = current_app.config.get("ASTHRON_BASE_URL", "").rstrip("/")
    return f"{base}/booking/manage/{manage_token(booking)}"


def ics(booking, *, cancelled=False):
    """Return the booking as an iCalendar file (an update of the same UID each time it changes)."""
    calendar = Calendar()
    calendar.add("prodid", "-//Asthron//Booking//EN")
    calendar.add("version", "2.0")
    calendar.add("method", "CANCEL" if cancelled else "PUBLISH")
    event = Event()
    event.add("uid", f"{booking.reference}@asthron")
    event.add("summary", f"{booking.service.name} ({booking.workspace.name})")
    event.add("dtstart", availability.as_utc(booking.start_at))
    event.add("dtend", availability.as_utc(booking.end_at))
    event.add("dtstamp", datetime.now(UTC))
    event.add("sequence", int(availability.as_utc(booking.updated_at or booking.created_at).timestamp()) // 60)
    event.add("status", "CANCELLED" if cancelled else "CONFIRMED")
    if booking.service.location_text:
        event.add("location", booking.service.location_text)
    event.add("description", f"With {booking.resource.name}. Reference {booking.reference}.")
    calendar.add_component(event)
    return calendar.to_ical()


def _when(booking):
    local = availability.as_utc(booking.start_at).astimezone(availability.zone(booking.visitor_time_zone))
    return local.strftime("%A %d %B %Y, %H:%M ") + (local.tzname() or booking.visitor_time_zone)


def _renderer(template):
    def render(context):
        with unrestricted():  # jobs render outside any request; the id came from this workspace's row
            booking = db.session.get(Booking, context["booking_id"])
            if booking is None:
                raise notifications.TemplateError("the booking no longer exists")
            return _render(template, booking)
    return render


def _render(template, booking):
    service, when = booking.service, _when(booking)
    lines = [f"Hello {booking.name},", "", LEADS[template], "",
             f"What: {service.name}", f"When: {when} ({service.duration_minutes} minutes)",
             f"With: {booking.resource.name}"]
    if service.location_text:
        lines.append(f"Where: {service.location_text}")
    if service.price_text:
        lines.append(f"Price: {service.price_text}")
    lines.append(f"Reference: {booking.reference}")
    attachments = ()
    if booking.status == BookingStatus.confirmed and availability.as_utc(booking.start_at) > datetime.now(UTC):
        lines += ["", f"To cancel or move it: {manage_url(booking)}"]
    if template in ("booking_confirmation", "booking_rescheduled", "booking_cancelled"):
        cancelled = template == "booking_cancelled"
        attachments = (Attachment("booking.ics", f"text/calendar; method={'CANCEL' if cancelled else 'PUBLISH'}",
                                  ics(booking, cancelled=cancelled)),)
    lines += ["", f"{booking.workspace.name}"]
    subject = SUBJECTS[template].format(service=service.name, when=when)
    return notifications.RenderedEmail(subject=subject, text="\n".join(lines), attachments=attachments)


for _name in SUBJECTS:
    notifications.register_template(_name, label=LABELS[_name], render=_renderer(_name), audience="visitor")
