"""Free slots: working hours in each resource's zone across daylight-saving changes, buffers, notice,
overrides, bookings and synced busy times, shown in any visitor's zone."""
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from asthron.extensions import db
from asthron.models.booking import Booking, BookingStatus, BusyBlock
from asthron.services import availability
from tests.booking_helpers import add_override, make_resource, make_service

BERLIN, NEW_YORK = ZoneInfo("Europe/Berlin"), ZoneInfo("America/New_York")


@pytest.fixture
def ws(ctx):
    from asthron.services import tenancy as svc

    agency = svc.create_agency("Agency")
    workspace = svc.create_workspace(agency=agency, name="Clinic", origins=["https://clinic.example"])
    db.session.flush()
    return workspace.id


def utc(*args):
    return datetime(*args, tzinfo=UTC)


def starts(service, first, last, now=utc(2026, 1, 1)):
    return [s.start for s in availability.slots(service, start=first, end=last, now=now)]


def test_hours_stay_local_across_the_spring_change(ws):
    service = make_service(ws, [make_resource(ws, tz="Europe/Berlin", hours=((9, 10),))])
    found = starts(service, utc(2026, 3, 28), utc(2026, 3, 31))
    # 09:00 Berlin is 08:00 UTC in winter time and 07:00 UTC from 29 March (summer time).
    assert found == [utc(2026, 3, 28, 8), utc(2026, 3, 29, 7), utc(2026, 3, 30, 7)]


def test_the_skipped_hour_of_the_spring_change_offers_nothing(ws):
    service = make_service(ws, [make_resource(ws, tz="Europe/Berlin", hours=((1, 4),))])
    found = starts(service, utc(2026, 3, 29), utc(2026, 3, 29, 12))
    # 01:00-04:00 local on the day clocks jump from 02:00 to 03:00 is two real hours: 01:00 and 03:00 local.
    assert [f.astimezone(BERLIN).strftime("%H:%M%z") for f in found] == ["01:00+0100", "03:00+0200"]


def test_the_repeated_hour_of_the_autumn_change_is_offered_twice(ws):
    service = make_service(ws, [make_resource(ws, tz="Europe/Berlin", hours=((1, 4),))])
    found = starts(service, utc(2026, 10, 24, 12), utc(2026, 10, 25, 12))
    assert [f.astimezone(BERLIN).strftime("%H:%M%z") for f in found] == \
        ["01:00+0200", "02:00+0200", "02:00+0100", "03:00+0100"]


def test_a_visitor_window_is_whole_local_days_of_the_visitor(ws):
    start, end = availability.visitor_window(date(2026, 3, 8), 1, NEW_YORK)
    # 8 March 2026 is New York's spring change: the local day is 23 hours long.
    assert (start, end) == (utc(2026, 3, 8, 5), utc(2026, 3, 9, 4))


def test_slots_for_a_visitor_in_another_zone_cover_their_day(ws):
    service = make_service(ws, [make_resource(ws, tz="Europe/Berlin", hours=((9, 12),))])
    start, end = availability.visitor_window(date(2026, 6, 1), 1, ZoneInfo("Pacific/Auckland"))
    found = starts(service, start, end)
    # The Auckland day of 1 June (UTC+12) runs from 12:00 UTC on 31 May: it sees Berlin's morning of 1 June.
    assert [f.astimezone(ZoneInfo("Pacific/Auckland")).strftime("%d %H:%M") for f in found] == \
        ["01 19:00", "01 20:00", "01 21:00"]


def test_a_resource_in_another_zone_adds_its_own_hours(ws):
    berlin = make_resource(ws, name="Berlin", tz="Europe/Berlin", hours=((9, 10),))
    new_york = make_resource(ws, name="NY", tz="America/New_York", hours=((9, 10),))
    service = make_service(ws, [berlin, new_york])
    slots = availability.slots(service, start=utc(2026, 6, 1), end=utc(2026, 6, 2), now=utc(2026, 1, 1), detail=True)
    assert [(s.start, s.resource_ids) for s in slots] == [(utc(2026, 6, 1, 7), (berlin.id,)),
                                                          (utc(2026, 6, 1, 13), (new_york.id,))]


def _book(resource, service, start, *, status=BookingStatus.confirmed):
    end = start + timedelta(minutes=service.duration_minutes)
    booking = Booking(workspace_id=resource.workspace_id, service_id=service.id, resource_id=resource.id,
                      start_at=start, end_at=end,
                      blocked_start=start - timedelta(minutes=service.buffer_before_minutes),
                      blocked_end=end + timedelta(minutes=service.buffer_after_minutes), status=status,
                      name="V", email="v@example.com")
    db.session.add(booking)
    db.session.flush()
    return booking


def test_a_booking_takes_its_slot_and_a_cancelled_one_gives_it_back(ws):
    ada = make_resource(ws, hours=((9, 12),))
    service = make_service(ws, [ada])
    booking = _book(ada, service, utc(2026, 6, 1, 10))
    assert starts(service, utc(2026, 6, 1), utc(2026, 6, 2)) == [utc(2026, 6, 1, 9), utc(2026, 6, 1, 11)]
    booking.status = BookingStatus.cancelled
    db.session.flush()
    assert len(starts(service, utc(2026, 6, 1), utc(2026, 6, 2))) == 3


def test_buffers_keep_a_gap_around_existing_bookings(ws):
    ada = make_resource(ws, hours=((9, 13),))
    service = make_service(ws, [ada], duration=30, step=30, before=15, after=15)
    _book(ada, service, utc(2026, 6, 1, 11))  # blocks 10:45-11:45
    found = starts(service, utc(2026, 6, 1), utc(2026, 6, 2))
    # A slot's own blocked range (15 minutes each side) must miss 10:45-11:45.
    assert [f.strftime("%H:%M") for f in found] == ["09:00", "09:30", "10:00", "12:00", "12:30"]


