"""Free appointment slots: working hours and overrides in each resource's zone, minus bookings and busy times.

The computation works on UTC instants. Working windows are built per local date of the resource
(so a 09:00-17:00 day stays 09:00-17:00 local across a daylight-saving change), then everything a
booking would block (its range widened by the service's buffers) must miss the resource's
existing blocked ranges and synced busy blocks. Loading takes one indexed query for bookings and
one for busy blocks, for all the service's resources and the whole window.
"""
from bisect import bisect_left
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import NamedTuple
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import BigInteger, Integer, cast, func, select

from asthron.extensions import db
from asthron.models.base import utcnow
from asthron.models.booking import (
    Booking, BookingStatus, BusyBlock, DateOverride, OverrideKind, Resource, Service, WorkingHours, service_resource,
)

MAX_DAYS = 62  # the most days one slots request may cover


class Slot(NamedTuple):
    """A bookable start: when the appointment runs (UTC) and which resources are free for it."""

    start: datetime
    end: datetime
    resource_ids: tuple


@dataclass(frozen=True)
class Schedule:
    """One resource's week in its own zone: weekday -> [(start, end)] and date -> overrides."""

    zone: ZoneInfo
    weekly: dict
    overrides: dict


def zone(name):
    """Return the ZoneInfo for an IANA name; raise ValueError for an unknown or malformed one."""
    if not isinstance(name, str) or not name or len(name) > 64 or name.startswith(("/", ".")) or ".." in name:
        raise ValueError(f"{name!r} is not an IANA time zone such as Europe/Berlin.")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise ValueError(f"{name!r} is not an IANA time zone such as Europe/Berlin.") from None


