"""The Google Calendar plugin against a local server speaking Google's formats: OAuth through the admin, refresh,
free/busy into busy blocks, events inserted, updated on a duplicate and deleted, errors mapped."""
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlparse

import pytest
import requests
from sqlalchemy import select

from asthron.extensions import db
from asthron.models.booking import Booking, BusyBlock, Resource
from asthron.providers.calendar import CalendarError, CalendarEvent, OAuthToken
from asthron.services import availability, booking as booking_service, calendar_sync, encryption
from tests.booking_helpers import make_resource, make_service
from tests.fake_google import CLIENT_SECRET


def at(days, hour, minute=0):
    day = datetime.now(UTC).date() + timedelta(days=days)
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=UTC)


def iso(moment):
    return moment.isoformat().replace("+00:00", "Z")


@pytest.fixture
def office(tenants, ctx, google_plugin, fake_google):
    """Workspace A1 with one staff member whose calendar backend is Google (not connected yet)."""
    ada = make_resource(tenants["a1"], name="Ada")
    ada.calendar_backend = "google"
    ada.calendar_settings = {"calendar_id": "primary"}
    consultation = make_service(tenants["a1"], [ada])
    db.session.commit()
    return {**tenants, "ada": ada.id, "service": consultation.id}


def connect(client, auth, fake, resource_id, user="a1_admin"):
    """Run the admin's Connect flow through the fake consent page and the real callback; return the last answer."""
    auth.login(user)
    started = client.get(f"/calendar/resource/{resource_id}/connect")
    assert started.status_code == 302 and started.location.startswith(fake.url)
    consent = requests.get(started.location, allow_redirects=False, timeout=5)
    back = urlparse(consent.headers["Location"])
    assert back.path == "/calendar/oauth/callback"
    return client.get(f"{back.path}?{back.query}")


def stored_token(resource_id):
    db.session.expire_all()
    return encryption.decrypt_json(db.session.get(Resource, resource_id).calendar_token_encrypted)


def connected(office, fake):
    """Give Ada a token as the callback would have stored it."""
    refresh = "1//0g-test-refresh"
    fake.refresh_tokens.add(refresh)
    resource = db.session.get(Resource, office["ada"])
    calendar_sync.store_token(resource, {"access_token": fake.issue_access_token(), "refresh_token": refresh,
                                         "token_type": "Bearer", "expires_in": 3599,
                                         "expires_at": int(datetime.now(UTC).timestamp()) + 3599})
    db.session.commit()
    return resource


def book(office, start):
    booking, _ = booking_service.create(office["a1"], service_id=office["service"], start=start,
                                        name="Vera Visitor", email="vera@example.com")
    db.session.commit()  # the push job runs right after the commit (inline jobs in tests)
    db.session.expire_all()
    return db.session.get(Booking, booking.id)


# --- OAuth through the admin ----------------------------------------------------------------------------

def test_the_plugin_registers_google_and_declares_google_as_a_subprocessor(google_plugin, client):
    from asthron.registry import calendar_backends

    assert "google" in calendar_backends.names()
    listed = client.get("/legal/sub-processors.json").json["subprocessors"]
    assert any(s["name"].startswith("Google LLC") and s["source"] == "plugin:google_calendar" for s in listed)


def test_connecting_sends_the_admin_to_google_with_pkce_and_offline_access(office, client, auth, fake_google):
    auth.login("a1_admin")
    started = client.get(f"/calendar/resource/{office['ada']}/connect")
    query = {k: v[0] for k, v in parse_qs(urlparse(started.location).query).items()}
    assert query["response_type"] == "code" and query["access_type"] == "offline"
    assert query["code_challenge_method"] == "S256" and len(query["code_challenge"]) == 43
    assert query["redirect_uri"] == "http://localhost/calendar/oauth/callback"
    assert len(query["state"]) >= 32 and "calendar.freebusy" in query["scope"]


def test_the_callback_stores_the_token_encrypted_and_reads_busy_times(office, client, auth, fake_google):
    fake_google.extra_busy["primary"] = [(iso(at(2, 9)), iso(at(2, 10)))]
    answer = connect(client, auth, fake_google, office["ada"])
    assert answer.status_code == 302 and answer.location.endswith(f"/calendar/resource/{office['ada']}")
    [grant] = fake_google.grants("authorization_code")
    assert grant["form"]["client_secret"] == CLIENT_SECRET and len(grant["form"]["code_verifier"]) >= 43
    resource = db.session.get(Resource, office["ada"])
    token = stored_token(office["ada"])
    assert token["refresh_token"].startswith("1//0g") and token["access_token"] in fake_google.access_tokens
    assert token["refresh_token"] not in resource.calendar_token_encrypted
    assert token["access_token"] not in resource.calendar_token_encrypted
    blocks = db.session.execute(select(BusyBlock.start_at, BusyBlock.end_at)).all()
    assert [(availability.as_utc(s), availability.as_utc(e)) for s, e in blocks] == [(at(2, 9), at(2, 10))]


