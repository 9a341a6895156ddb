"""The CalDAV plugin against a real Radicale server: events written, moved and removed, busy times read."""
import threading
import uuid
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from sqlalchemy import select

from asthron.extensions import db
from asthron.models.booking import Booking, BusyBlock, Resource
from asthron.providers.calendar import CalendarError, CalendarEvent
from asthron.services import availability, booking as booking_service, calendar_sync
from tests.booking_helpers import make_resource, make_service
from tests.caldav_server import free_port

PASSWORD_VAR = "ASTHRON_TEST_CALDAV_PASSWORD"


def at(days, hour, minute=0):
    day = datetime.now(UTC).date() + timedelta(days=days)
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=UTC)


@pytest.fixture
def calendar_url(radicale):
    return radicale.new_calendar()


@pytest.fixture
def settings(radicale, calendar_url, monkeypatch):
    """Resolved settings, as the core hands them to the backend."""
    return {"url": radicale.url, "username": radicale.username, "password": radicale.password,
            "calendar_url": calendar_url}


@pytest.fixture
def dav(caldav_plugin):
    return caldav_plugin.CalDAVCalendar()


def server_events(radicale, calendar_url):
    """Return {uid: (start, end)} of the events in the calendar, read with a client of our own."""
    calendar = radicale.client().calendar(url=calendar_url)
    found = {}
    for event in calendar.events():
        component = event.icalendar_component
        found[str(component["UID"])] = (component["DTSTART"].dt, component["DTEND"].dt)
    return found


def put_event(radicale, calendar_url, start, end, *, transparent=False, status=None, all_day=None):
    """Write an event of the staff member's own into the calendar."""
    lines = ["BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//test//test//EN", "BEGIN:VEVENT",
             f"UID:{uuid.uuid4()}", "DTSTAMP:20260101T000000Z", "SUMMARY:Dentist"]
    if all_day:
        lines += [f"DTSTART;VALUE=DATE:{all_day:%Y%m%d}", f"DTEND;VALUE=DATE:{all_day + timedelta(days=1):%Y%m%d}"]
    else:
        lines += [f"DTSTART:{start:%Y%m%dT%H%M%SZ}", f"DTEND:{end:%Y%m%dT%H%M%SZ}"]
    if transparent:
        lines.append("TRANSP:TRANSPARENT")
    if status:
        lines.append(f"STATUS:{status}")
    lines += ["END:VEVENT", "END:VCALENDAR"]
    radicale.client().calendar(url=calendar_url).add_event("\r\n".join(lines) + "\r\n")


def event(uid="bk_test@asthron", start=None, hours=1):
    start = start or at(3, 10)
    return CalendarEvent(summary="Consultation (bk_test)", start=start, end=start + timedelta(hours=hours), uid=uid,
                         description="Booking bk_test", location="Main street 1")


# --- The plugin on its own ------------------------------------------------------------------------------

def test_the_plugin_registers_the_caldav_backend_and_no_subprocessor(caldav_plugin):
    from asthron.registry import calendar_backends, subprocessors

    assert "caldav" in calendar_backends.names()
    assert not [e for e in subprocessors.entries() if e.plugin == "caldav_calendar"]


def test_an_event_is_written_under_the_booking_uid_and_written_again_stays_one(dav, settings, radicale,
                                                                              calendar_url):
    assert dav.create_event(settings=settings, event=event()) == "bk_test@asthron"
    moved = event(start=at(3, 14))
    assert dav.create_event(settings=settings, event=moved) == "bk_test@asthron"
    assert server_events(radicale, calendar_url) == {"bk_test@asthron": (at(3, 14), at(3, 15))}


def test_deleting_removes_the_event_and_deleting_it_again_is_fine(dav, settings, radicale, calendar_url):
    dav.create_event(settings=settings, event=event())
    dav.delete_event(settings=settings, event_id="bk_test@asthron")
    assert server_events(radicale, calendar_url) == {}
    dav.delete_event(settings=settings, event_id="bk_test@asthron")


def test_busy_times_come_from_the_free_busy_report(dav, settings, radicale, calendar_url):
    put_event(radicale, calendar_url, at(2, 9), at(2, 10))
    put_event(radicale, calendar_url, at(4, 13), at(4, 15, 30))
    put_event(radicale, calendar_url, at(20, 9), at(20, 10))  # outside the range asked for
    busy = dav.busy_times(settings=settings, start=at(1, 0), end=at(10, 0))
    assert [(p.start, p.end) for p in busy] == [(at(2, 9), at(2, 10)), (at(4, 13), at(4, 15, 30))]


