"""The visitor booking API and the signed manage pages: contract, errors, idempotency, concurrency over
HTTP, CORS, and tenant isolation of every new route (visitor and admin)."""
import re
import threading
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from asthron.extensions import db
from asthron.models.booking import Booking, BookingStatus, Resource, Service
from asthron.models.tenancy import Workspace
from asthron.services import booking as booking_service
from asthron.widget import limits
from tests.booking_helpers import make_resource, make_service
from tests.conftest import csrf_token
from tests.test_widget_api import call

API = "/widget/api/v1"
A1, B1 = "https://a1.example", "https://b1.example"


def day_after_tomorrow(hour, minute=0):
    day = datetime.now(UTC).date() + timedelta(days=2)
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=UTC)


@pytest.fixture
def booking_setup(app, tenants):
    """A1 and B1 each offer a one-hour service by one person working 09-17 UTC every day."""
    limits.reset(app)
    with app.app_context():
        ids = {}
        for name in ("a1", "b1"):
            person = make_resource(tenants[name], name=f"Person {name}")
            ids[f"{name}_service"] = make_service(tenants[name], [person], name=f"Visit {name}").id
            ids[f"{name}_resource"] = person.id
            ids[f"{name}_key"] = db.session.get(Workspace, tenants[name]).public_key
        db.session.commit()
    return {**tenants, **ids}


def booking_body(s, when=None, **extra):
    return {"key": s["a1_key"], "service_id": s["a1_service"], "start": (when or day_after_tomorrow(10)).isoformat(),
            "name": "Vera Visitor", "email": "vera@example.com", "tz": "America/New_York", **extra}


def post_booking(client, s, body=None, key="idem-1", **kw):
    headers = {"Idempotency-Key": key} if key else {}
    return call(client, "POST", "/bookings", body=body or booking_body(s), headers=headers, **kw)


def count_bookings(app):
    with app.app_context():
        return db.session.scalar(select(func.count(Booking.id)).where(Booking.status == BookingStatus.confirmed))


# --- services and slots ----------------------------------------------------------------------------------

def test_services_lists_the_workspaces_own_services(client, booking_setup):
    response = call(client, "GET", f"/services?key={booking_setup['a1_key']}")
    assert response.status_code == 200
    assert response.headers["Access-Control-Allow-Origin"] == A1
    services = response.get_json()["services"]
    assert [(s["id"], s["name"], s["duration_minutes"]) for s in services] == \
        [(booking_setup["a1_service"], "Visit a1", 60)]


def test_services_nobody_delivers_are_not_listed(client, booking_setup, app):
    """A service whose people are all inactive, one without people and an inactive one are left out."""
    with app.app_context():
        idle = make_resource(booking_setup["a1"], name="On leave")
        idle.active = False
        make_service(booking_setup["a1"], [idle], name="Aa with someone on leave")
        make_service(booking_setup["a1"], [], name="Ab with nobody")
        make_service(booking_setup["a1"], [db.session.get(Resource, booking_setup["a1_resource"])],
                     name="Ac switched off").active = False
        both = make_service(booking_setup["a1"], [idle, db.session.get(Resource, booking_setup["a1_resource"])],
                            name="Ad with one of two")
        db.session.commit()
        both_id = both.id
    services = call(client, "GET", f"/services?key={booking_setup['a1_key']}").get_json()["services"]
    assert [s["id"] for s in services] == [both_id, booking_setup["a1_service"]]


def test_services_refuse_an_unknown_key_and_a_foreign_origin(client, booking_setup):
    assert call(client, "GET", "/services?key=pk_nope").status_code == 404
    assert call(client, "GET", f"/services?key={booking_setup['a1_key']}", origin=B1).status_code == 403


def test_slots_carry_the_visitors_offset(client, booking_setup):
    first = day_after_tomorrow(0).date().isoformat()
    response = call(client, "GET", f"/services/{booking_setup['a1_service']}/slots?key={booking_setup['a1_key']}"
                                   f"&start={first}&days=1&tz=Asia/Kolkata")
    assert response.status_code == 200, response.get_json()
    slots = response.get_json()["slots"]
    # The Kolkata day (UTC+05:30) runs 18:30 UTC the day before to 18:30 UTC: 09:00-17:00 UTC fits inside.
    assert slots[0] == {"start": f"{first}T14:30:00+05:30", "end": f"{first}T15:30:00+05:30"}
    assert len(slots) == 8 and all(s["start"].endswith("+05:30") for s in slots)


