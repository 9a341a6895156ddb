"""The outbox email transport: stores each email instead of sending it; the admin shows them (Email -> Outbox).

The default transport (ASTHRON_EMAIL_TRANSPORT=outbox), so the demo and a fresh install work with
no mail server, and nothing leaves the machine. Unlike outside plugins it writes to the core's
`outbox_email` table, in the delivery job's transaction, so a stored email and its notification's
`sent` mark commit together. Attachments are listed by name, type and size; their bytes are not kept.
"""
from asthron.hookspecs import hookimpl
from asthron.providers.email import EmailTransport, SendResult


class OutboxTransport(EmailTransport):
    """Keeps each message in the database, for reading in the admin."""

    name = "outbox"
    label = "Outbox (kept in the admin, not sent)"

    def send(self, *, settings, message):
        from asthron.extensions import db
        from asthron.models.notifications import OutboxEmail

        workspace_id = message.metadata.get("workspace_id")
        if workspace_id is None:
            return SendResult(accepted=False, error="the outbox keeps workspace email only", permanent=True)
        message_id = message.headers.get("Message-ID")
        db.session.add(OutboxEmail(
            workspace_id=workspace_id, notification_id=message.metadata.get("notification_id"),
            message_id=message_id, to=", ".join(message.to), from_addr=message.from_addr,
            reply_to=message.reply_to, subject=message.subject, text=message.text, html=message.html,
            attachments=[{"filename": a.filename, "content_type": a.content_type, "size": len(a.data)}
                         for a in message.attachments]))
        return SendResult(accepted=True, message_id=message_id)

    def check_settings(self, settings):
        if settings:
            raise ValueError("The outbox transport takes no settings.")


@hookimpl
def register_email_transports(register):
    register(OutboxTransport())