def test_busy_times_by_search_skip_free_and_cancelled_events_and_place_all_day_ones_in_the_zone(
        dav, settings, radicale, calendar_url):
    put_event(radicale, calendar_url, at(2, 9), at(2, 10))
    put_event(radicale, calendar_url, at(2, 11), at(2, 12), transparent=True)
    put_event(radicale, calendar_url, at(2, 13), at(2, 14), status="CANCELLED")
    day = (at(3, 0)).date()
    put_event(radicale, calendar_url, None, None, all_day=day)
    busy = dav.busy_times(settings={**settings, "freebusy": False, "time_zone": "Europe/Berlin"},
                              start=at(1, 0), end=at(10, 0))
    berlin_midnight = datetime(day.year, day.month, day.day, tzinfo=availability.zone("Europe/Berlin"))
    assert [(p.start, p.end) for p in busy] == [
        (at(2, 9), at(2, 10)),
        (berlin_midnight.astimezone(UTC), (berlin_midnight + timedelta(days=1)).astimezone(UTC))]


def test_the_calendar_can_be_named_by_its_display_name_or_left_to_the_first(dav, settings, radicale):
    name = f"named-{uuid.uuid4().hex[:6]}"
    url = str(radicale.client().principal().make_calendar(name=name).url)
    by_name = {k: v for k, v in settings.items() if k != "calendar_url"} | {"calendar": name}
    dav.create_event(settings=by_name, event=event(uid="named@asthron"))
    assert "named@asthron" in server_events(radicale, url)


def test_a_wrong_password_is_a_clear_error_that_is_not_retried_and_hides_the_password(dav, settings):
    with pytest.raises(CalendarError) as refused:
        dav.busy_times(settings={**settings, "password": "wrong-secret-491"}, start=at(1, 0), end=at(2, 0))
    assert not refused.value.retryable
    assert "401" in str(refused.value) and "password" in str(refused.value)
    assert "wrong-secret-491" not in str(refused.value)


def test_an_unknown_calendar_is_not_retried(dav, settings, radicale):
    missing = {**settings, "calendar_url": radicale.url + "alice/no-such-calendar/"}
    with pytest.raises(CalendarError) as refused:
        dav.create_event(settings=missing, event=event())
    assert not refused.value.retryable


def test_deleting_from_a_calendar_that_is_gone_is_an_error_not_a_success(dav, settings, radicale):
    missing = {**settings, "calendar_url": radicale.url + "alice/no-such-calendar/"}
    with pytest.raises(CalendarError) as refused:
        dav.delete_event(settings=missing, event_id="bk_test@asthron")
    assert not refused.value.retryable and "404" in str(refused.value)


def test_a_server_that_does_not_answer_is_retried(dav, settings):
    down = {**settings, "url": f"http://127.0.0.1:{free_port()}/", "calendar_url": None}
    with pytest.raises(CalendarError) as failed:
        dav.busy_times(settings=down, start=at(1, 0), end=at(2, 0))
    assert failed.value.retryable and "could not reach" in str(failed.value)


class _Failing(BaseHTTPRequestHandler):
    def _fail(self):
        self.send_response(500)
        self.send_header("Content-Type", "text/plain")
        self.end_headers()
        self.wfile.write(b"internal error: db password=hunter2 leaked in a stack trace")

    do_PROPFIND = do_REPORT = do_PUT = do_DELETE = do_GET = _fail

    def log_message(self, *args):
        pass


def test_a_server_error_is_retried_and_its_text_is_not_repeated(dav, settings):
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Failing)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/"
        with pytest.raises(CalendarError) as failed:
            dav.create_event(settings={**settings, "url": url, "calendar_url": url + "cal/"}, event=event())
    finally:
        server.shutdown()
        server.server_close()
    assert failed.value.retryable and "500" in str(failed.value)
    assert "hunter2" not in str(failed.value)


# --- Through the core: bookings and busy blocks -------------------------------------------------------

