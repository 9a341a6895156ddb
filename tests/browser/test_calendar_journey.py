"""An agency admin connects a staff member's Google Calendar through the consent page (a local server in
Google's formats) and turns on her private feed, whose address the browser then subscribes to."""
import json
import re

import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.browser


def _office():
    from asthron.models.tenancy import Role
    from asthron.services import tenancy as svc
    from tests.booking_helpers import make_resource, make_service
    from tests.conftest import PASSWORD

    agency = svc.create_agency("Northwind")
    workspace = svc.create_workspace(agency=agency, name="Bluebell Dental")
    admin = svc.create_user(username="nw_admin", email="nw_admin@example.com", password=PASSWORD)
    svc.add_member(user=admin, role=Role.agency_admin, agency=agency)
    ada = make_resource(workspace.id, name="Dr Ada")
    make_service(workspace.id, [ada], name="Check-up")
    return ada.id


def _calendar_of(resource_id):
    from asthron.extensions import db
    from asthron.models.booking import Resource

    resource = db.session.get(Resource, resource_id)
    return resource.calendar_backend, resource.calendar_token_encrypted is not None


def test_an_admin_connects_google_calendar_and_subscribes_to_the_feed(live, new_page, sign_in, fake_google,
                                                                       google_plugin):
    ada = live.seed(_office)
    page = sign_in(new_page(), "nw_admin")
    page.goto("/calendar/")
    page.click("text=Dr Ada")
    page.select_option("#backend", "google")
    page.fill("#settings", json.dumps({"calendar_id": "primary"}))
    with page.expect_navigation():
        page.click("#calendar-settings button[type=submit]")
    expect(page.locator("#calendar-state")).to_contain_text("not connected")

    with page.expect_navigation(url=re.compile(r".*/calendar/resource/\d+$")):
        page.click("#connect")  # to the consent page, which answers straight back to the callback
    expect(page.locator("body")).to_contain_text("Google Calendar is connected")
    expect(page.locator("#calendar-state")).to_contain_text("Connection: connected")
    assert live.seed(_calendar_of, ada) == ("google", True)

    page.click("#new-feed")
    feed_url = page.locator("#feed-url").inner_text().strip()
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+/calendar/feed/[\w-]+\.ics", feed_url)
    answer = page.request.get(feed_url)
    assert answer.status == 200 and answer.headers["content-type"].startswith("text/calendar")
    assert "BEGIN:VCALENDAR" in answer.text() and "Dr Ada: bookings" in answer.text()
    page.reload()
    expect(page.locator("#feed-url")).to_have_count(0)  # shown once
