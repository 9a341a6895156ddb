"""The slot cache (services/slot_cache.py) on the real Redis: listings are served from it, every change
to what availability reads is seen at once, notice and horizon follow `now`, and a broken Redis only
costs speed."""
import json
import logging
import random
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta

import pytest
import redis
from sqlalchemy import event

from asthron.extensions import db
from asthron.models.booking import Booking, BookingStatus, BusyBlock, Service
from asthron.services import availability, booking as booking_service, calendar_sync, slot_cache
from tests.booking_helpers import add_override, make_resource, make_service

DAY = date(2031, 3, 3)  # far ahead: `now` is passed in, nothing depends on today's date
NOW = datetime(2031, 3, 1, 8, 0, tzinfo=UTC)


def at(day_offset, hour, minute=0):
    return datetime.combine(DAY + timedelta(days=day_offset), datetime.min.time(), tzinfo=UTC) + timedelta(
        hours=hour, minutes=minute)


@pytest.fixture
def cached(app, redis_url, monkeypatch):
    """The app with the slot cache on the real Redis."""
    monkeypatch.setitem(app.config, "REDIS_URL", redis_url)
    monkeypatch.setitem(app.config, "ASTHRON_SLOTS_CACHE_SECONDS", 120)
    return app


@pytest.fixture
def clinic(cached, tenants):
    """One 30-minute service with buffers, delivered by two people in different zones."""
    with cached.app_context():
        ada = make_resource(tenants["a1"], name="Ada", tz="UTC", hours=((9, 17),))
        bob = make_resource(tenants["a1"], name="Bob", tz="Europe/Berlin", hours=((9, 12), (13, 18)))
        service = make_service(tenants["a1"], [ada, bob], duration=30, step=15, before=5, after=10)
        db.session.commit()
        return {"workspace": tenants["a1"], "service": service.id, "ada": ada.id, "bob": bob.id}