@pytest.mark.parametrize("query, field", [
    ("start=2026-02-30&days=1&tz=UTC", "start"),
    ("start=tomorrow&days=1&tz=UTC", "start"),
    ("days=0&tz=UTC", "days"),
    ("days=63&tz=UTC", "days"),
    ("days=-1&tz=UTC", "days"),
    ("days=1&tz=Mars/Olympus", "tz"),
    ("days=1&tz=../../etc/passwd", "tz"),
])
def test_bad_slot_queries_are_400_with_the_field_named(client, booking_setup, query, field):
    response = call(client, "GET", f"/services/{booking_setup['a1_service']}/slots?key={booking_setup['a1_key']}&"
                                   + query)
    assert response.status_code == 400
    assert field in response.get_json()["error"]["fields"]


def test_slots_of_another_workspaces_service_are_404(client, booking_setup):
    response = call(client, "GET", f"/services/{booking_setup['b1_service']}/slots?key={booking_setup['a1_key']}")
    assert response.status_code == 404


# --- booking ---------------------------------------------------------------------------------------------

def test_booking_answers_201_in_the_visitors_zone(client, booking_setup, app):
    response = post_booking(client, booking_setup)
    assert response.status_code == 201, response.get_json()
    booking = response.get_json()["booking"]
    expected = day_after_tomorrow(10).astimezone(booking_service.availability.zone("America/New_York"))
    assert booking["start"] == expected.isoformat() and booking["status"] == "confirmed"
    assert response.headers["Idempotent-Replayed"] == "false"
    assert count_bookings(app) == 1


def test_the_same_key_and_body_return_the_same_booking(client, booking_setup, app):
    first = post_booking(client, booking_setup)
    again = post_booking(client, booking_setup)
    assert again.status_code == 201 and again.headers["Idempotent-Replayed"] == "true"
    assert again.get_json()["booking"]["id"] == first.get_json()["booking"]["id"]
    assert count_bookings(app) == 1


def test_the_same_key_with_another_body_is_422(client, booking_setup, app):
    post_booking(client, booking_setup)
    response = post_booking(client, booking_setup, booking_body(booking_setup, day_after_tomorrow(12)))
    assert response.status_code == 422
    assert response.get_json()["error"]["code"] == "idempotency_mismatch"
    assert count_bookings(app) == 1


def test_a_taken_slot_is_409(client, booking_setup, app):
    post_booking(client, booking_setup)
    response = post_booking(client, booking_setup, booking_body(booking_setup, email="other@example.com"), key="idem-2")
    assert response.status_code == 409
    assert response.get_json()["error"]["code"] == "slot_taken"
    assert count_bookings(app) == 1


def test_bad_fields_are_400_each_named_and_nothing_is_written(client, booking_setup, app):
    body = booking_body(booking_setup, name="", email="nope", start="10 o'clock", tz="Nowhere/Land")
    response = post_booking(client, booking_setup, body)
    assert response.status_code == 400
    assert set(response.get_json()["error"]["fields"]) == {"name", "email", "start", "tz"}
    response = post_booking(client, booking_setup, booking_body(booking_setup, service_id="1"), key="idem-3")
    assert response.status_code == 400 and "service_id" in response.get_json()["error"]["fields"]
    assert count_bookings(app) == 0


def test_booking_another_workspaces_service_is_404(client, booking_setup, app):
    body = booking_body(booking_setup, service_id=booking_setup["b1_service"])
    assert post_booking(client, booking_setup, body).status_code == 404
    assert count_bookings(app) == 0


