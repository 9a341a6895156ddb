"""Deliver one queued notification: render it, send it through the workspace's transport, record the outcome.

Runs as the `notifications.deliver` job (asthron/jobs/notifications.py). Accepted -> `sent`.
Rejected for good (a 5xx reply, a template that cannot render) -> `failed`, and the job ends.
Anything that may pass (server down, a 4xx reply, a missing environment variable) -> `retrying`:
the outcome is written in its own short transaction, since the runner rolls the job's work back,
and a `JobError` makes the runner retry with back-off; after the last attempt -> `failed`. Each
attempt carries the notification's Message-ID, so a send repeated after a lost reply is recognisable.
"""
import logging

from sqlalchemy import delete, update

from asthron import registry
from asthron.extensions import db
from asthron.jobs import JobError
from asthron.jobs.runner import is_last_attempt
from asthron.models.base import utcnow
from asthron.models.notifications import Notification, NotificationAttachment, NotificationStatus
from asthron.providers.email import Attachment, EmailMessage, SendResult
from asthron.providers.secrets import SecretError, resolve
from asthron.services.email_settings import sender_for
from asthron.services.notifications import NotificationError, RenderedEmail, TemplateError, get_template
from asthron.tenancy import Scope, scoped

log = logging.getLogger(__name__)

MAX_ERROR = 500


class _Temporary(Exception):
    """A failure that may pass; its message is safe to store."""


def deliver(notification_id):
    """Send notification `notification_id` once; raise JobError when it should be tried again."""
    notification = db.session.get(Notification, notification_id)
    if notification is None or notification.status in (NotificationStatus.sent, NotificationStatus.failed):
        return  # sent already (a repeated delivery), or given up on: an admin's retry queues it again
    sender = None
    try:
        sender = _sender(notification.workspace_id)
        message = compose(notification, sender)
        result = _send(sender, message)
    except TemplateError as exc:
        result = SendResult(accepted=False, error=str(exc) or "the template could not render", permanent=True)
    except _Temporary as exc:
        result = SendResult(accepted=False, error=str(exc))
    transport = sender.transport if sender else None
    if result.accepted:
        _settle(notification, status=NotificationStatus.sent, transport=transport, message_id=result.message_id)
    elif result.permanent:
        _settle(notification, status=NotificationStatus.failed, transport=transport, error=result.error)
    else:
        _record_retry(notification, transport=transport, error=result.error or "not accepted")


def _sender(workspace_id):
    try:
        return sender_for(workspace_id)
    except ValueError as exc:  # the operator's default settings are not valid JSON: fixed by a restart
        raise _Temporary(str(exc)) from None


def compose(notification, sender):
    """Render `notification` into the EmailMessage its transport sends."""
    rendered = render(notification)
    stored = [Attachment(a.filename, a.content_type, bytes(a.data)) for a in notification.attachments]
    try:
        return EmailMessage(
            to=(notification.recipient,), subject=notification.subject, text=rendered.text, html=rendered.html,
            from_addr=sender.from_header, reply_to=sender.reply_to,
            headers={"Message-ID": notification.message_id},
            attachments=tuple(rendered.attachments) + tuple(stored),
            metadata={"workspace_id": notification.workspace_id, "notification_id": notification.id})
    except ValueError as exc:
        raise TemplateError(f"template {notification.template!r} rendered an invalid email: {exc}") from None


def render(notification):
    """Render a notification's template within its own workspace only."""
    try:
        template = get_template(notification.template)
    except NotificationError as exc:  # its module is not imported in this process (a deploy under way?)
        raise _Temporary(str(exc)) from None
    context = dict(notification.context or {}, workspace_id=notification.workspace_id,
                   notification_id=notification.id)
    ws = frozenset({notification.workspace_id})
    # A context naming another workspace's row finds nothing, whatever the caller passed.
    with scoped(Scope(agency_ids=None, workspace_ids=ws, data_workspace_ids=ws)):
        try:
            rendered = template.render(context)
        except TemplateError:
            raise
        except Exception as exc:
            log.exception("template %r failed for notification #%s", notification.template, notification.id)
            raise _Temporary(f"template {notification.template!r} failed: {type(exc).__name__}") from None
    if not isinstance(rendered, RenderedEmail):
        raise TemplateError(f"template {notification.template!r} did not return a RenderedEmail")
    notification.subject = " ".join(str(rendered.subject).split())[:300]
    return rendered


def _send(sender, message):
    try:
        transport = registry.email_transports.get(sender.transport)
        settings = resolve(sender.transport_settings)
    except (LookupError, SecretError) as exc:
        raise _Temporary(str(exc)) from None  # fixed by installing the plugin or setting the variable
    try:
        result = transport.send(settings=settings, message=message)
    except Exception as exc:
        # The message could quote a setting; the log's masking filter sees it, the row gets the type.
        log.warning("email transport %r raised %s: %s", sender.transport, type(exc).__name__, exc)
        raise _Temporary(f"transport {sender.transport!r} raised {type(exc).__name__}") from None
    if not isinstance(result, SendResult):
        raise _Temporary(f"transport {sender.transport!r} returned no SendResult")
    return result


def _settle(notification, *, status, transport, message_id=None, error=None):
    """Record the final outcome in the job's transaction (committed with the outbox entry's done mark)."""
    now = utcnow()
    notification.status = status
    notification.attempts = (notification.attempts or 0) + 1
    notification.last_attempt_at = now
    notification.transport = transport
    notification.last_error = _short(error)
    if status == NotificationStatus.sent:
        notification.sent_at = now
        notification.transport_message_id = (message_id or "")[:255] or None
        # Sent: the explicit attachments are no longer needed, and are personal data.
        db.session.execute(delete(NotificationAttachment).where(
            NotificationAttachment.notification_id == notification.id))


def _record_retry(notification, *, transport, error):
    """Record a failed attempt in its own transaction, then make the runner retry (or give up)."""
    final = is_last_attempt()
    values = {"status": NotificationStatus.failed if final else NotificationStatus.retrying,
              "attempts": Notification.attempts + 1, "last_attempt_at": utcnow(), "transport": transport,
              "last_error": _short(error), "subject": notification.subject}
    notification_id = notification.id
    db.session.rollback()  # the runner rolls back anyway; on SQLite this also frees the write lock
    with db.engine.begin() as conn:
        conn.execute(update(Notification).where(Notification.id == notification_id).values(**values))
    raise JobError(_short(error))


def _short(error):
    if not error:
        return None
    text = " ".join(str(error).split())
    return text if len(text) <= MAX_ERROR else text[: MAX_ERROR - 1] + "…"