@contextmanager
def booking_reads():
    """Count the SELECTs that read bookings while the block runs."""
    seen = []

    def count(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().upper().startswith("SELECT") and "FROM booking" in statement:
            seen.append(statement)

    engine = db.engine
    event.listen(engine, "before_cursor_execute", count)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", count)


def listed(service_id, *, now=NOW, days=3):
    service = db.session.get(Service, service_id)
    return availability.listing(service, start=at(0, 0), end=at(days, 0), now=now).starts()


def computed(service_id, *, now=NOW, days=3):
    """The same listing straight from the database (the path bookings are checked on)."""
    service = db.session.get(Service, service_id)
    return [int(s.start.timestamp()) for s in availability.slots(service, start=at(0, 0), end=at(days, 0), now=now)]


def epoch(moment):
    return int(moment.timestamp())


def test_a_second_listing_is_served_from_the_cache(cached, clinic):
    with cached.app_context():
        first = listed(clinic["service"])
        with booking_reads() as reads:
            again = listed(clinic["service"])
        assert again == first == computed(clinic["service"])
        assert reads == []  # nothing read from the database the second time
        assert epoch(at(0, 9)) in first


def test_a_booking_cancel_and_reschedule_are_seen_at_once(cached, clinic):
    with cached.app_context():
        assert epoch(at(0, 9)) in listed(clinic["service"])
        booking, _ = booking_service.create(clinic["workspace"], service_id=clinic["service"], start=at(0, 9),
                                            name="Vera", email="vera@example.com", now=NOW)
        db.session.commit()
        # Ada took 09:00 (Bob starts at 08:00 UTC in March, so 09:00 is still free with him).
        assert listed(clinic["service"]) == computed(clinic["service"])
        booking_service.create(clinic["workspace"], service_id=clinic["service"], start=at(0, 9), name="Walt",
                               email="walt@example.com", now=NOW)
        db.session.commit()
        assert epoch(at(0, 9)) not in listed(clinic["service"])  # both people are busy at 09:00 now
        assert listed(clinic["service"]) == computed(clinic["service"])
        booking_service.cancel(db.session.get(Booking, booking.id))
        db.session.commit()
        assert epoch(at(0, 9)) in listed(clinic["service"])
        assert listed(clinic["service"]) == computed(clinic["service"])


def test_hours_overrides_and_service_changes_are_seen_at_once(cached, clinic):
    with cached.app_context():
        before = listed(clinic["service"])
        from asthron.models.booking import Resource

        add_override(db.session.get(Resource, clinic["ada"]), DAY, "holiday")
        add_override(db.session.get(Resource, clinic["bob"]), DAY, "holiday")
        db.session.commit()
        closed = listed(clinic["service"])
        assert not [s for s in closed if epoch(at(0, 0)) <= s < epoch(at(1, 0))]
        assert closed == computed(clinic["service"]) != before
        db.session.get(Service, clinic["service"]).duration_minutes = 120
        db.session.commit()
        assert listed(clinic["service"]) == computed(clinic["service"]) != closed
        db.session.get(Service, clinic["service"]).resources = []
        db.session.commit()
        assert listed(clinic["service"]) == [] == computed(clinic["service"])


def test_busy_times_written_and_cleared_past_the_orm_are_seen(cached, clinic):
    """Calendar reads replace busy blocks with one DELETE statement; the cache is told by hand."""
    from asthron.models.booking import Resource

    with cached.app_context():
        listed(clinic["service"])
        for person in ("ada", "bob"):
            db.session.add(BusyBlock(workspace_id=clinic["workspace"], resource_id=clinic[person],
                                     start_at=at(1, 0), end_at=at(2, 0), source="caldav"))
        db.session.commit()
        busy = listed(clinic["service"])
        assert not [s for s in busy if epoch(at(1, 0)) <= s < epoch(at(2, 0))]
        for person in ("ada", "bob"):
            calendar_sync._clear_busy(db.session.get(Resource, clinic[person]))
        db.session.commit()
        assert [s for s in listed(clinic["service"]) if epoch(at(1, 0)) <= s < epoch(at(2, 0))]
        assert listed(clinic["service"]) == computed(clinic["service"])


def test_this_transactions_own_changes_bypass_the_cache_and_a_rollback_keeps_it(cached, clinic):
    with cached.app_context():
        free = listed(clinic["service"])
        for person in ("ada", "bob"):
            db.session.add(BusyBlock(workspace_id=clinic["workspace"], resource_id=clinic[person],
                                     start_at=at(0, 0), end_at=at(3, 0), source="caldav"))
        assert listed(clinic["service"]) == []  # not yet committed, but this session sees it
        db.session.rollback()
        with booking_reads() as reads:
            assert listed(clinic["service"]) == free
        assert reads == []  # the rolled-back change did not cost the cache its entry


def test_a_cached_window_follows_now_for_notice_and_horizon(cached, tenants):
    """Notice and the booking horizon are applied after the cache: each `now` gets what the database gives."""
    rng = random.Random(4)
    with cached.app_context():
        people = [make_resource(tenants["a1"], name=f"P{n}", tz=tz, hours=((8.5, 12), (13, 17.25)))
                  for n, tz in enumerate(("UTC", "America/New_York", "Asia/Kathmandu"))]
        service = make_service(tenants["a1"], people, duration=45, step=20, before=10, after=5, notice=90, ahead=2)
        for person in people:
            for _ in range(12):
                start = at(rng.randrange(3), rng.randrange(24), rng.choice((0, 15, 30, 45)))
                db.session.add(BusyBlock(workspace_id=tenants["a1"], resource_id=person.id, start_at=start,
                                         end_at=start + timedelta(minutes=rng.choice((15, 50, 95))), source="caldav"))
        db.session.commit()
        listed(service.id, now=NOW)  # the window is cached from here on
        for minutes in range(0, 4 * 24 * 60, 97):
            now = datetime(2031, 3, 2, 6, 0, tzinfo=UTC) + timedelta(minutes=minutes, seconds=minutes % 60)
            with booking_reads() as reads:
                got = listed(service.id, now=now)
            assert reads == []
            assert got == computed(service.id, now=now), now


def test_an_entry_of_another_revision_is_never_used(cached, clinic, redis_url):
    conn = redis.Redis.from_url(redis_url)
    with cached.app_context():
        truth = listed(clinic["service"])
        service = db.session.get(Service, clinic["service"])
        key = slot_cache._entry_key(service, epoch(at(0, 0)), epoch(at(3, 0)))
        conn.set(key, json.dumps({"revision": "not-the-current-one", "ranges": [[0, 0]]}))
        assert listed(clinic["service"]) == truth
        assert json.loads(conn.get(key))["revision"] == conn.get(slot_cache._revision_key(clinic["workspace"])).decode()
        conn.delete(slot_cache._revision_key(clinic["workspace"]))  # a revision lost (Redis restarted, evicted)
        assert listed(clinic["service"]) == truth
        assert conn.get(slot_cache._revision_key(clinic["workspace"])) is not None


def test_an_unreachable_redis_only_costs_speed(app, clinic, monkeypatch, caplog):
    monkeypatch.setitem(app.config, "REDIS_URL", "redis://127.0.0.1:1/0")  # nothing listens on port 1
    with app.app_context(), caplog.at_level(logging.WARNING, logger="asthron.services.slot_cache"):
        assert listed(clinic["service"]) == computed(clinic["service"])
        assert "slot cache unreadable" in caplog.text
        booking_service.create(clinic["workspace"], service_id=clinic["service"], start=at(0, 10), name="Vera",
                               email="vera@example.com", now=NOW)
        db.session.commit()  # the revision cannot change: logged, the booking stands
        assert "not changed" in caplog.text
        assert db.session.query(Booking).filter_by(status=BookingStatus.confirmed).count() == 1


def test_the_widget_listing_uses_the_cache_and_sees_a_booking_made_through_it(cached, clinic):
    from asthron.models.tenancy import Workspace

    with cached.app_context():
        key = db.session.get(Workspace, clinic["workspace"]).public_key
    client, headers = cached.test_client(), {"Origin": "https://a1.example"}
    day = (datetime.now(UTC) + timedelta(days=2)).date()
    path = f"/widget/api/v1/services/{clinic['service']}/slots?key={key}&start={day}&days=2&tz=Europe/Berlin"
    first = client.get(path, headers=headers)
    assert first.status_code == 200, first.get_json()
    with cached.app_context(), booking_reads() as reads:
        again = client.get(path, headers=headers)
    assert reads == [] and again.get_json() == first.get_json()
    slot = first.get_json()["slots"][0]  # 09:00 in Berlin: only Bob works then (Ada starts at 09:00 UTC)
    made = client.post("/widget/api/v1/bookings", headers=headers,
                       json={"key": key, "service_id": clinic["service"], "start": slot["start"], "name": "Vera",
                             "email": "vera@example.com"})
    assert made.status_code == 201, made.get_json()
    after = client.get(path, headers=headers).get_json()["slots"]
    assert slot not in after and len(after) < len(first.get_json()["slots"])


def test_written_listings_are_kept_within_their_bound(cached, clinic, monkeypatch):
    from asthron.widget import booking as widget_booking
    from asthron.models.tenancy import Workspace

    monkeypatch.setattr(widget_booking, "MAX_RENDERED_CHARACTERS", 3000)
    monkeypatch.setattr(widget_booking, "_rendered", widget_booking.OrderedDict())
    monkeypatch.setattr(widget_booking, "_rendered_size", [0])
    with cached.app_context():
        key = db.session.get(Workspace, clinic["workspace"]).public_key
    client, day = cached.test_client(), (datetime.now(UTC) + timedelta(days=2)).date()
    bodies = {}
    for zone in ("UTC", "Europe/Berlin", "Asia/Tokyo", "America/Denver"):
        answer = client.get(f"/widget/api/v1/services/{clinic['service']}/slots?key={key}&start={day}&days=1"
                            f"&tz={zone}", headers={"Origin": "https://a1.example"})
        assert answer.status_code == 200 and answer.mimetype == "application/json"
        bodies[zone] = answer.get_json()
        assert bodies[zone]["time_zone"] == zone and bodies[zone]["service"]["id"] == clinic["service"]
        assert widget_booking._rendered_size[0] == sum(len(t) for t in widget_booking._rendered.values()) <= 3000
    assert len(widget_booking._rendered) < 4  # the oldest went
    for zone, offset in (("UTC", "+00:00"), ("Asia/Tokyo", "+09:00")):  # each zone got its own text
        assert bodies[zone]["slots"] and all(s["start"].endswith(offset) and s["end"].endswith(offset)
                                             for s in bodies[zone]["slots"])


def test_a_calendar_read_that_finds_the_same_busy_times_keeps_the_cache(cached, clinic):
    """Scheduled reads run every 15 minutes; when the calendar reports what is stored, nothing is written."""
    from asthron.models.booking import Resource

    with cached.app_context():
        ada = db.session.get(Resource, clinic["ada"])
        ada.calendar_backend = "caldav"
        busy = [(at(1, 9), at(1, 11))]
        calendar_sync.replace_blocks(ada, busy, now=NOW)
        db.session.commit()
        first = listed(clinic["service"])
        ada = db.session.get(Resource, clinic["ada"])
        calendar_sync.replace_blocks(ada, busy, now=NOW)
        ada.busy_synced_at, ada.busy_sync_error = NOW, None  # what every read records
        db.session.commit()
        with booking_reads() as reads:
            assert listed(clinic["service"]) == first
        assert reads == []
        ada = db.session.get(Resource, clinic["ada"])
        calendar_sync.replace_blocks(ada, [(at(1, 9), at(1, 12))], now=NOW)  # the meeting grew
        db.session.commit()
        with booking_reads() as reads:
            assert listed(clinic["service"]) == computed(clinic["service"]) != first
        assert reads
        db.session.get(Resource, clinic["ada"]).time_zone = "Asia/Tokyo"  # a column availability reads
        db.session.commit()
        assert listed(clinic["service"]) == computed(clinic["service"])
