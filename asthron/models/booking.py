"""Appointments: services, bookable resources and their hours, bookings, synced busy times and settings.

Times are stored in UTC. A booking blocks its resource from `blocked_start` (start minus the
service's buffer before) to `blocked_end` (end plus the buffer after); the database refuses two
confirmed bookings of one resource whose blocked ranges overlap (see `NO_OVERLAP_*` below).
"""
import enum
import secrets

from sqlalchemy import (
    JSON, Boolean, Column, Date, DateTime, Enum, ForeignKey, Index, Integer, String, Table, Text, Time, event, text,
)
from sqlalchemy.orm import relationship

from asthron.models.base import Model, Timestamped, WorkspaceOwned


def _enum(kind, name, length=16):
    """Store the member name, like the other enums of the schema."""
    return Enum(kind, name=name, native_enum=False, length=length)


class BookingStatus(str, enum.Enum):
    confirmed = "confirmed"  # the only active status: it holds the slot
    cancelled = "cancelled"


class OverrideKind(str, enum.Enum):
    closed = "closed"  # closed all day, or only between start_time and end_time when they are set
    extra = "extra"  # extra working hours between start_time and end_time
    holiday = "holiday"  # closed all day; `label` names the holiday


service_resource = Table(
    "service_resource", Model.metadata,
    Column("service_id", Integer, ForeignKey("service.id", ondelete="CASCADE"), primary_key=True),
    Column("resource_id", Integer, ForeignKey("resource.id", ondelete="CASCADE"), primary_key=True, index=True),
)


class Service(WorkspaceOwned, Timestamped, Model):
    """Something a visitor can book: how long it takes, its buffers, notice and horizon, who delivers it."""

    __tablename__ = "service"

    id = Column(Integer, primary_key=True)
    name = Column(String(120), nullable=False)
    description = Column(Text, nullable=True)
    duration_minutes = Column(Integer, nullable=False, default=30)
    buffer_before_minutes = Column(Integer, nullable=False, default=0)
    buffer_after_minutes = Column(Integer, nullable=False, default=0)
    min_notice_minutes = Column(Integer, nullable=False, default=120)
    max_days_ahead = Column(Integer, nullable=False, default=60)
    slot_step_minutes = Column(Integer, nullable=False, default=15)  # distance between offered start times
    price_text = Column(String(80), nullable=True)
    location_text = Column(String(300), nullable=True)  # an address or a meeting link
    active = Column(Boolean, nullable=False, default=True)
    workspace = relationship("Workspace")
    resources = relationship("Resource", secondary=service_resource, back_populates="services")

    def __repr__(self):
        return self.name


class Resource(WorkspaceOwned, Timestamped, Model):
    """A bookable staff member or thing (a room), with working hours in its own IANA time zone."""

    __tablename__ = "resource"
    __audit_ignore__ = ("busy_synced_at", "busy_refresh_at", "busy_sync_error")  # rewritten by every calendar read

    id = Column(Integer, primary_key=True)
    name = Column(String(120), nullable=False)
    user_id = Column(Integer, ForeignKey("ab_user.id", ondelete="SET NULL"), nullable=True, index=True)
    email = Column(String(320), nullable=True)  # where the resource's own notices go, if anywhere
    time_zone = Column(String(64), nullable=False, default="UTC")
    active = Column(Boolean, nullable=False, default=True)
    # The calendar backend that holds the resource's busy times and receives its bookings.
    calendar_backend = Column(String(64), nullable=False, default="internal")
    calendar_settings = Column(JSON, nullable=False, default=dict)  # secrets as {"$env": "VAR"}
    feed_token_hash = Column(String(128), nullable=True, unique=True)  # the private ICS feed's token, hashed
    # Calendar sync (H6): an OAuth backend's token (Fernet-encrypted, asthron.services.encryption) and
    # the state of the busy-time reads (asthron.services.calendar_sync, docs/calendar.md).
    calendar_token_encrypted = Column(Text, nullable=True)
    busy_synced_at = Column(DateTime(timezone=True), nullable=True)  # last successful read of busy times
    busy_refresh_at = Column(DateTime(timezone=True), nullable=True)  # when the scheduled read runs next
    busy_sync_error = Column(String(500), nullable=True)  # why the last read failed, shown to staff
    workspace = relationship("Workspace")
    user = relationship("User", foreign_keys=[user_id])
    services = relationship("Service", secondary=service_resource, back_populates="resources")
    working_hours = relationship("WorkingHours", back_populates="resource", passive_deletes=True,
                                 order_by="(WorkingHours.weekday, WorkingHours.start_time)")
    overrides = relationship("DateOverride", back_populates="resource", passive_deletes=True,
                             order_by="DateOverride.date")

    def __repr__(self):
        return self.name