def test_a_booking_from_a_chat_needs_that_conversations_token(client, booking_setup, app):
    started = call(client, "POST", "/conversations", body={"key": booking_setup["a1_key"]}).get_json()
    body = booking_body(booking_setup, conversation_id=started["id"])
    assert post_booking(client, booking_setup, body).status_code == 401
    assert post_booking(client, booking_setup, body, token="wrong").status_code == 404
    response = post_booking(client, booking_setup, body, token=started["token"])
    assert response.status_code == 201
    with app.app_context():
        assert db.session.scalars(select(Booking.conversation_id)).one() == started["id"]


def test_preflight_allows_the_idempotency_key_header(client, booking_setup):
    response = client.options(API + "/bookings", headers={"Origin": A1, "Access-Control-Request-Method": "POST"})
    assert response.status_code == 204
    assert "Idempotency-Key" in response.headers["Access-Control-Allow-Headers"]


def test_thirty_concurrent_http_requests_for_one_slot_make_one_booking(app, booking_setup):
    app.config["ASTHRON_WIDGET_LIMIT_MESSAGES_PER_IP"] = "1000 per minute"
    barrier, codes = threading.Barrier(30), []

    def attempt(n):
        client = app.test_client()
        barrier.wait()
        response = post_booking(client, booking_setup, booking_body(booking_setup, email=f"v{n}@example.com"),
                                key=f"k{n}")
        codes.append(response.status_code)

    threads = [threading.Thread(target=attempt, args=(n,)) for n in range(30)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    app.config["ASTHRON_WIDGET_LIMIT_MESSAGES_PER_IP"] = "60 per minute"
    assert sorted(codes) == [201] + [409] * 29
    assert count_bookings(app) == 1


# --- manage pages ----------------------------------------------------------------------------------------

def manage_path(app, booking_id):
    with app.app_context():
        return "/booking/manage/" + booking_service.manage_token(db.session.get(Booking, booking_id))


def test_the_manage_page_shows_the_booking_in_the_visitors_zone(client, booking_setup, app):
    booking_id = post_booking(client, booking_setup).get_json()["booking"]["id"]
    page = client.get(manage_path(app, booking_id))
    assert page.status_code == 200
    local = day_after_tomorrow(10).astimezone(booking_service.availability.zone("America/New_York"))
    assert local.strftime("%H:%M") in page.get_data(as_text=True)


def test_a_tampered_link_is_404(client, booking_setup, app):
    booking_id = post_booking(client, booking_setup).get_json()["booking"]["id"]
    path = manage_path(app, booking_id)
    tampered = path[:-3] + ("xyz" if not path.endswith("xyz") else "abc")
    assert client.get(tampered).status_code == 404
    assert client.post(tampered + "/cancel", data={"csrf_token": csrf_token(client, path)}).status_code == 404
    assert count_bookings(app) == 1


def test_an_expired_link_is_404(client, booking_setup, app):
    booking_id = post_booking(client, booking_setup).get_json()["booking"]["id"]
    path = manage_path(app, booking_id)
    with app.app_context():
        booking = db.session.get(Booking, booking_id)
        # The appointment moved into the past (as if its time had come): the link no longer works.
        booking.start_at = booking.blocked_start = datetime.now(UTC) - timedelta(minutes=1)
        db.session.commit()
    page = client.get(path)
    assert page.status_code == 404 and "expired" in page.get_data(as_text=True)


def test_cancelling_through_the_link_needs_the_csrf_token_then_frees_the_slot(client, booking_setup, app):
    booking_id = post_booking(client, booking_setup).get_json()["booking"]["id"]
    path = manage_path(app, booking_id)
    assert client.post(path + "/cancel").status_code == 400
    assert count_bookings(app) == 1
    response = client.post(path + "/cancel", data={"csrf_token": csrf_token(client, path)})
    assert response.status_code == 303
    assert count_bookings(app) == 0
    again = post_booking(client, booking_setup, booking_body(booking_setup, email="next@example.com"), key="i-2")
    assert again.status_code == 201


def test_moving_through_the_link_takes_a_free_time(client, booking_setup, app):
    booking_id = post_booking(client, booking_setup).get_json()["booking"]["id"]
    path = manage_path(app, booking_id)
    page = client.get(path).get_data(as_text=True)
    offered = re.findall(r'name="start" value="([^"]+)"', page)
    new_start = datetime.fromisoformat(offered[-1])
    response = client.post(path + "/reschedule", data={"csrf_token": csrf_token(client, path),
                                                        "start": new_start.isoformat()})
    assert response.status_code == 303
    with app.app_context():
        assert db.session.get(Booking, booking_id).start_at.replace(tzinfo=UTC) == new_start.astimezone(UTC)
    # The old link expired with the old time? No: it stays valid until the old start, but the page moved on.
    assert client.post(path + "/reschedule", data={"csrf_token": csrf_token(client, path),
                                                   "start": "garbage"}).status_code == 400


# --- admin routes: tenant isolation of writes ------------------------------------------------------------

def test_an_outsider_cannot_cancel_a_booking_of_another_agency(client, auth, booking_setup, app):
    booking_id = post_booking(client, booking_setup).get_json()["booking"]["id"]
    auth.login("b_admin")
    token = csrf_token(client, "/bookingview/list/")
    response = client.post("/bookingview/action_post", data={"action": "cancel", "rowid": booking_id,
                                                             "csrf_token": token})
    assert response.status_code == 404
    assert count_bookings(app) == 1


def test_staff_cancel_from_the_admin_and_the_client_may_not(client, auth, booking_setup, app):
    booking_id = post_booking(client, booking_setup).get_json()["booking"]["id"]
    auth.login("a1_client")
    token = csrf_token(client, "/bookingview/list/")
    client.post("/bookingview/action_post", data={"action": "cancel", "rowid": booking_id, "csrf_token": token})
    assert count_bookings(app) == 1
    auth.logout()
    auth.login("a1_staff")
    token = csrf_token(client, "/bookingview/list/")
    response = client.post("/bookingview/action_post", data={"action": "cancel", "rowid": booking_id,
                                                             "csrf_token": token})
    assert response.status_code == 302
    assert count_bookings(app) == 0


def test_an_outsider_cannot_add_a_service_or_resource_to_another_workspace(client, auth, booking_setup, app):
    auth.login("b_admin")
    token = csrf_token(client, "/serviceview/add")
    client.post("/serviceview/add", data={"csrf_token": token, "workspace": booking_setup["a1"], "name": "Intruder",
                                          "duration_minutes": 30, "buffer_before_minutes": 0,
                                          "buffer_after_minutes": 0, "min_notice_minutes": 0, "max_days_ahead": 30,
                                          "slot_step_minutes": 30})
    client.post("/resourceview/add", data={"csrf_token": token, "workspace": booking_setup["a1"], "name": "Intruder",
                                           "time_zone": "UTC"})
    client.post(f"/serviceview/edit/{booking_setup['a1_service']}", data={"csrf_token": token, "name": "Renamed",
                                                                          "duration_minutes": 30})
    with app.app_context():
        assert db.session.scalar(select(func.count(Service.id)).where(Service.name.in_(["Intruder", "Renamed"]))) == 0
        assert db.session.scalar(select(func.count(Resource.id)).where(Resource.name == "Intruder")) == 0


def test_the_week_view_of_another_tenants_workspace_is_404(client, auth, booking_setup):
    auth.login("b_admin")
    assert client.get(f"/bookings/week/?workspace={booking_setup['a1']}").status_code == 404
    assert client.get(f"/bookings/week/?workspace={booking_setup['b1']}").status_code == 200


def test_the_week_view_shows_each_booking_under_its_person_and_day(client, auth, booking_setup):
    post_booking(client, booking_setup)
    auth.login("a1_staff")
    week = day_after_tomorrow(10).date().isoformat()
    page = client.get(f"/bookings/week/?workspace={booking_setup['a1']}&week={week}").get_data(as_text=True)
    assert "Person a1" in page and "Vera Visitor" in page and "10:00" in page


# --- admin configuration through the real forms ----------------------------------------------------------

def form_errors(response):
    return [e.strip() for e in re.findall(r"(?:help-block|alert)[^>]*>([^<]+)", response.get_data(as_text=True))]


def test_an_admin_sets_up_a_resource_its_hours_and_a_service_through_the_forms(client, auth, booking_setup, app):
    auth.login("a1_admin")
    token = csrf_token(client, "/resourceview/add")
    response = client.post("/resourceview/add", data={"csrf_token": token, "workspace": booking_setup["a1"],
                                                      "name": "Dr Bea", "time_zone": "Europe/Vienna", "active": "y"})
    assert response.status_code == 302, form_errors(response)
    with app.app_context():
        bea = db.session.scalars(select(Resource).where(Resource.name == "Dr Bea")).one()
        bea_id, bea_ws = bea.id, bea.workspace_id
    assert bea_ws == booking_setup["a1"]
    response = client.post("/workinghoursview/add", data={"csrf_token": token, "resource": bea_id, "weekday": "0",
                                                          "start_time": "09:00", "end_time": "12:30"})
    assert response.status_code == 302
    response = client.post("/workinghoursview/add", data={"csrf_token": token, "resource": bea_id, "weekday": "1",
                                                          "start_time": "12:00", "end_time": "09:00"})
    assert response.status_code == 400 and "after the start" in response.get_data(as_text=True)
    response = client.post("/serviceview/add", data={
        "csrf_token": token, "workspace": booking_setup["a1"], "name": "Long visit", "duration_minutes": 90,
        "buffer_before_minutes": 0, "buffer_after_minutes": 10, "min_notice_minutes": 60, "max_days_ahead": 30,
        "slot_step_minutes": 30, "resources": [bea_id], "active": "y"})
    assert response.status_code == 302, form_errors(response)
    with app.app_context():
        from datetime import time as clock

        from asthron.models.booking import WorkingHours

        hours = db.session.scalars(select(WorkingHours).where(WorkingHours.resource_id == bea_id)).all()
        assert [(h.weekday, h.start_time, h.end_time) for h in hours] == [(0, clock(9), clock(12, 30))]
        service = db.session.scalars(select(Service).where(Service.name == "Long visit")).one()
        assert [r.id for r in service.resources] == [bea_id]


def test_a_resource_needs_a_real_time_zone(client, auth, booking_setup, app):
    auth.login("a1_admin")
    token = csrf_token(client, "/resourceview/add")
    response = client.post("/resourceview/add", data={"csrf_token": token, "workspace": booking_setup["a1"],
                                                      "name": "Nowhere", "time_zone": "Mars/Olympus"})
    assert response.status_code == 400 and "IANA time zone" in response.get_data(as_text=True)
    with app.app_context():
        assert db.session.scalar(select(func.count(Resource.id)).where(Resource.name == "Nowhere")) == 0


def test_staff_may_not_change_services_and_clients_may_not_cancel(client, auth, booking_setup, app):
    auth.login("a1_staff")
    token = csrf_token(client, "/bookingview/list/")
    response = client.post(f"/serviceview/edit/{booking_setup['a1_service']}", data={"csrf_token": token,
                                                                                    "name": "Renamed"})
    assert response.status_code in (302, 403)
    with app.app_context():
        assert db.session.get(Service, booking_setup["a1_service"]).name == "Visit a1"


def test_the_booking_script_is_served_and_writes_no_markup(client):
    response = client.get("/widget-booking.js")
    assert response.status_code == 200 and response.mimetype == "application/javascript"
    source = response.get_data(as_text=True)
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function"):
        assert sink not in source
    assert 'el("p"' in source  # text goes through the widget's el(), which sets textContent


def test_a_service_cannot_be_delivered_by_another_workspaces_people(client, auth, booking_setup, app):
    auth.login("a_admin")  # sees both A1 and A2
    token = csrf_token(client, "/serviceview/add")
    client.post("/serviceview/add", data={
        "csrf_token": token, "workspace": booking_setup["a2"], "name": "Borrowed", "duration_minutes": 30,
        "buffer_before_minutes": 0, "buffer_after_minutes": 0, "min_notice_minutes": 0, "max_days_ahead": 30,
        "slot_step_minutes": 30, "resources": [booking_setup["a1_resource"]]})
    with app.app_context():
        assert db.session.scalar(select(func.count(Service.id)).where(Service.name == "Borrowed")) == 0