def test_a_callback_with_another_state_is_a_404_and_stores_nothing(office, client, auth, fake_google):
    auth.login("a1_admin")
    started = client.get(f"/calendar/resource/{office['ada']}/connect")
    consent = requests.get(started.location, allow_redirects=False, timeout=5)
    back = urlparse(consent.headers["Location"])
    forged = back.query.replace("state=", "state=x")
    assert client.get(f"{back.path}?{forged}").status_code == 404
    assert client.get(f"{back.path}?{back.query}").status_code == 404  # the pending connection is used up
    db.session.expire_all()
    assert db.session.get(Resource, office["ada"]).calendar_token_encrypted is None
    assert not fake_google.grants("authorization_code")


def test_a_refused_consent_stores_nothing_and_says_so(office, client, auth, fake_google):
    fake_google.deny = True
    answer = connect(client, auth, fake_google, office["ada"])
    assert answer.status_code == 302
    page = client.get(answer.location).get_data(as_text=True)
    assert "not connected" in page
    db.session.expire_all()
    assert db.session.get(Resource, office["ada"]).calendar_token_encrypted is None


def test_a_code_google_refuses_is_a_400_with_a_message(office, client, auth, fake_google):
    auth.login("a1_admin")
    started = client.get(f"/calendar/resource/{office['ada']}/connect")
    back = urlparse(requests.get(started.location, allow_redirects=False, timeout=5).headers["Location"])
    fake_google.codes.clear()  # the code expired before the callback
    answer = client.get(f"{back.path}?{back.query}")
    assert answer.status_code == 400 and "invalid_grant" in answer.get_data(as_text=True)
    db.session.expire_all()
    assert db.session.get(Resource, office["ada"]).calendar_token_encrypted is None


def test_without_a_google_client_the_connect_button_explains_the_setup(office, client, auth, monkeypatch):
    monkeypatch.delenv("GOOGLE_CALENDAR_CLIENT_ID")
    auth.login("a1_admin")
    answer = client.get(f"/calendar/resource/{office['ada']}/connect")
    assert answer.status_code == 409 and "GOOGLE_CALENDAR_CLIENT_ID" in answer.get_data(as_text=True)


def test_another_agency_cannot_connect_or_see_the_calendar(office, client, auth, fake_google):
    auth.login("b_admin")
    assert client.get(f"/calendar/resource/{office['ada']}").status_code == 404
    answer = client.get(f"/calendar/resource/{office['ada']}/connect")
    assert answer.status_code == 404
    assert not [r for r in fake_google.requests if r["path"] == "/o/oauth2/v2/auth"]


# --- Refresh, free/busy and events ----------------------------------------------------------------------

def test_an_expired_access_token_is_refreshed_and_the_new_one_stored(office, fake_google):
    resource = connected(office, fake_google)
    old = stored_token(office["ada"])
    expired = {**old, "expires_at": int(datetime.now(UTC).timestamp()) - 10}
    fake_google.access_tokens[old["access_token"]] = 0  # Google no longer takes it either
    calendar_sync.store_token(resource, expired)
    db.session.commit()
    booking = book(office, at(2, 10))
    assert booking.sync_status == "synced"
    [refresh] = fake_google.grants("refresh_token")
    assert refresh["form"]["refresh_token"] == old["refresh_token"]
    new = stored_token(office["ada"])
    assert new["access_token"] != old["access_token"] and new["refresh_token"] == old["refresh_token"]
    assert new["expires_at"] > datetime.now(UTC).timestamp()


def test_a_revoked_authorisation_flags_the_booking_and_asks_to_connect_again(office, fake_google):
    resource = connected(office, fake_google)
    token = stored_token(office["ada"])
    fake_google.refresh_tokens.clear()
    calendar_sync.store_token(resource, {**token, "expires_at": 1})
    db.session.commit()
    booking = book(office, at(2, 10))
    assert booking.status.value == "confirmed"
    assert booking.sync_status == "failed" and "connect the calendar again" in booking.sync_error
    assert token["refresh_token"] not in booking.sync_error


