"""Calendar sync never loses or blocks a booking: failures are retried with back-off, then flagged to staff,
who retry them; busy-time reads run in one chain per resource; the admin's calendar routes stay in their tenant."""
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select, update

from asthron.extensions import db
from asthron.jobs import sweeper
from asthron.models.base import utcnow
from asthron.models.booking import Booking, BusyBlock, Resource
from asthron.models.jobs import OutboxEntry, OutboxStatus
from asthron.models.notifications import Notification
from asthron.services import booking as booking_service, calendar_sync
from asthron.services.availability import as_utc
from tests.booking_helpers import make_resource, make_service
from tests.caldav_server import free_port
from tests.conftest import csrf_token

PASSWORD_VAR = "ASTHRON_TEST_CALDAV_PASSWORD"


def at(days, hour):
    day = datetime.now(UTC).date() + timedelta(days=days)
    return datetime(day.year, day.month, day.day, hour, tzinfo=UTC)


@pytest.fixture
def office(tenants, ctx, caldav_plugin, radicale, monkeypatch):
    """Workspace A1: Ada keeps her bookings in a CalDAV calendar whose server is down (a port nobody listens on)."""
    monkeypatch.setenv(PASSWORD_VAR, radicale.password)
    calendar_url = radicale.new_calendar()
    ada = make_resource(tenants["a1"], name="Ada")
    ada.calendar_backend = "caldav"
    down = f"http://127.0.0.1:{free_port()}/"
    ada.calendar_settings = {"url": down, "username": radicale.username, "password": {"$env": PASSWORD_VAR},
                             "calendar_url": down + "alice/cal/"}
    consultation = make_service(tenants["a1"], [ada])
    db.session.commit()
    working = {"url": radicale.url, "username": radicale.username, "password": {"$env": PASSWORD_VAR},
               "calendar_url": calendar_url}
    return {**tenants, "ada": ada.id, "service": consultation.id, "working": working, "calendar_url": calendar_url}


def book(office, start=None):
    booking, _ = booking_service.create(office["a1"], service_id=office["service"], start=start or at(2, 10),
                                        name="Vera Visitor", email="vera@example.com")
    db.session.commit()
    return booking.id


def reload(model, pk):
    db.session.expire_all()
    return db.session.get(model, pk)


def push_entry(booking_id):
    db.session.expire_all()
    entries = db.session.scalars(select(OutboxEntry).where(OutboxEntry.job == calendar_sync.PUSH_JOB)
                                 .order_by(OutboxEntry.id)).all()
    return [e for e in entries if e.payload == {"booking_id": booking_id}][-1]


def run_retry_now(app, entry_id):
    """Let the entry's back-off pass and run what is due."""
    db.session.execute(update(OutboxEntry).where(OutboxEntry.id == entry_id)
                       .values(available_at=utcnow() - timedelta(seconds=1)))
    db.session.commit()
    sweeper.run_due(app, queues=["calendar"])


def fix_calendar(office):
    resource = db.session.get(Resource, office["ada"])
    resource.calendar_settings = office["working"]
    db.session.commit()


# --- A calendar that is down ----------------------------------------------------------------------------

def test_a_booking_is_confirmed_at_once_while_the_calendar_is_down(office):
    booking_id = book(office)
    booking = reload(Booking, booking_id)
    assert booking.status.value == "confirmed" and booking.sync_status == "pending"
    entry = push_entry(booking_id)
    assert (entry.status, entry.attempts) == (OutboxStatus.pending, 1)
    assert entry.last_error == "JobError: could not reach the CalDAV server"
    assert as_utc(entry.available_at) > utcnow() + timedelta(seconds=30)  # backing off


def test_a_sync_that_keeps_failing_is_retried_then_flagged_and_staff_are_told(app, office):
    booking_id = book(office)
    entry = push_entry(booking_id)
    for attempt in range(2, entry.max_attempts + 1):
        assert reload(Booking, booking_id).sync_status == "pending"
        run_retry_now(app, entry.id)
        assert push_entry(booking_id).attempts == attempt
    assert push_entry(booking_id).status == OutboxStatus.done  # settled: the flag is the outcome
    booking = reload(Booking, booking_id)
    assert booking.status.value == "confirmed"
    assert (booking.sync_status, booking.sync_error) == ("failed", "could not reach the CalDAV server")
    notices = db.session.scalars(select(Notification).where(Notification.template == "calendar_sync_failed")).all()
    assert notices and {n.context["booking_id"] for n in notices} == {booking_id}


