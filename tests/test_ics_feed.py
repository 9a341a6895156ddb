"""The private ICS feed: made in the admin (address shown once, token stored hashed), serving the resource's
confirmed bookings without visitor details; any other token, an old one or a retired feed is a 404."""
import hashlib
import re
from datetime import UTC, datetime, timedelta

import pytest
from icalendar import Calendar
from sqlalchemy import update

from asthron.extensions import db
from asthron.models.booking import Booking, Resource
from asthron.services import booking as booking_service, calendar_feed
from tests.booking_helpers import make_resource, make_service
from tests.conftest import csrf_token


def at(days, hour):
    day = datetime.now(UTC).date() + timedelta(days=days)
    return datetime(day.year, day.month, day.day, hour, tzinfo=UTC)


@pytest.fixture
def office(tenants, ctx):
    """Workspace A1 with Ada and Bob (internal calendars) and a one-hour consultation."""
    ada = make_resource(tenants["a1"], name="Ada")
    bob = make_resource(tenants["a1"], name="Bob")
    consultation = make_service(tenants["a1"], [ada])
    other = make_service(tenants["a1"], [bob], name="Other")
    db.session.commit()
    return {**tenants, "ada": ada.id, "bob": bob.id, "service": consultation.id, "other": other.id}


def book(office, start, service="service", email="vera@example.com"):
    booking, _ = booking_service.create(office["a1"], service_id=office[service], start=start, name="Vera Visitor",
                                        email=email)
    db.session.commit()
    return booking


def make_feed(client, auth, resource_id, user="a1_admin"):
    """Make the resource's feed in the admin (signing in as `user` first, unless None); return the answer and URL."""
    if user:
        auth.login(user)
    token = csrf_token(client, "/calendar/")
    answer = client.post(f"/calendar/resource/{resource_id}/feed", data={"csrf_token": token}, follow_redirects=True)
    match = re.search(r'<pre id="feed-url">([^<]+)</pre>', answer.get_data(as_text=True))
    return answer, match.group(1) if match else None


def events(body):
    return {str(e["UID"]): e for e in Calendar.from_ical(body).walk("VEVENT")}


def test_the_admin_makes_a_feed_whose_address_is_shown_once_and_stored_hashed(client, auth, office):
    answer, url = make_feed(client, auth, office["ada"])
    assert [r.status_code for r in answer.history] == [302]  # made by a POST, shown after its redirect
    assert answer.status_code == 200 and url.startswith("http://localhost/calendar/feed/") and url.endswith(".ics")
    token = url.rsplit("/", 1)[1][:-4]
    assert len(token) >= 40
    resource = db.session.get(Resource, office["ada"])
    assert resource.feed_token_hash == hashlib.sha256(token.encode()).hexdigest()
    assert token not in client.get(f"/calendar/resource/{office['ada']}").get_data(as_text=True)


def test_the_feed_lists_confirmed_bookings_of_the_resource_from_30_days_ago(client, auth, office):
    upcoming = book(office, at(2, 10))
    cancelled = book(office, at(3, 10))
    booking_service.cancel(cancelled)
    recent, old = book(office, at(4, 10)), book(office, at(5, 10))
    db.session.execute(update(Booking).where(Booking.id == recent.id).values(
        start_at=at(-10, 10), end_at=at(-10, 11), blocked_start=at(-10, 10), blocked_end=at(-10, 11)))
    db.session.execute(update(Booking).where(Booking.id == old.id).values(
        start_at=at(-40, 10), end_at=at(-40, 11), blocked_start=at(-40, 10), blocked_end=at(-40, 11)))
    book(office, at(2, 10), service="other")  # Bob's
    db.session.commit()
    _, url = make_feed(client, auth, office["ada"])
    answer = client.get(url.replace("http://localhost", ""))
    assert answer.status_code == 200 and answer.mimetype == "text/calendar"
    assert "no-store" in answer.headers["Cache-Control"]
    found = events(answer.data)
    assert set(found) == {f"{upcoming.reference}@asthron", f"{recent.reference}@asthron"}
    event = found[f"{upcoming.reference}@asthron"]
    assert event["DTSTART"].dt == at(2, 10) and event["DTEND"].dt == at(2, 11)
    assert str(event["SUMMARY"]) == f"Consultation ({upcoming.reference})"
    assert b"vera@example.com" not in answer.data and b"Vera" not in answer.data


def test_a_wrong_token_is_a_404(client, auth, office):
    make_feed(client, auth, office["ada"])
    assert client.get("/calendar/feed/not-the-token.ics").status_code == 404
    assert client.get("/calendar/feed/" + "x" * 300 + ".ics").status_code == 404


def test_a_new_address_retires_the_old_one(client, auth, office):
    _, first = make_feed(client, auth, office["ada"])
    _, second = make_feed(client, auth, office["ada"], user=None)
    assert first != second
    assert client.get(first.replace("http://localhost", "")).status_code == 404
    assert client.get(second.replace("http://localhost", "")).status_code == 200


def test_a_feed_turned_off_is_a_404(client, auth, office):
    _, url = make_feed(client, auth, office["ada"])
    token = csrf_token(client, f"/calendar/resource/{office['ada']}")
    client.post(f"/calendar/resource/{office['ada']}/feed", data={"csrf_token": token, "action": "off"})
    assert client.get(url.replace("http://localhost", "")).status_code == 404


def test_the_feed_needs_no_sign_in(client, auth, office):
    _, url = make_feed(client, auth, office["ada"])
    auth.logout()
    assert client.get(url.replace("http://localhost", "")).status_code == 200


def test_another_tenant_cannot_make_or_read_the_feed(client, auth, office):
    answer, url = make_feed(client, auth, office["ada"], user="b_admin")
    assert answer.status_code == 404 and url is None
    assert db.session.get(Resource, office["ada"]).feed_token_hash is None


def test_staff_cannot_make_a_feed(client, auth, office):
    _, url = make_feed(client, auth, office["ada"], user="a1_staff")
    assert url is None
    db.session.expire_all()
    assert db.session.get(Resource, office["ada"]).feed_token_hash is None


def test_the_token_lookup_ignores_the_tenant_scope_but_nothing_else(office):
    resource = db.session.get(Resource, office["ada"])
    token = calendar_feed.new_feed_token(resource)
    db.session.commit()
    assert calendar_feed.resource_for_token(token).id == office["ada"]
    assert calendar_feed.resource_for_token(token[:-1]) is None
    assert calendar_feed.resource_for_token("") is None