def test_free_busy_times_become_the_resource_busy_blocks(office, fake_google):
    resource = connected(office, fake_google)
    fake_google.extra_busy["primary"] = [(iso(at(3, 9)), iso(at(3, 11))), (iso(at(90, 9)), iso(at(90, 10)))]
    calendar_sync.request_refresh(resource)
    db.session.commit()
    [freebusy] = [r for r in fake_google.requests if r["path"] == "/calendar/v3/freeBusy"]
    assert freebusy["json"]["items"] == [{"id": "primary"}]
    assert freebusy["headers"]["Authorization"].startswith("Bearer ya29.")
    blocks = db.session.execute(select(BusyBlock.start_at, BusyBlock.end_at, BusyBlock.source)).all()
    assert [(availability.as_utc(s), availability.as_utc(e), src) for s, e, src in blocks] == \
        [(at(3, 9), at(3, 11), "google")]  # the one 90 days ahead is beyond ASTHRON_CALENDAR_BUSY_DAYS


def test_a_booking_is_inserted_with_an_id_from_its_uid_and_deleted_when_cancelled(office, fake_google,
                                                                                   google_plugin):
    connected(office, fake_google)
    booking = book(office, at(2, 10))
    event_id = google_plugin.event_id_for(f"{booking.reference}@asthron")
    assert booking.external_event_id == event_id and booking.sync_status == "synced"
    event = fake_google.live_events()[event_id]
    assert event["start"] == {"dateTime": iso(at(2, 10)), "timeZone": "UTC"}
    assert booking.reference in event["summary"] and "vera@example.com" not in str(event)
    assert set(event_id) <= set("0123456789abcdefghijklmnopqrstuv")
    booking_service.cancel(booking)
    db.session.commit()
    assert fake_google.live_events() == {}


def test_inserting_an_event_google_already_has_updates_it(fake_google, google_plugin):
    backend = google_plugin.GoogleCalendar()
    settings = {"oauth": OAuthToken({"access_token": fake_google.issue_access_token(), "token_type": "Bearer",
                                     "expires_at": int(datetime.now(UTC).timestamp()) + 3000})}
    first = CalendarEvent(summary="Consultation (bk_1)", start=at(2, 10), end=at(2, 11), uid="bk_1@asthron")
    moved = CalendarEvent(summary="Consultation (bk_1)", start=at(2, 14), end=at(2, 15), uid="bk_1@asthron")
    assert backend.create_event(settings=settings, event=first) == backend.create_event(settings=settings, event=moved)
    [(event_id, event)] = fake_google.live_events().items()
    assert event["start"]["dateTime"] == iso(at(2, 14))
    statuses = [r["method"] for r in fake_google.requests if "/events" in r["path"]]
    assert statuses == ["POST", "POST", "PUT"]  # the second insert answered 409 duplicate


def test_deleting_an_event_that_is_gone_is_fine(fake_google, google_plugin):
    backend = google_plugin.GoogleCalendar()
    settings = {"oauth": OAuthToken({"access_token": fake_google.issue_access_token(), "token_type": "Bearer",
                                     "expires_at": int(datetime.now(UTC).timestamp()) + 3000})}
    event = CalendarEvent(summary="Consultation", start=at(2, 10), end=at(2, 11), uid="bk_2@asthron")
    event_id = backend.create_event(settings=settings, event=event)
    backend.delete_event(settings=settings, event_id=event_id)
    backend.delete_event(settings=settings, event_id=event_id)  # 410 deleted
    backend.delete_event(settings=settings, event_id="neverexisted0")  # 404 notFound


@pytest.mark.parametrize("status, reason, retryable", [
    (503, "backendError", True), (500, "backendError", True), (429, "rateLimitExceeded", True),
    (403, "rateLimitExceeded", True), (403, "forbidden", False), (404, "notFound", False), (401, "authError", False),
])
def test_api_errors_are_retryable_only_when_a_later_try_may_work(fake_google, google_plugin, status, reason,
                                                                retryable):
    backend = google_plugin.GoogleCalendar()
    settings = {"oauth": OAuthToken({"access_token": fake_google.issue_access_token(), "token_type": "Bearer",
                                     "expires_at": int(datetime.now(UTC).timestamp()) + 3000})}
    fake_google.fail_next(status, reason)
    with pytest.raises(CalendarError) as failed:
        backend.busy_times(settings=settings, start=at(1, 0), end=at(2, 0))
    assert failed.value.retryable is retryable
    assert str(status) in str(failed.value)


def test_an_unknown_calendar_in_free_busy_is_not_retryable(fake_google, google_plugin):
    settings = {"calendar_id": "someone-else@example.com",
                "oauth": OAuthToken({"access_token": fake_google.issue_access_token(), "token_type": "Bearer",
                                     "expires_at": int(datetime.now(UTC).timestamp()) + 3000})}
    with pytest.raises(CalendarError) as failed:
        google_plugin.GoogleCalendar().busy_times(settings=settings, start=at(1, 0), end=at(2, 0))
    assert not failed.value.retryable and "notFound" in str(failed.value)