def test_a_sync_that_failed_once_succeeds_when_the_calendar_is_back(app, office, radicale):
    booking_id = book(office)
    fix_calendar(office)
    run_retry_now(app, push_entry(booking_id).id)
    booking = reload(Booking, booking_id)
    assert booking.sync_status == "synced" and booking.sync_error is None
    events = radicale.client().calendar(url=office["calendar_url"]).events()
    assert [str(e.icalendar_component["UID"]) for e in events] == [f"{booking.reference}@asthron"]


def test_a_refusal_is_flagged_at_once_without_retries(office, monkeypatch):
    fix_calendar(office)
    monkeypatch.setenv(PASSWORD_VAR, "wrong")
    booking_id = book(office)
    assert reload(Booking, booking_id).sync_status == "failed"
    assert push_entry(booking_id).attempts == 1


def flag(office):
    booking_id = book(office)
    db.session.execute(update(Booking).where(Booking.id == booking_id)
                       .values(sync_status="failed", sync_error="could not reach the CalDAV server"))
    db.session.commit()
    return booking_id


def test_staff_see_flagged_bookings_and_retry_them(app, client, auth, office):
    booking_id = flag(office)
    fix_calendar(office)
    auth.login("a1_staff")
    listing = client.get("/bookingsyncview/list/").get_data(as_text=True)
    assert "could not reach the CalDAV server" in listing
    token = csrf_token(client, "/bookingsyncview/list/")
    answer = client.post("/bookingsyncview/action_post", data={"csrf_token": token, "action": "retry_sync",
                                                               "rowid": [str(booking_id)]})
    assert answer.status_code == 302
    assert reload(Booking, booking_id).sync_status == "synced"
    assert "could not reach" not in client.get("/bookingsyncview/list/").get_data(as_text=True)


def test_another_tenant_cannot_retry_a_booking(app, client, auth, office):
    booking_id = flag(office)
    before = db.session.scalar(select(func.count(OutboxEntry.id)))
    auth.login("b1_staff")
    assert "could not reach" not in client.get("/bookingsyncview/list/").get_data(as_text=True)
    token = csrf_token(client, "/bookingsyncview/list/")
    answer = client.post("/bookingsyncview/action_post", data={"csrf_token": token, "action": "retry_sync",
                                                               "rowid": [str(booking_id)]})
    assert answer.status_code == 404
    assert reload(Booking, booking_id).sync_status == "failed"
    assert db.session.scalar(select(func.count(OutboxEntry.id))) == before


def test_a_client_cannot_retry(app, client, auth, office):
    booking_id = flag(office)
    auth.login("a1_client")
    token = csrf_token(client, "/bookingsyncview/list/")
    client.post("/bookingsyncview/action_post", data={"csrf_token": token, "action": "retry_sync",
                                                      "rowid": [str(booking_id)]})
    assert reload(Booking, booking_id).sync_status == "failed"


# --- Calendar settings in the admin ---------------------------------------------------------------------

def post_settings(client, resource_id, backend, settings_text):
    token = csrf_token(client, f"/calendar/resource/{resource_id}")
    return client.post(f"/calendar/resource/{resource_id}/settings",
                       data={"csrf_token": token, "backend": backend, "settings": settings_text})


def test_saving_working_settings_requeues_flagged_bookings_and_reads_busy_times(app, client, auth, office):
    import json

    booking_id = flag(office)
    auth.login("a1_admin")
    answer = post_settings(client, office["ada"], "caldav", json.dumps(office["working"]))
    assert answer.status_code == 302
    assert reload(Booking, booking_id).sync_status == "synced"
    resource = reload(Resource, office["ada"])
    assert resource.calendar_settings == office["working"] and resource.busy_synced_at is not None