class WorkingHours(WorkspaceOwned, Model):
    """A weekly working window of a resource, in the resource's time zone (weekday 0 is Monday)."""

    __tablename__ = "working_hours"

    id = Column(Integer, primary_key=True)
    resource_id = Column(Integer, ForeignKey("resource.id", ondelete="CASCADE"), nullable=False, index=True)
    weekday = Column(Integer, nullable=False)
    start_time = Column(Time, nullable=False)
    end_time = Column(Time, nullable=False)
    resource = relationship("Resource", back_populates="working_hours")

    def __repr__(self):
        days = "Mon Tue Wed Thu Fri Sat Sun".split()
        return f"{days[self.weekday] if self.weekday is not None else '?'} {self.start_time}-{self.end_time}"


class DateOverride(WorkspaceOwned, Model):
    """A change to one date of a resource's week: closed (all day or a window), extra hours, or a holiday."""

    __tablename__ = "date_override"
    __table_args__ = (Index("ix_date_override_resource_date", "resource_id", "date"),)

    id = Column(Integer, primary_key=True)
    resource_id = Column(Integer, ForeignKey("resource.id", ondelete="CASCADE"), nullable=False)
    date = Column(Date, nullable=False)
    kind = Column(_enum(OverrideKind, "date_override_kind"), nullable=False, default=OverrideKind.closed)
    start_time = Column(Time, nullable=True)
    end_time = Column(Time, nullable=True)
    label = Column(String(120), nullable=True)
    resource = relationship("Resource", back_populates="overrides")

    def __repr__(self):
        return f"{self.date} {self.kind.value if self.kind else ''} {self.label or ''}".strip()


def new_booking_reference():
    """Return a short public reference for a booking (shown to the visitor, used in ICS UIDs)."""
    return "bk_" + secrets.token_urlsafe(12)


class Booking(WorkspaceOwned, Timestamped, Model):
    """An appointment of a visitor with a resource for a service."""

    __tablename__ = "booking"
    __audit_ignore__ = ("sync_status", "sync_error", "reminders_sent", "updated_at", "external_event_id",
                        "calendar_resource_id")
    __table_args__ = (
        # Availability loads one resource's bookings for a window with this index.
        Index("ix_booking_resource_blocked", "resource_id", "blocked_start", "blocked_end"),
        Index("ix_booking_workspace_start", "workspace_id", "start_at"),
        Index("uq_booking_workspace_idempotency", "workspace_id", "idempotency_key", unique=True,
              postgresql_where=text("idempotency_key IS NOT NULL"),
              sqlite_where=text("idempotency_key IS NOT NULL")),
    )

    id = Column(Integer, primary_key=True)
    reference = Column(String(32), nullable=False, unique=True, default=new_booking_reference)
    service_id = Column(Integer, ForeignKey("service.id", ondelete="RESTRICT"), nullable=False, index=True)
    resource_id = Column(Integer, ForeignKey("resource.id", ondelete="RESTRICT"), nullable=False)
    start_at = Column(DateTime(timezone=True), nullable=False)
    end_at = Column(DateTime(timezone=True), nullable=False)
    blocked_start = Column(DateTime(timezone=True), nullable=False)  # start_at minus the buffer before
    blocked_end = Column(DateTime(timezone=True), nullable=False)  # end_at plus the buffer after
    status = Column(_enum(BookingStatus, "booking_status"), nullable=False, default=BookingStatus.confirmed)
    name = Column(String(200), nullable=False)
    email = Column(String(320), nullable=False)
    visitor_time_zone = Column(String(64), nullable=False, default="UTC")
    conversation_id = Column(String(40), ForeignKey("conversation.id", ondelete="SET NULL"), nullable=True,
                             index=True)
    lead_id = Column(Integer, ForeignKey("lead.id", ondelete="SET NULL"), nullable=True, index=True)
    source = Column(String(16), nullable=False, default="widget")  # widget, ai, admin
    idempotency_key = Column(String(200), nullable=True)
    request_fingerprint = Column(String(64), nullable=True)  # sha256 of the request that used the key
    cancelled_at = Column(DateTime(timezone=True), nullable=True)
    cancel_reason = Column(String(300), nullable=True)
    reminders_sent = Column(JSON, nullable=False, default=list)  # "<minutes>@<start iso>" markers
    # Calendar sync (H6): the event written to the resource's calendar and how the last sync went.
    external_event_id = Column(String(500), nullable=True)
    sync_status = Column(String(16), nullable=False, default="pending")  # pending, synced, failed, none
    sync_error = Column(String(500), nullable=True)
    # The resource whose calendar holds external_event_id (a reschedule may move the booking to another).
    calendar_resource_id = Column(Integer, nullable=True)
    workspace = relationship("Workspace")
    service = relationship("Service")
    resource = relationship("Resource")
    lead = relationship("Lead")

    def __repr__(self):
        return f"{self.service} with {self.resource} at {self.start_at:%Y-%m-%d %H:%M}Z" if self.start_at else "Booking"

    @property
    def start_local(self):
        """The start in the workspace's time zone, for admin pages."""
        return _in_zone(self.start_at, self.workspace.time_zone if self.workspace else "UTC")

    @property
    def end_local(self):
        """The end in the workspace's time zone, for admin pages."""
        return _in_zone(self.end_at, self.workspace.time_zone if self.workspace else "UTC")


