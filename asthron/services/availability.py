"""Free appointment slots: working hours and overrides in each resource's zone, minus bookings and busy times.

The computation works on UTC instants. Working windows are built per local date of the resource
(so a 09:00-17:00 day stays 09:00-17:00 local across a daylight-saving change), then everything a
booking would block (its range widened by the service's buffers) must miss the resource's
existing blocked ranges and synced busy blocks. Loading takes one query for the bookings and
busy blocks of all the service's resources over the whole window.
"""
from bisect import bisect_left
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import NamedTuple
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import BigInteger, Integer, cast, func, select, union_all

from asthron.extensions import db
from asthron.models.base import utcnow
from asthron.models.booking import (
    Booking, BookingStatus, BusyBlock, DateOverride, OverrideKind, Resource, Service, WorkingHours, service_resource,
)
from asthron.services import slot_cache

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


def free_ranges(windows, busy, *, duration, before, after, step, earliest, latest):
    """Return the free starts in `windows` as ranges (first, last): starts first, first + step, ..., last.

    `windows` and `busy` are sorted, merged (start, end) ranges in epoch seconds; starts step from each
    window's start, lie in [earliest, latest), leave the appointment inside its window, and their blocked
    range (the appointment widened by `before` and `after`) misses `busy`. The gaps between busy ranges are
    computed once per window, so the cost grows with windows and bookings, not with steps.
    """
    ranges, busy_ends, n, last_start = [], [e for _s, e in busy], len(busy), latest - 1
    # The loop runs once per window and busy range of every resource: plain comparisons, not min/max calls.
    for w_start, w_end in windows:
        top = w_end - duration  # the window's last possible start
        if top < earliest:
            continue
        if w_start > last_start:
            break  # windows are sorted: the rest start later still
        i = bisect_left(busy_ends, w_start - before + 1)  # the first busy range that can touch this window
        gap_start = None
        while True:
            if i < n and busy[i][0] < w_end + after:
                gap_end = busy[i][0]
                high = gap_end - duration - after
                if high > top:
                    high = top
            else:
                gap_end, high = None, top
            low = w_start if gap_start is None or gap_start + before < w_start else gap_start + before
            if low < earliest:
                low = earliest
            if high > last_start:
                high = last_start
            low += (w_start - low) % step  # up to the window's grid
            if low <= high:
                ranges.append((low, high - (high - low) % step))
            if gap_end is None:
                break
            if gap_start is None or busy[i][1] > gap_start:
                gap_start = busy[i][1]
            i += 1
    return ranges


def expand(ranges, step):
    """Return every start of `ranges` (see free_ranges), in order."""
    return [s for first, last in ranges for s in range(first, last + 1, step)]


def merge_grid(ranges, step):
    """Return `ranges` (of many resources) merged: ranges on the same grid (remainder modulo `step`) joined.

    Fifty people free at the same times become one range per gap instead of fifty sets of starts.
    """
    grids = defaultdict(list)
    for first, last in ranges:
        grids[first % step].append((first, last))
    merged = []
    for group in grids.values():
        group.sort()
        low, high = group[0]
        for first, last in group[1:]:
            if first <= high + step:
                if last > high:
                    high = last
            else:
                merged.append((low, high))
                low, high = first, last
        merged.append((low, high))
    return merged


def expand_merged(ranges, step):
    """Return the sorted starts of `merge_grid`'s ranges (on one grid or several)."""
    starts = expand(ranges, step)
    # One grid's ranges are sorted and disjoint; starts of different grids never coincide.
    return starts if all(a[1] < b[0] for a, b in zip(ranges, ranges[1:])) else sorted(starts)


def _rows(query):
    """Run a plain SELECT on the session's connection, past the ORM's per-query tenant criteria.

    Only for queries bounded by the ids of resources the caller loaded through the guard, and by
    their workspace: the guard's criteria for every tenant model cost more than these queries.
    """
    db.session.flush()
    return db.session.connection().execute(query)


def load_resources(service):
    """Return rows of the active resources that deliver `service`, by id: what slots and calendar refresh read."""
    return _rows(select(Resource.id, Resource.time_zone, Resource.active, Resource.calendar_backend,
                        Resource.busy_refresh_at)
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
                                                           WorkingHours.workspace_id == workspace_id)).all():
            weekly[h.resource_id][h.weekday].append((h.start_time, h.end_time))
        for o in _rows(select(DateOverride.resource_id, DateOverride.date, DateOverride.kind, DateOverride.start_time,
                              DateOverride.end_time).where(DateOverride.resource_id.in_(ids),
                                                           DateOverride.workspace_id == workspace_id)).all():
            overrides[o.resource_id][o.date].append(o)
    return {r.id: Schedule(zone(r.time_zone), dict(weekly[r.id]), dict(overrides[r.id])) for r in resources}