@pytest.mark.parametrize("chosen, text, field, message", [
    ("exchange", "{}", "backend", "installed calendar backends"),
    ("caldav", "{not json", "settings", "JSON object"),
    ("caldav", "[1, 2]", "settings", "JSON object"),
    ("caldav", '{"url": "https://dav.example/", "password": "hunter2"}', "settings", "literal secret"),
])
def test_bad_settings_are_a_400_naming_the_field_and_change_nothing(client, auth, office, chosen, text, field,
                                                                    message):
    auth.login("a1_admin")
    answer = post_settings(client, office["ada"], chosen, text)
    body = answer.get_data(as_text=True)
    assert answer.status_code == 400 and field in body and message in body
    assert "hunter2" not in body.split('id="errors"')[1].split("</div>")[0]
    resource = reload(Resource, office["ada"])
    assert resource.calendar_backend == "caldav" and "password" in resource.calendar_settings


def test_staff_cannot_change_calendar_settings(client, auth, office):
    auth.login("a1_staff")
    post_settings(client, office["ada"], "internal", "{}")
    assert reload(Resource, office["ada"]).calendar_backend == "caldav"


@pytest.mark.parametrize("path", ["settings", "feed", "refresh", "disconnect", "connect"])
def test_the_calendar_routes_of_another_tenant_answer_404_and_change_nothing(client, auth, office, path):
    auth.login("b_admin")
    token = csrf_token(client, "/calendar/")
    before = db.session.scalar(select(func.count(OutboxEntry.id)))
    url = f"/calendar/resource/{office['ada']}/{path}"
    answer = client.get(url) if path == "connect" else \
        client.post(url, data={"csrf_token": token, "backend": "internal", "settings": "{}"})
    assert answer.status_code == 404
    resource = reload(Resource, office["ada"])
    assert resource.calendar_backend == "caldav" and resource.feed_token_hash is None
    assert db.session.scalar(select(func.count(OutboxEntry.id))) == before


# --- Busy-time reads ------------------------------------------------------------------------------------

def refresh_entries(resource_id):
    db.session.expire_all()
    return [e for e in db.session.scalars(select(OutboxEntry).where(OutboxEntry.job == calendar_sync.REFRESH_JOB)
                                                  .order_by(OutboxEntry.id))
            if e.payload == {"resource_id": resource_id}]


def test_busy_reads_run_in_one_chain_per_resource(app, office):
    fix_calendar(office)
    resource = db.session.get(Resource, office["ada"])
    assert calendar_sync.ensure_refresh([resource]) == 1
    assert calendar_sync.ensure_refresh([resource]) == 0  # already started
    db.session.commit()  # the read runs now and schedules the next one
    [first, following] = refresh_entries(office["ada"])
    assert first.status == OutboxStatus.done and following.status == OutboxStatus.pending
    interval = timedelta(minutes=app.config["ASTHRON_CALENDAR_REFRESH_MINUTES"])
    assert abs(as_utc(following.available_at) - (utcnow() + interval)) < timedelta(minutes=1)
    calendar_sync.request_refresh(reload(Resource, office["ada"]))  # an extra read, e.g. after a cancellation
    db.session.commit()
    assert len([e for e in refresh_entries(office["ada"]) if e.status == OutboxStatus.pending]) == 1
    db.session.execute(update(Resource).where(Resource.id == office["ada"])  # its time has come
                       .values(busy_refresh_at=utcnow() - timedelta(seconds=1)))
    run_retry_now(app, following.id)  # the scheduled one runs and continues the chain
    pending = [e for e in refresh_entries(office["ada"]) if e.status == OutboxStatus.pending]
    assert len(pending) == 1 and pending[0].id != following.id


def test_a_failed_read_keeps_the_old_blocks_and_shows_the_error(app, office):
    resource = db.session.get(Resource, office["ada"])
    db.session.add(BusyBlock(workspace_id=resource.workspace_id, resource_id=resource.id, start_at=at(3, 9),
                             end_at=at(3, 10), source="caldav"))
    db.session.commit()
    with app.app_context():
        calendar_sync.refresh_busy(office["ada"])  # outside a job run: the last attempt, so it settles
        db.session.commit()
    resource = reload(Resource, office["ada"])
    assert resource.busy_sync_error == "could not reach the CalDAV server"
    assert db.session.scalar(select(func.count(BusyBlock.id))) == 1
    assert resource.busy_refresh_at is not None  # the chain goes on and will try again


