"""Booking reminders, queued for a time before each appointment (RQ's scheduler starts them on time)."""
from asthron.jobs.registry import job
# Imported here so that every process (web and worker) registers the booking templates and AI tools.
from asthron.services import booking_emails, booking_tools  # noqa: F401


@job("notifications")
def booking_reminder(booking_id, minutes, starts):
    """Queue the reminder email of `booking_id` for the offset `minutes`, if the booking still starts at `starts`."""
    from asthron.services import booking

    booking.send_reminder(booking_id, minutes=minutes, starts=starts)
