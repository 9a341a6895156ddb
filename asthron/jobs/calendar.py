"""Calendar jobs: push a booking to its calendar, read a resource's busy times (asthron.services.calendar_sync)."""
from asthron.jobs.registry import job
from asthron.services import calendar_emails  # noqa: F401  (registers the sync-failed notice in every process)

# Six tries over about half an hour (1, 2, 4, 8, 16 minutes apart), then the booking is flagged.
PUSH_ATTEMPTS, PUSH_BACKOFF = 6, 60


@job("calendar", max_attempts=PUSH_ATTEMPTS, backoff=PUSH_BACKOFF, timeout=120)
def push_booking(booking_id):
    """Create, move or remove the calendar event of `booking_id`."""
    from asthron.services import calendar_sync

    calendar_sync.push_booking(booking_id)


@job("calendar", max_attempts=3, backoff=30, timeout=120)
def refresh_busy(resource_id):
    """Read the busy times of `resource_id` into its busy blocks and schedule the next read."""
    from asthron.services import calendar_sync

    calendar_sync.refresh_busy(resource_id)
