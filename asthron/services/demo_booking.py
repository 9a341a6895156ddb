"""Demo booking data per workspace: two services, two people (one in another time zone), a few bookings.

Seeding is idempotent: a workspace that already has services is left as it is. Demo bookings are
written as rows (no emails, reminders or calendar events for made-up visitors) on the first free
slots from tomorrow, so free slots remain from the day after tomorrow on.
"""
from datetime import UTC, datetime, time, timedelta

from sqlalchemy import select

from asthron.extensions import db
from asthron.models.booking import Booking, BookingSettings, Resource, Service, WorkingHours
from asthron.models.chat import WidgetSettings
from asthron.services import availability

PEOPLE = [
    # name, zone (None: the workspace's), weekdays, local hours
    ("Maya Patel", None, range(5), [(time(9), time(12)), (time(13), time(17))]),
    ("Sam Rivera", "other", range(6), [(time(10), time(16))]),
]
SERVICES = [
    # name, minutes, buffer before, buffer after, notice minutes, step, price, location, people
    ("Free first consultation", 30, 0, 10, 120, 30, "Free", "Video call: the link is in your confirmation", (0, 1)),
    ("Full appointment", 60, 15, 15, 24 * 60, 30, "From 80", "At our office", (0,)),
]
DEMO_BOOKINGS = 3


def _other_zone(zone_name):
    return "Europe/Lisbon" if zone_name.startswith("America/") else "America/New_York"


def seed_workspace(workspace, *, now=None):
    """Give `workspace` demo services, people with hours and a few bookings, unless it has services already."""
    if db.session.scalar(select(Service.id).where(Service.workspace_id == workspace.id).limit(1)):
        return
    people = []
    for name, zone_name, days, windows in PEOPLE:
        tz = workspace.time_zone if zone_name is None else _other_zone(workspace.time_zone)
        person = Resource(workspace_id=workspace.id, name=name, time_zone=tz)
        db.session.add(person)
        db.session.flush()
        db.session.add_all(WorkingHours(workspace_id=workspace.id, resource_id=person.id, weekday=day,
                                        start_time=start, end_time=end) for day in days for start, end in windows)
        people.append(person)
    services = []
    for name, minutes, before, after, notice, step, price, location, delivered_by in SERVICES:
        service = Service(workspace_id=workspace.id, name=name, duration_minutes=minutes, buffer_before_minutes=before,
                          buffer_after_minutes=after, min_notice_minutes=notice, max_days_ahead=60,
                          slot_step_minutes=step, price_text=price, location_text=location,
                          description=f"{name} with our team.")
        service.resources = [people[i] for i in delivered_by]
        db.session.add(service)
        services.append(service)
    if not db.session.scalar(select(BookingSettings.id).where(BookingSettings.workspace_id == workspace.id)):
        db.session.add(BookingSettings(workspace_id=workspace.id, reminder_offsets_minutes=[1440, 60]))
    db.session.flush()
    _book_soon(workspace, services[0], now=now)
    _enable_tools(workspace)


def _book_soon(workspace, service, *, now):
    now = now or datetime.now(UTC)
    tz = availability.zone(workspace.time_zone)
    # From tomorrow, on the first working day: three bookings leave most slots free.
    start, end = availability.visitor_window(now.astimezone(tz).date() + timedelta(days=1), 7, tz)
    for n in range(1, DEMO_BOOKINGS + 1):
        free = availability.slots(service, start=start, end=end, now=now, detail=True)  # each booking adds buffers
        if not free:
            return
        slot, length = free[0], timedelta(minutes=service.duration_minutes)
        db.session.add(Booking(
            workspace_id=workspace.id, service_id=service.id, resource_id=slot.resource_ids[0], start_at=slot.start,
            end_at=slot.start + length,
            blocked_start=slot.start - timedelta(minutes=service.buffer_before_minutes),
            blocked_end=slot.start + length + timedelta(minutes=service.buffer_after_minutes),
            name=f"Demo visitor {n}", email=f"demo.visitor{n}@example.com", visitor_time_zone=workspace.time_zone,
            source="admin", sync_status="none"))
        db.session.flush()


def _enable_tools(workspace):
    settings = db.session.scalar(select(WidgetSettings).where(WidgetSettings.workspace_id == workspace.id))
    if settings is not None:
        wanted = [t for t in ("list_slots", "book") if t not in (settings.enabled_tools or [])]
        settings.enabled_tools = list(settings.enabled_tools or []) + wanted