def test_minimum_notice_and_horizon_limit_the_offer(ws):
    service = make_service(ws, [make_resource(ws, hours=((9, 17),))], notice=150, ahead=2)
    now = utc(2026, 6, 1, 9, 10)
    found = [s.start for s in availability.slots(service, start=utc(2026, 6, 1), end=utc(2026, 6, 10), now=now)]
    assert found[0] == utc(2026, 6, 1, 12)  # 09:10 + 2 h 30 min notice, on the hour grid
    assert found[-1] == utc(2026, 6, 3, 9)  # nothing from two days after now
    assert all(now + timedelta(minutes=150) <= f < now + timedelta(days=2) for f in found)


def test_a_closed_day_a_holiday_and_a_closed_window_remove_hours(ws):
    ada = make_resource(ws, hours=((9, 13),))
    service = make_service(ws, [ada])
    add_override(ada, date(2026, 6, 1), "closed")
    add_override(ada, date(2026, 6, 2), "holiday", label="Whit Tuesday")
    add_override(ada, date(2026, 6, 3), "closed", 10, 12)
    found = starts(service, utc(2026, 6, 1), utc(2026, 6, 4))
    assert found == [utc(2026, 6, 3, 9), utc(2026, 6, 3, 12)]


def test_extra_hours_add_to_the_week_even_on_a_day_off(ws):
    ada = make_resource(ws, hours=((9, 10),), days=[0])  # Mondays only
    service = make_service(ws, [ada])
    add_override(ada, date(2026, 6, 6), "extra", 14, 16)  # a Saturday
    add_override(ada, date(2026, 6, 8), "extra", 10, 11)  # a Monday: joins 09-10
    found = starts(service, utc(2026, 6, 6), utc(2026, 6, 9))
    assert found == [utc(2026, 6, 6, 14), utc(2026, 6, 6, 15), utc(2026, 6, 8, 9), utc(2026, 6, 8, 10)]


def test_busy_times_from_a_synced_calendar_are_taken(ws):
    ada = make_resource(ws, hours=((9, 12),))
    service = make_service(ws, [ada])
    db.session.add(BusyBlock(workspace_id=ws, resource_id=ada.id, start_at=utc(2026, 6, 1, 9, 30),
                             end_at=utc(2026, 6, 1, 10, 15), source="caldav"))
    db.session.flush()
    found = starts(service, utc(2026, 6, 1), utc(2026, 6, 2))
    assert found == [utc(2026, 6, 1, 11)]  # 09:00 and 10:00 overlap the busy time; starts stay on the hour grid


def test_working_until_midnight_is_written_as_an_end_of_zero(ws):
    service = make_service(ws, [make_resource(ws, hours=((22, 0),))])
    assert starts(service, utc(2026, 6, 1), utc(2026, 6, 2)) == [utc(2026, 6, 1, 22), utc(2026, 6, 1, 23)]


def test_another_workspaces_bookings_of_the_same_hours_do_not_matter(ws):
    ada = make_resource(ws, hours=((9, 10),))
    service = make_service(ws, [ada])
    other = make_resource(ws, name="Other", hours=((9, 10),))
    _book(other, make_service(ws, [other], name="Other service"), utc(2026, 6, 1, 9))
    assert starts(service, utc(2026, 6, 1), utc(2026, 6, 2)) == [utc(2026, 6, 1, 9)]


@pytest.mark.parametrize("name", ["", "Mars/Olympus", "../etc/passwd", "Europe/Berlin\x00", "x" * 100])
def test_unknown_zones_are_refused_with_a_clear_message(name):
    with pytest.raises(ValueError, match="IANA time zone"):
        availability.zone(name)


def test_subtract_and_merge_handle_touching_and_nested_ranges():
    a = [(1, 5), (5, 7), (9, 12)]
    assert availability.merge(a) == [(1, 7), (9, 12)]
    assert availability.subtract([(1, 7), (9, 12)], [(2, 3), (6, 10), (11, 20)]) == [(1, 2), (3, 6), (10, 11)]


@pytest.mark.parametrize("name", ["Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "Asia/Kathmandu",
                                  "Africa/Casablanca", "Pacific/Chatham", "America/St_Johns", "UTC",
                                  "America/Santiago"])
def test_isoformat_local_writes_what_datetime_writes_across_every_change(name):
    """Half-hour daylight saving (Lord Howe), 45-minute offsets, Morocco's Ramadan suspension, southern zones."""
    tz = ZoneInfo(name)
    base = int(utc(2026, 1, 1).timestamp())
    moments = list(range(base, base + 2 * 366 * 86400, 7 * 60)) + [base + 1, base + 86399, base - 3 * 86400 + 59]
    assert availability.isoformat_local(moments, tz) == [datetime.fromtimestamp(m, tz).isoformat() for m in moments]


def test_one_grid_ranges_of_many_people_merge_and_clip_on_their_own_grid():
    step = 900
    ranges = [(0, 2700), (900, 3600), (4500, 4500), (5400, 9000), (300, 1200)]  # (300, 1200) is another grid
    merged = availability.merge_grid(ranges, step)
    assert sorted(merged) == [(0, 9000), (300, 1200)]  # 3600 and 4500 are neighbours on the grid: one range
    assert availability.expand_merged(merged, step) == sorted(
        {s for first, last in ranges for s in range(first, last + 1, step)})
    assert availability.clip(merged, step, 301, 4500) == [(900, 3600), (1200, 1200)]
    assert availability.clip([(0, 3600)], step, 3601, 9000) == []
