"""The staff inbox: who is available for handoffs, canned replies and each workspace's handoff settings."""
from sqlalchemy import Boolean, Column, DateTime, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import relationship

from asthron.models.base import Model, Timestamped, WorkspaceOwned

DEFAULT_EXPECTED_REPLY = "We usually reply within a few hours."


class StaffAvailability(WorkspaceOwned, Timestamped, Model):
    """Whether one staff member takes new handoffs in one workspace; `last_assigned_at` drives round robin."""

    __tablename__ = "staff_availability"
    # Bumped by every automatic assignment; auditing it would log each handoff twice.
    __audit_ignore__ = ("last_assigned_at", "updated_at")
    __table_args__ = (Index("uq_staff_availability_workspace_user", "workspace_id", "user_id", unique=True),)

    id = Column(Integer, primary_key=True)
    user_id = Column(Integer, ForeignKey("ab_user.id", ondelete="CASCADE"), nullable=False, index=True)
    available = Column(Boolean, nullable=False, default=False)
    last_assigned_at = Column(DateTime(timezone=True), nullable=True)
    workspace = relationship("Workspace")
    user = relationship("User", foreign_keys=[user_id])

    def __repr__(self):
        return f"{self.user} ({'available' if self.available else 'away'})"


class CannedReply(WorkspaceOwned, Timestamped, Model):
    """A reply staff insert into the inbox's reply box with one click."""

    __tablename__ = "canned_reply"

    id = Column(Integer, primary_key=True)
    title = Column(String(120), nullable=False)
    body = Column(Text, nullable=False)
    workspace = relationship("Workspace")

    def __repr__(self):
        return self.title


class InboxSettings(WorkspaceOwned, Timestamped, Model):
    """A workspace's handoff rules: automatic assignment, the reply time promised, a lead-score trigger."""

    __tablename__ = "inbox_settings"
    __table_args__ = (Index("uq_inbox_settings_workspace", "workspace_id", unique=True),)

    id = Column(Integer, primary_key=True)
    # Round robin among available staff; off, every handoff waits in the inbox until someone takes it.
    auto_assign = Column(Boolean, nullable=False, default=True)
    expected_reply = Column(String(200), nullable=False, default=DEFAULT_EXPECTED_REPLY)
    ask_email_when_away = Column(Boolean, nullable=False, default=True)
    # A lead whose score reaches this hands its conversation to a person (None: never).
    handoff_score_threshold = Column(Integer, nullable=True)
    workspace = relationship("Workspace")

    def __repr__(self):
        return f"Inbox settings of {self.workspace}"
