"""Notification jobs: deliver one queued email (the logic lives in asthron.services.email_delivery)."""
from asthron.jobs.registry import job

# A transport outage delays mail, never loses it: ten attempts, 1 min after the first failure, then
# doubling up to an hour, span about four and a half hours; then the notification is `failed` and an
# admin can retry it.
DELIVER_MAX_ATTEMPTS = 10
DELIVER_BACKOFF = 60
DELIVER_TIMEOUT = 600  # an SMTP send is several network steps, each with its own time-out


@job("notifications", max_attempts=DELIVER_MAX_ATTEMPTS, backoff=DELIVER_BACKOFF, timeout=DELIVER_TIMEOUT)
def deliver(notification_id):
    """Render and send notification `notification_id`."""
    from asthron.services import email_delivery

    email_delivery.deliver(notification_id)