def as_utc(moment):
    """Return `moment` as an aware UTC datetime (SQLite hands back naive UTC values)."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _local(day, at, tz):
    return int(datetime.combine(day, at, tzinfo=tz).timestamp())


def _window(day, start, end, tz):
    begin = _local(day, start, tz)
    # 00:00 as an end time means midnight at the end of the day.
    finish = _local(day + timedelta(days=1), time(0), tz) if end == time(0) else _local(day, end, tz)
    return (begin, finish) if finish > begin else None


def day_windows(schedule, day):
    """Return the working windows (epoch seconds) of one local date, overrides applied, merged and sorted."""
    overrides = schedule.overrides.get(day, ())
    if any(o.kind == OverrideKind.holiday or (o.kind == OverrideKind.closed and o.start_time is None)
           for o in overrides):
        windows = []
    else:
        windows = [w for s, e in schedule.weekly.get(day.weekday(), ()) if (w := _window(day, s, e, schedule.zone))]
    for o in overrides:
        if o.kind == OverrideKind.extra and o.start_time is not None and o.end_time is not None:
            if (w := _window(day, o.start_time, o.end_time, schedule.zone)):
                windows.append(w)
    windows = merge(windows)
    closed = [w for o in overrides if o.kind == OverrideKind.closed and o.start_time is not None
              and o.end_time is not None and (w := _window(day, o.start_time, o.end_time, schedule.zone))]
    return subtract(windows, merge(closed)) if closed else windows


def merge(ranges):
    """Return `ranges` sorted with overlapping or touching ones joined."""
    out = []
    for start, end in sorted(ranges):
        if out and start <= out[-1][1]:
            if end > out[-1][1]:
                out[-1] = (out[-1][0], end)
        else:
            out.append((start, end))
    return out


def subtract(ranges, holes):
    """Return the parts of sorted, merged `ranges` not covered by sorted, merged `holes`."""
    out, i = [], 0
    for start, end in ranges:
        while i < len(holes) and holes[i][1] <= start:
            i += 1
        j, cursor = i, start
        while j < len(holes) and holes[j][0] < end:
            if holes[j][0] > cursor:
                out.append((cursor, holes[j][0]))
            cursor = max(cursor, holes[j][1])
            j += 1
        if cursor < end:
            out.append((cursor, end))
    return out


def free_starts(windows, busy, *, duration, before, after, step, earliest, latest):
    """Return the starts (epoch seconds) in `windows` whose appointment fits and whose blocked range misses `busy`.

    `windows` and `busy` are sorted, merged (start, end) second ranges; starts step from each window's
    start, lie in [earliest, latest) and leave the appointment inside its window. The gaps between busy
    ranges are computed once per window, so the cost grows with windows and bookings, not with steps.
    """
    starts, busy_ends, n = [], [e for _s, e in busy], len(busy)
    for w_start, w_end in windows:
        i = bisect_left(busy_ends, w_start - before + 1)  # the first busy range that can touch this window
        gap_start = None
        while True:
            gap_end = busy[i][0] if i < n and busy[i][0] < w_end + after else None
            low = w_start if gap_start is None else max(w_start, gap_start + before)
            high = w_end - duration if gap_end is None else min(w_end - duration, gap_end - duration - after)
            low, high = max(low, earliest), min(high, latest - 1)
            if low <= high:
                low = w_start + -(-(low - w_start) // step) * step  # up to the window's grid
                starts.extend(range(low, high + 1, step))
            if gap_end is None:
                break
            gap_start = busy[i][1] if gap_start is None else max(gap_start, busy[i][1])
            i += 1
    return starts


def _rows(query):
    """Run a plain SELECT on the session's connection, past the ORM's per-query tenant criteria.

    Only for queries bounded by the ids of resources the caller loaded through the guard, and by
    their workspace: the guard's criteria for every tenant model cost more than these queries.
    """
    db.session.flush()
    return db.session.connection().execute(query)


def load_resources(service):
    """Return (id, time_zone) rows of the active resources that deliver `service`, by id."""
    return _rows(select(Resource.id, Resource.time_zone)
                 .join(service_resource, service_resource.c.resource_id == Resource.id)
                 .where(service_resource.c.service_id == service.id, Resource.workspace_id == service.workspace_id,
                        Resource.active.is_(True)).order_by(Resource.id)).all()


def load_schedules(resources, workspace_id):
    """Return {resource_id: Schedule} for `resources`, with their weekly hours and overrides."""
    ids = [r.id for r in resources]
    weekly, overrides = defaultdict(lambda: defaultdict(list)), defaultdict(lambda: defaultdict(list))
    if ids:
        for h in _rows(select(WorkingHours.resource_id, WorkingHours.weekday, WorkingHours.start_time,
                              WorkingHours.end_time).where(WorkingHours.resource_id.in_(ids),
                                                           WorkingHours.workspace_id == workspace_id)):
            weekly[h.resource_id][h.weekday].append((h.start_time, h.end_time))
        for o in _rows(select(DateOverride.resource_id, DateOverride.date, DateOverride.kind, DateOverride.start_time,
                              DateOverride.end_time).where(DateOverride.resource_id.in_(ids),
                                                           DateOverride.workspace_id == workspace_id)):
            overrides[o.resource_id][o.date].append(o)
    return {r.id: Schedule(zone(r.time_zone), dict(weekly[r.id]), dict(overrides[r.id])) for r in resources}


def load_busy(resource_ids, start, end, *, workspace_id, ignore_booking_id=None):
    """Return {resource_id: merged [(start, end)] in epoch seconds} of bookings (blocked ranges) and busy blocks."""
    ranges = defaultdict(list)
    if not resource_ids:
        return ranges
    query = select(Booking.resource_id, _epoch(Booking.blocked_start), _epoch(Booking.blocked_end)).where(
        Booking.resource_id.in_(resource_ids), Booking.workspace_id == workspace_id,
        Booking.status == BookingStatus.confirmed, Booking.blocked_start < end, Booking.blocked_end > start)
    if ignore_booking_id is not None:
        query = query.where(Booking.id != ignore_booking_id)
    for resource_id, s, e in _rows(query):
        ranges[resource_id].append((s, e))
    rows = _rows(
        select(BusyBlock.resource_id, _epoch(BusyBlock.start_at), _epoch(BusyBlock.end_at)).where(
            BusyBlock.resource_id.in_(resource_ids), BusyBlock.workspace_id == workspace_id,
            BusyBlock.start_at < end, BusyBlock.end_at > start))
    for resource_id, s, e in rows:
        ranges[resource_id].append((s, e))
    return {k: merge(v) for k, v in ranges.items()}


def _seconds(moment):
    return int(as_utc(moment).timestamp())


def _epoch(column):
    # The database turns times into epoch seconds: parsing 4,000 datetimes in Python costs more than the query.
    if db.session.get_bind().dialect.name == "sqlite":
        return cast(func.strftime("%s", column), Integer)
    return cast(func.extract("epoch", column), BigInteger)


def bookable_resources(service):
    """Return the active resources that deliver `service`, by id."""
    return sorted((r for r in service.resources if r.active), key=lambda r: r.id)


def slots(service, *, start, end, now=None, resources=None, ignore_booking_id=None, detail=False):
    """Return the free Slots of `service` that start in [start, end) (aware datetimes), soonest first.

    With `detail`, each slot names the resources free for it; without, `resource_ids` is empty (cheaper
    for a service delivered by many people).
    """
    now = as_utc(now or utcnow())
    earliest = max(as_utc(start), now + timedelta(minutes=service.min_notice_minutes))
    latest = min(as_utc(end), now + timedelta(days=service.max_days_ahead))
    if earliest >= latest:
        return []
    resources = load_resources(service) if resources is None else resources
    minutes = {"duration": service.duration_minutes, "before": service.buffer_before_minutes,
               "after": service.buffer_after_minutes, "step": max(5, service.slot_step_minutes or 0)}
    duration, before, after, step = (60 * minutes[k] for k in ("duration", "before", "after", "step"))
    first, last = _seconds(earliest), _seconds(latest)
    schedules = load_schedules(resources, service.workspace_id)
    busy = load_busy([r.id for r in resources], earliest - timedelta(seconds=before + duration),
                     latest + timedelta(seconds=duration + after), workspace_id=service.workspace_id,
                     ignore_booking_id=ignore_booking_id)
    found, weeks = (defaultdict(list) if detail else set()), {}
    for resource in resources:
        schedule = schedules[resource.id]
        # People with the same zone, hours and overrides share their windows (a team of fifty often does).
        key = (schedule.zone.key, _frozen(schedule.weekly), _frozen(schedule.overrides))
        if key not in weeks:
            weeks[key] = _windows(schedule, earliest, latest)
        starts = free_starts(weeks[key], busy.get(resource.id, []), duration=duration, before=before, after=after,
                             step=step, earliest=first, latest=last)
        if detail:
            for s in starts:
                found[s].append(resource.id)
        else:
            found.update(starts)
    length = timedelta(seconds=duration)
    return [Slot(moment, moment + length, tuple(found[s]) if detail else ())
            for s in sorted(found) for moment in (datetime.fromtimestamp(s, UTC),)]


def _windows(schedule, earliest, latest):
    day = earliest.astimezone(schedule.zone).date() - timedelta(days=1)
    last_day = latest.astimezone(schedule.zone).date()
    windows = []
    while day <= last_day:
        windows.extend(day_windows(schedule, day))
        day += timedelta(days=1)
    return merge(windows)


def _frozen(mapping):
    return tuple(sorted((k, tuple((getattr(v, "kind", None), getattr(v, "start_time", v), getattr(v, "end_time", None))
                                  for v in values)) for k, values in mapping.items()))


def visitor_window(first_day: date, days: int, tz: ZoneInfo):
    """Return the UTC range [start, end) of `days` whole local days from `first_day` in zone `tz`."""
    start = datetime.combine(first_day, time(0), tzinfo=tz).astimezone(UTC)
    end = datetime.combine(first_day + timedelta(days=days), time(0), tzinfo=tz).astimezone(UTC)
    return start, end


def free_resources_at(service, start, *, now=None, ignore_booking_id=None):
    """Return the ids of resources free for `service` at exactly `start` (an offered slot), by id."""
    start = as_utc(start)
    for slot in slots(service, start=start, end=start + timedelta(seconds=1), now=now,
                      ignore_booking_id=ignore_booking_id, detail=True):
        if slot.start == start:
            return list(slot.resource_ids)
    return []


def service_in_workspace(workspace_id, service_id):
    """Return the workspace's active service with that id, or None."""
    service = db.session.get(Service, service_id)
    if service is None or service.workspace_id != workspace_id or not service.active:
        return None
    return service


__all__ = ["MAX_DAYS", "Resource", "Slot", "as_utc", "bookable_resources", "free_resources_at", "free_starts",
           "slots", "visitor_window", "zone"]
