"""Email notifications: delivery records, the built-in outbox, sender settings and staff preferences."""
import enum

from sqlalchemy import (
    JSON, Boolean, CheckConstraint, Column, DateTime, ForeignKey, Index, Integer, LargeBinary, String, Text,
    UniqueConstraint, true,
)
from sqlalchemy.orm import relationship

from asthron.models.base import Model, Timestamped, WorkspaceOwned, utcnow


class NotificationStatus(enum.StrEnum):
    """Where a notification is on its way to the recipient."""

    queued = "queued"  # waiting for its first attempt
    retrying = "retrying"  # an attempt failed for a reason that may pass (server down); another follows
    sent = "sent"  # the transport accepted it
    failed = "failed"  # rejected for good, or out of attempts; an admin may retry it


class Notification(WorkspaceOwned, Model):
    """One email to one recipient, rendered from a template when it is sent, retried until it is."""

    __tablename__ = "notification"
    # A delivery log holding recipients' addresses (personal data that must stay erasable), whose
    # status changes on every attempt: it is not copied into the append-only audit log.
    __audited__ = False
    __table_args__ = (
        CheckConstraint("status IN ('queued', 'retrying', 'sent', 'failed')", name="ck_notification_status"),
        Index("ix_notification_workspace_status", "workspace_id", "status"),
    )

    id = Column(Integer, primary_key=True)
    recipient = Column(String(320), nullable=False)
    user_id = Column(Integer, ForeignKey("ab_user.id", ondelete="SET NULL"), nullable=True, index=True)
    template = Column(String(64), nullable=False)
    context = Column(JSON, nullable=False, default=dict)
    subject = Column(String(300), nullable=True)  # filled in when rendered
    status = Column(String(16), nullable=False, default=NotificationStatus.queued)
    attempts = Column(Integer, nullable=False, default=0)
    last_error = Column(String(500), nullable=True)
    transport = Column(String(64), nullable=True)  # the transport of the last attempt
    message_id = Column(String(255), nullable=False)  # our Message-ID header, the same on every attempt
    transport_message_id = Column(String(255), nullable=True)  # the transport's own id, if it gives one
    created_at = Column(DateTime(timezone=True), nullable=False, default=utcnow)
    last_attempt_at = Column(DateTime(timezone=True), nullable=True)
    sent_at = Column(DateTime(timezone=True), nullable=True)
    workspace = relationship("Workspace")
    user = relationship("User", foreign_keys=[user_id])
    attachments = relationship("NotificationAttachment", passive_deletes=True, order_by="NotificationAttachment.id")

    def __repr__(self):
        return f"{self.template} to {self.recipient}"


class NotificationAttachment(WorkspaceOwned, Model):
    """A file a caller attached explicitly, kept until the notification is sent (templates render theirs)."""

    __tablename__ = "notification_attachment"
    __audited__ = False  # file contents (an invitation, a receipt) are personal data

    id = Column(Integer, primary_key=True)
    notification_id = Column(Integer, ForeignKey("notification.id", ondelete="CASCADE"), nullable=False,
                             index=True)
    filename = Column(String(255), nullable=False)
    content_type = Column(String(255), nullable=False)
    data = Column(LargeBinary, nullable=False)


class OutboxEmail(WorkspaceOwned, Model):
    """An email the built-in outbox transport stored instead of sending (development and the demo)."""

    __tablename__ = "outbox_email"
    __audited__ = False  # copies of messages: transcripts and lead details are personal data

    id = Column(Integer, primary_key=True)
    notification_id = Column(Integer, ForeignKey("notification.id", ondelete="SET NULL"), nullable=True,
                             index=True)
    message_id = Column(String(255), nullable=True)
    to = Column(String(1000), nullable=False)
    from_addr = Column(String(400), nullable=True)
    reply_to = Column(String(320), nullable=True)
    subject = Column(String(300), nullable=False)
    text = Column(Text, nullable=False)
    html = Column(Text, nullable=True)
    attachments = Column(JSON, nullable=False, default=list)  # [{"filename", "content_type", "size"}]
    created_at = Column(DateTime(timezone=True), nullable=False, default=utcnow)
    workspace = relationship("Workspace")

    def __repr__(self):
        return f"{self.subject} to {self.to}"


class EmailSettings(WorkspaceOwned, Timestamped, Model):
    """A workspace's sender identity and email transport (one row per workspace; defaults from config)."""

    __tablename__ = "email_settings"
    __table_args__ = (Index("uq_email_settings_workspace", "workspace_id", unique=True),)

    id = Column(Integer, primary_key=True)
    from_name = Column(String(120), nullable=True)
    from_address = Column(String(320), nullable=True)
    reply_to = Column(String(320), nullable=True)
    transport = Column(String(64), nullable=True)  # None: ASTHRON_EMAIL_TRANSPORT
    # The transport's settings; secrets are {"$env": "VAR"} references, never values.
    transport_settings = Column(JSON, nullable=False, default=dict)
    workspace = relationship("Workspace")

    def __repr__(self):
        return f"Email settings of {self.workspace}"


class NotificationPreference(Model):
    """A person's choice to receive (or not) one kind of staff notification; no row means yes."""

    __tablename__ = "notification_preference"
    __table_args__ = (UniqueConstraint("user_id", "template", name="uq_notification_preference"),)

    id = Column(Integer, primary_key=True)
    user_id = Column(Integer, ForeignKey("ab_user.id", ondelete="CASCADE"), nullable=False, index=True)
    template = Column(String(64), nullable=False)
    enabled = Column(Boolean, nullable=False, default=True)

    @classmethod
    def tenant_clause(cls, scope):
        """Limit preferences to the signed-in person's own (system work sees all)."""
        if scope.user_id is None and scope.data_workspace_ids is None:
            return true()
        return cls.user_id == scope.user_id