def load_busy(resource_ids, start, end, *, workspace_id, ignore_booking_id=None):
    """Return {resource_id: merged [(start, end)] in epoch seconds} of bookings (blocked ranges) and busy blocks."""
    ranges = defaultdict(list)
    if not resource_ids:
        return ranges
    bookings = select(Booking.resource_id, _epoch(Booking.blocked_start), _epoch(Booking.blocked_end)).where(
        Booking.resource_id.in_(resource_ids), Booking.workspace_id == workspace_id,
        Booking.status == BookingStatus.confirmed, Booking.blocked_start < end, Booking.blocked_end > start)
    if ignore_booking_id is not None:
        bookings = bookings.where(Booking.id != ignore_booking_id)
    blocks = select(BusyBlock.resource_id, _epoch(BusyBlock.start_at), _epoch(BusyBlock.end_at)).where(
        BusyBlock.resource_id.in_(resource_ids), BusyBlock.workspace_id == workspace_id,
        BusyBlock.start_at < end, BusyBlock.end_at > start)
    # One round trip for both; all() fetches the rows in one call (iterating fetched them one by one).
    for resource_id, s, e in _rows(union_all(bookings, blocks)).all():
        ranges[resource_id].append((s, e))
    return {k: merge(v) for k, v in ranges.items()}


def _seconds(moment):
    return int(as_utc(moment).timestamp())


def _epoch(column):
    # The database turns times into epoch seconds: parsing 4,000 datetimes in Python costs more than the query.
    if db.session.get_bind().dialect.name == "sqlite":
        return cast(func.strftime("%s", column), Integer)
    return cast(func.extract("epoch", column), BigInteger)


def bookable_services(workspace_id):
    """Return the workspace's active services that at least one active resource delivers, by name (one query)."""
    delivered = select(service_resource.c.service_id).join(Resource, Resource.id == service_resource.c.resource_id) \
        .where(service_resource.c.service_id == Service.id, Resource.active.is_(True)).exists()
    return db.session.scalars(select(Service).where(Service.workspace_id == workspace_id, Service.active.is_(True),
                                                    delivered).order_by(Service.name, Service.id)).all()


def slots(service, *, start, end, now=None, resources=None, ignore_booking_id=None, detail=False):
    """Return the free Slots of `service` that start in [start, end) (aware datetimes), soonest first.

    With `detail`, each slot names the resources free for it; without, `resource_ids` is empty (cheaper
    for a service delivered by many people). Always computed from the database (booking checks use it).
    """
    earliest, latest = bookable_window(service, start, end, now)
    ranges = _free_ranges(service, earliest, latest, resources=resources, ignore_booking_id=ignore_booking_id)
    step, length = _step(service), timedelta(minutes=service.duration_minutes)
    if detail:
        found = defaultdict(list)
        for resource_id, own in ranges.items():
            for s in expand(own, step):
                found[s].append(resource_id)
        starts = sorted(found)
    else:
        starts = expand_merged(merge_grid([r for own in ranges.values() for r in own], step), step)
    return [Slot(moment, moment + length, tuple(found[s]) if detail else ())
            for s in starts for moment in (datetime.fromtimestamp(s, UTC),)]


class Listing(NamedTuple):
    """The free starts of a listing: sorted, merged (first, last) ranges of starts `step` seconds apart."""

    ranges: tuple
    step: int
    duration: int  # seconds

    def starts(self):
        """Return every start (epoch seconds), soonest first."""
        return expand_merged(self.ranges, self.step)


def listing(service, *, start, end, now=None, on_load=None):
    """Return the Listing of `service` for starts in [start, end): the form of `slots` for showing them.

    The free ranges of the window come from the slot cache when it holds them (services/slot_cache.py);
    notice and the booking horizon are applied after, so a cached window serves every `now`.
    `on_load(resources)` is called when the resources were read from the database.
    """
    first, last = _seconds(start), _seconds(end)

    def compute():
        resources = load_resources(service)
        if on_load is not None:
            on_load(resources)
        ranges = _free_ranges(service, first, last, resources=resources)
        return merge_grid([r for own in ranges.values() for r in own], step)

    step = _step(service)
    merged = slot_cache.ranges(service, first, last, compute)
    earliest, latest = bookable_window(service, start, end, now)
    return Listing(tuple(sorted(clip(merged, step, earliest, latest))), step, 60 * service.duration_minutes)