def test_an_internal_calendar_has_no_reads_and_no_blocks(app, office):
    resource = db.session.get(Resource, office["ada"])
    resource.calendar_backend, resource.calendar_settings = "internal", {}
    db.session.add(BusyBlock(workspace_id=resource.workspace_id, resource_id=resource.id, start_at=at(3, 9),
                             end_at=at(3, 10), source="caldav"))
    db.session.commit()
    assert calendar_sync.ensure_refresh([resource]) == 0
    with app.app_context():
        calendar_sync.refresh_busy(office["ada"])
        db.session.commit()
    assert db.session.scalar(select(func.count(BusyBlock.id))) == 0
    booking = reload(Booking, book(office))
    assert (booking.sync_status, booking.external_event_id) == ("synced", f"{booking.reference}@asthron")


# --- On Redis -------------------------------------------------------------------------------------------

def test_on_redis_the_push_waits_on_the_calendar_queue_and_a_worker_runs_it(app, office, redis_url, monkeypatch):
    from redis import Redis
    from rq import Queue, SimpleWorker

    fix_calendar(office)
    monkeypatch.setitem(app.config, "REDIS_URL", redis_url)
    booking_id = book(office)
    assert reload(Booking, booking_id).sync_status == "pending"
    assert Queue("calendar", connection=Redis.from_url(redis_url)).count >= 1
    with app.app_context():
        SimpleWorker(["calendar"], connection=Redis.from_url(redis_url)).work(burst=True)
    assert reload(Booking, booking_id).sync_status == "synced"


def test_listing_slots_restarts_stopped_busy_reads_and_otherwise_writes_nothing(app, client, office):
    from asthron.models.tenancy import Workspace

    fix_calendar(office)
    key = db.session.get(Workspace, office["a1"]).public_key
    url = f"/widget/api/v1/services/{office['service']}/slots?key={key}&days=3"
    headers = {"Origin": "https://a1.example"}
    assert client.get(url, headers=headers).status_code == 200
    [started, scheduled] = refresh_entries(office["ada"])  # the read ran, and the next one is scheduled
    assert started.status == OutboxStatus.done and reload(Resource, office["ada"]).busy_synced_at is not None
    assert client.get(url, headers=headers).status_code == 200
    assert len(refresh_entries(office["ada"])) == 2  # alive: nothing more
    db.session.execute(update(Resource).where(Resource.id == office["ada"])  # the workers were away for hours
                       .values(busy_refresh_at=utcnow() - timedelta(hours=3)))
    db.session.commit()
    assert client.get(url, headers=headers).status_code == 200
    assert len(refresh_entries(office["ada"])) == 4


def test_a_new_calendar_receives_the_upcoming_bookings_and_leaving_it_clears_its_blocks(client, auth, office,
                                                                                       radicale):
    import json

    resource = db.session.get(Resource, office["ada"])
    resource.calendar_backend, resource.calendar_settings = "internal", {}
    db.session.commit()
    booking_id = book(office)
    assert reload(Booking, booking_id).sync_status == "synced"
    radicale.client().calendar(url=office["calendar_url"]).add_event(
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//t//EN\r\nBEGIN:VEVENT\r\nUID:own-1\r\n"
        f"DTSTAMP:20260101T000000Z\r\nDTSTART:{at(3, 9):%Y%m%dT%H%M%SZ}\r\nDTEND:{at(3, 10):%Y%m%dT%H%M%SZ}\r\n"
        "SUMMARY:Dentist\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n")
    auth.login("a1_admin")
    assert post_settings(client, office["ada"], "caldav", json.dumps(office["working"])).status_code == 302
    booking = reload(Booking, booking_id)
    uids = [str(e.icalendar_component["UID"]) for e in radicale.client().calendar(url=office["calendar_url"]).events()]
    assert sorted(uids) == sorted(["own-1", f"{booking.reference}@asthron"])
    assert db.session.scalar(select(func.count(BusyBlock.id))) == 1
    assert post_settings(client, office["ada"], "internal", "{}").status_code == 302
    assert db.session.scalar(select(func.count(BusyBlock.id))) == 0
