"""The job outbox: work written in the same transaction as the change it stands for."""
import enum

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    Column,
    DateTime,
    Index,
    Integer,
    String,
)

from asthron.models.base import Model, utcnow


class OutboxStatus(enum.StrEnum):
    """Where an outbox entry is on its way from the database to done."""

    pending = "pending"  # committed, not (known to be) on a queue yet
    enqueued = "enqueued"  # handed to Redis; `available_at` says when to hand it over again
    running = "running"  # claimed by a worker; `available_at` is the end of its lease
    done = "done"
    failed = "failed"  # gave up after `max_attempts`; `last_error` says why


OPEN_STATUSES = (OutboxStatus.pending, OutboxStatus.enqueued, OutboxStatus.running)


class OutboxEntry(Model):
    """One job to run for a committed change: a registered job name and the ids it needs.

    `available_at` is the single clock the sweeper reads: for a pending entry it is when the entry
    may first run (now, or a scheduled time, or the end of a retry back-off); for an enqueued or
    running one it is when the entry counts as lost and is handed to a queue again.
    """

    __tablename__ = "outbox_entry"
    __table_args__ = (
        CheckConstraint("status IN ('pending', 'enqueued', 'running', 'done', 'failed')",
                        name="ck_outbox_entry_status"),
        Index("ix_outbox_entry_due", "status", "available_at"),
        # Ids are never reused on SQLite, so a late job for a deleted entry cannot run a newer one.
        {"sqlite_autoincrement": True},
    )

    id = Column(BigInteger().with_variant(Integer(), "sqlite"), primary_key=True)
    queue = Column(String(32), nullable=False)
    job = Column(String(128), nullable=False)
    payload = Column(JSON, nullable=False, default=dict)
    status = Column(String(16), nullable=False, default=OutboxStatus.pending)
    attempts = Column(Integer, nullable=False, default=0)
    max_attempts = Column(Integer, nullable=False)
    last_error = Column(String(500), nullable=True)
    available_at = Column(DateTime(timezone=True), nullable=False, default=utcnow)
    created_at = Column(DateTime(timezone=True), nullable=False, default=utcnow)
    done_at = Column(DateTime(timezone=True), nullable=True)

    def __repr__(self):
        return f"outbox #{self.id} {self.job} {self.status}"