@pytest.fixture
def clinic(ctx, caldav_plugin, radicale, calendar_url, monkeypatch):
    """A workspace whose one staff member keeps her bookings in a Radicale calendar."""
    from asthron.services import tenancy as svc

    monkeypatch.setenv(PASSWORD_VAR, radicale.password)
    agency = svc.create_agency("Agency")
    workspace = svc.create_workspace(agency=agency, name="Clinic", origins=["https://clinic.example"])
    db.session.flush()
    ada = make_resource(workspace.id, name="Ada")
    ada.calendar_backend = "caldav"
    ada.calendar_settings = {"url": radicale.url, "username": radicale.username,
                             "password": {"$env": PASSWORD_VAR}, "calendar_url": calendar_url}
    consultation = make_service(workspace.id, [ada])
    db.session.commit()
    return {"workspace": workspace.id, "service": consultation.id, "ada": ada.id}


def book(clinic, start):
    booking, _ = booking_service.create(clinic["workspace"], service_id=clinic["service"], start=start,
                                        name="Vera Visitor", email="vera@example.com")
    db.session.commit()  # the push job runs right after the commit (inline jobs in tests)
    db.session.expire_all()
    return db.session.get(Booking, booking.id)


def test_a_booking_is_written_to_the_staff_calendar_and_removed_when_cancelled(clinic, radicale, calendar_url):
    booking = book(clinic, at(2, 10))
    uid = f"{booking.reference}@asthron"
    assert (booking.sync_status, booking.external_event_id) == ("synced", uid)
    assert server_events(radicale, calendar_url) == {uid: (at(2, 10), at(2, 11))}
    booking_service.cancel(booking)
    db.session.commit()
    db.session.expire_all()
    assert server_events(radicale, calendar_url) == {}
    assert db.session.get(Booking, booking.id).sync_status == "synced"


def test_a_rescheduled_booking_moves_its_event(clinic, radicale, calendar_url):
    booking = book(clinic, at(2, 10))
    booking_service.reschedule(booking, start=at(2, 10, 0) + timedelta(hours=3))
    db.session.commit()
    assert server_events(radicale, calendar_url) == {f"{booking.reference}@asthron": (at(2, 13), at(2, 14))}


def test_busy_times_of_the_calendar_become_busy_blocks_that_hide_slots(clinic, radicale, calendar_url):
    put_event(radicale, calendar_url, at(2, 12), at(2, 13, 30))
    booking = book(clinic, at(2, 10))  # its own event comes back as busy time, and must not become a block
    calendar_sync.request_refresh(db.session.get(Resource, clinic["ada"]))
    db.session.commit()
    blocks = db.session.execute(select(BusyBlock.start_at, BusyBlock.end_at, BusyBlock.source)
                                .where(BusyBlock.resource_id == clinic["ada"])).all()
    assert [(availability.as_utc(s), availability.as_utc(e), src) for s, e, src in blocks] == \
        [(at(2, 12), at(2, 13, 30), "caldav")]
    service = db.session.get(availability.Service, clinic["service"])
    starts = [s.start for s in availability.slots(service, start=at(2, 9), end=at(2, 17))]
    assert at(2, 12) not in starts and at(2, 13) not in starts and at(2, 14) in starts
    assert at(2, 10) not in starts  # the booking itself
    moved = booking_service.reschedule(booking, start=at(2, 11))  # overlapping its own old time is fine
    assert availability.as_utc(moved.start_at) == at(2, 11)
    resource = db.session.get(Resource, clinic["ada"])
    assert resource.busy_synced_at is not None and resource.busy_sync_error is None


def test_a_wrong_password_flags_the_booking_at_once_and_keeps_it(clinic, monkeypatch):
    monkeypatch.setenv(PASSWORD_VAR, "not-the-password")
    booking = book(clinic, at(2, 10))
    assert booking.status.value == "confirmed"
    assert booking.sync_status == "failed" and "401" in booking.sync_error
    assert "not-the-password" not in booking.sync_error


def test_all_day_events_use_the_resource_time_zone(clinic, radicale, calendar_url):
    resource = db.session.get(Resource, clinic["ada"])
    resource.time_zone = "America/New_York"
    resource.calendar_settings = {**resource.calendar_settings, "freebusy": False}
    db.session.commit()
    day = at(5, 0).date()
    put_event(radicale, calendar_url, None, None, all_day=day)
    calendar_sync.request_refresh(db.session.get(Resource, clinic["ada"]))
    db.session.commit()
    [(start, end)] = db.session.execute(select(BusyBlock.start_at, BusyBlock.end_at)).all()
    local = datetime(day.year, day.month, day.day, tzinfo=availability.zone("America/New_York"))
    assert availability.as_utc(start) == local.astimezone(UTC)
    assert availability.as_utc(end) == (local + timedelta(days=1)).astimezone(UTC)
