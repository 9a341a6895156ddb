"""The staff notice sent when a booking could not be written to its resource's calendar."""
from flask import current_app

from asthron.extensions import db
from asthron.models.booking import Booking
from asthron.services import notifications
from asthron.services.availability import as_utc
from asthron.services.calendar_sync import FAILED_TEMPLATE
from asthron.tenancy import unrestricted


def render(context):
    """Render the notice for `context["booking_id"]`."""
    with unrestricted():  # jobs render outside any request; the id came from this workspace's row
        booking = db.session.get(Booking, context["booking_id"])
        if booking is None:
            raise notifications.TemplateError("the booking no longer exists")
        base = current_app.config.get("ASTHRON_BASE_URL", "").rstrip("/")
        start = as_utc(booking.start_at)
        lines = [f"The booking {booking.reference} ({booking.service.name} with {booking.resource.name}, "
                 f"{start:%Y-%m-%d %H:%M} UTC) could not be written to the calendar.", "",
                 f"Reason: {booking.sync_error or 'unknown'}", "",
                 "The booking itself is confirmed. Fix the calendar's settings if needed, then retry the sync:",
                 f"{base}/bookingsyncview/list/"]
        return notifications.RenderedEmail(subject=f"Calendar sync failed: booking {booking.reference}",
                                           text="\n".join(lines))


notifications.register_template(FAILED_TEMPLATE, label="Calendar sync failed (to staff)", render=render,
                                audience="staff")