def _in_zone(moment, zone_name):
    from datetime import UTC
    from zoneinfo import ZoneInfo

    if moment is None:
        return ""
    moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment
    return moment.astimezone(ZoneInfo(zone_name)).strftime("%Y-%m-%d %H:%M")


class BusyBlock(WorkspaceOwned, Model):
    """A busy time of a resource read from its external calendar; availability subtracts it."""

    __tablename__ = "busy_block"
    __audited__ = False  # rewritten by every sync; the calendar is the record of it
    __table_args__ = (Index("ix_busy_block_resource_range", "resource_id", "start_at", "end_at"),)

    id = Column(Integer, primary_key=True)
    resource_id = Column(Integer, ForeignKey("resource.id", ondelete="CASCADE"), nullable=False)
    start_at = Column(DateTime(timezone=True), nullable=False)
    end_at = Column(DateTime(timezone=True), nullable=False)
    source = Column(String(64), nullable=False, default="internal")  # the calendar backend's name
    external_id = Column(String(500), nullable=True)
    resource = relationship("Resource")


class BookingSettings(WorkspaceOwned, Timestamped, Model):
    """A workspace's booking options (one row per workspace): when reminders go out."""

    __tablename__ = "booking_settings"
    __table_args__ = (Index("uq_booking_settings_workspace", "workspace_id", unique=True),)

    id = Column(Integer, primary_key=True)
    reminder_offsets_minutes = Column(JSON, nullable=False, default=lambda: [1440, 60])
    reminders_enabled = Column(Boolean, nullable=False, default=True)
    workspace = relationship("Workspace")


# No double booking, enforced by the database. PostgreSQL: an exclusion constraint over the resource
# and the blocked range of confirmed bookings (btree_gist gives `=` on integers a GiST operator class).
# SQLite: triggers that abort an insert or update that would overlap; SQLite serialises writers, so a
# check inside the writing statement cannot race. The migration runs these same statements.
NO_OVERLAP_POSTGRESQL_PRE = ["CREATE EXTENSION IF NOT EXISTS btree_gist"]
NO_OVERLAP_POSTGRESQL = [
    ("ALTER TABLE booking ADD CONSTRAINT ex_booking_no_overlap EXCLUDE USING gist "
     "(resource_id WITH =, tstzrange(blocked_start, blocked_end, '[)') WITH &&) WHERE (status = 'confirmed')"),
]
_SQLITE_OVERLAP = ("SELECT RAISE(ABORT, 'booking_overlap') WHERE EXISTS (SELECT 1 FROM booking b "
                   "WHERE b.resource_id = NEW.resource_id AND b.status = 'confirmed' AND b.id IS NOT NEW.id "
                   "AND b.blocked_start < NEW.blocked_end AND b.blocked_end > NEW.blocked_start)")
NO_OVERLAP_SQLITE = [
    ("CREATE TRIGGER booking_no_overlap_insert BEFORE INSERT ON booking "
     f"WHEN NEW.status = 'confirmed' BEGIN {_SQLITE_OVERLAP}; END"),
    ("CREATE TRIGGER booking_no_overlap_update BEFORE UPDATE OF resource_id, blocked_start, blocked_end, status "
     f"ON booking WHEN NEW.status = 'confirmed' BEGIN {_SQLITE_OVERLAP}; END"),
]
OVERLAP_CONSTRAINT_NAMES = ("ex_booking_no_overlap", "booking_overlap")


def _before_create(target, connection, **kw):
    if connection.dialect.name == "postgresql":
        for statement in NO_OVERLAP_POSTGRESQL_PRE:
            connection.execute(text(statement))


def _after_create(target, connection, **kw):
    statements = {"postgresql": NO_OVERLAP_POSTGRESQL, "sqlite": NO_OVERLAP_SQLITE}.get(connection.dialect.name, [])
    for statement in statements:
        connection.execute(text(statement))


event.listen(Booking.__table__, "before_create", _before_create)
event.listen(Booking.__table__, "after_create", _after_create)


def is_overlap_error(exc):
    """Say whether a database error is the no-double-booking guarantee refusing a write."""
    message = str(getattr(exc, "orig", exc))
    return any(name in message for name in OVERLAP_CONSTRAINT_NAMES)