def bookable_window(service, start, end, now=None):
    """Return [earliest, latest) in epoch seconds: [start, end) narrowed by the service's notice and horizon."""
    now = as_utc(now or utcnow())
    earliest = max(as_utc(start), now + timedelta(minutes=service.min_notice_minutes))
    latest = min(as_utc(end), now + timedelta(days=service.max_days_ahead))
    return _seconds(earliest), _seconds(latest)


def clip(ranges, step, earliest, latest):
    """Return `ranges` (see free_ranges) narrowed to starts in [earliest, latest), each on its own grid."""
    out = []
    for first, last in ranges:
        if first < earliest:
            first += (earliest - first + step - 1) // step * step
        if last >= latest:
            last -= (last - latest) // step * step + step
        if first <= last:
            out.append((first, last))
    return out


def _step(service):
    return 60 * max(5, service.slot_step_minutes or 0)


def _free_ranges(service, first, last, *, resources=None, ignore_booking_id=None):
    """Return {resource_id: free_ranges} of `service` for starts in [first, last) (epoch seconds)."""
    if first >= last:
        return {}
    duration, before, after = (60 * m for m in (
        service.duration_minutes, service.buffer_before_minutes, service.buffer_after_minutes))
    step = _step(service)
    resources = load_resources(service) if resources is None else resources
    schedules = load_schedules(resources, service.workspace_id)
    busy = load_busy([r.id for r in resources], _moment(first - before - duration), _moment(last + duration + after),
                     workspace_id=service.workspace_id, ignore_booking_id=ignore_booking_id)
    ranges, weeks = {}, {}
    for resource in resources:
        schedule = schedules[resource.id]
        # People with the same zone, hours and overrides share their windows (a team of fifty often does).
        key = (schedule.zone.key, _frozen(schedule.weekly), _frozen(schedule.overrides))
        if key not in weeks:
            weeks[key] = _windows(schedule, _moment(first), _moment(last))
        ranges[resource.id] = free_ranges(weeks[key], busy.get(resource.id, []), duration=duration, before=before,
                                          after=after, step=step, earliest=first, latest=last)
    return ranges


def _moment(seconds):
    return datetime.fromtimestamp(seconds, UTC)


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


_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
_CLOCK = [f"{m // 60:02d}:{m % 60:02d}:00" for m in range(1440)]  # minute of the day -> "HH:MM:00"


def _offset(moment, tz):
    return int(datetime.fromtimestamp(moment, tz).utcoffset().total_seconds())


def _day_offsets(day, tz):
    """Return (transition, offset before, offset after) of UTC day `day`; transition is None when none.

    Time zones change their offset at most once a day (tzdata has no two changes within 24 hours), so
    the offsets at the day's two ends, and a binary search for the second between them, describe it.
    """
    begin, end = day * 86400, day * 86400 + 86399
    before, after = _offset(begin, tz), _offset(end, tz)
    if before == after:
        return None, before, before
    low, high = begin, end  # offset(low) == before, offset(high) == after
    while high - low > 1:
        middle = (low + high) // 2
        if _offset(middle, tz) == before:
            low = middle
        else:
            high = middle
    return high, before, after


def _offset_text(offset):
    sign, offset = ("-", -offset) if offset < 0 else ("+", offset)
    hours, rest = divmod(offset, 3600)
    minutes, seconds = divmod(rest, 60)
    return f"{sign}{hours:02d}:{minutes:02d}" + (f":{seconds:02d}" if seconds else "")


def isoformat_local(moments, tz):
    """Return `datetime.fromtimestamp(m, tz).isoformat()` for each epoch second in `moments`, much faster.

    A 60-day listing of fifty people's slots formats about 9,000 times; this looks the zone's offset up
    once per UTC day instead of once per time, and makes each date and offset text once.
    """
    out, texts, day, local_day = [], {}, None, None
    for moment in moments:
        if moment // 86400 != day:
            day = moment // 86400
            transition, before, after = _day_offsets(day, tz)
        offset = before if transition is None or moment < transition else after
        suffix = texts.get(offset)
        if suffix is None:
            suffix = texts[offset] = _offset_text(offset)
        local = moment + offset
        if local // 86400 != local_day:
            local_day = local // 86400
            prefix = date.fromordinal(_EPOCH_ORDINAL + local_day).isoformat() + "T"
        second = local - local_day * 86400
        clock = _CLOCK[second // 60] if second % 60 == 0 else \
            f"{second // 3600:02d}:{second // 60 % 60:02d}:{second % 60:02d}"
        out.append(prefix + clock + suffix)
    return out


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


__all__ = ["MAX_DAYS", "Resource", "Slot", "as_utc", "bookable_services", "free_ranges", "free_resources_at",
           "isoformat_local", "listing", "merge_grid", "slots", "visitor_window", "zone"]
