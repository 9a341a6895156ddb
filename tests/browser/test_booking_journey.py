"""A visitor books in the widget on a client's website (in their own time zone), gets the confirmation
email (outbox transport), cancels through the link in it, and the slot is free again."""
import re
import time
from datetime import UTC, timedelta
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import TIMEOUT_MS

pytestmark = pytest.mark.browser
VISITOR_ZONE = "Asia/Tokyo"


def _clinic(origins):
    from asthron.services import tenancy as svc
    from asthron.services import widget_settings
    from tests.booking_helpers import make_resource, make_service

    workspace = svc.create_workspace(agency=svc.create_agency("Northwind"), name="Bluebell Dental", origins=origins)
    widget_settings.ensure(workspace.id)
    dentist = make_resource(workspace.id, name="Dr Ada", hours=((9, 12),))
    service = make_service(workspace.id, [dentist], name="Check-up", duration=60, notice=60)
    return {"key": workspace.public_key, "service": service.id, "workspace": workspace.id}


def _host_page(live, key):
    return (f'<!doctype html><html lang="en"><head><title>Bluebell Dental</title></head><body><h1>Bluebell</h1>'
            f'<script src="{live.url}/widget.js" data-key="{key}" async></script></body></html>')


def _confirmation(workspace_id):
    from sqlalchemy import select

    from asthron.models.notifications import OutboxEmail

    return select(OutboxEmail).where(OutboxEmail.workspace_id == workspace_id,
                                     OutboxEmail.subject.like("Booking confirmed%"))


def _wait_for_email(live, workspace_id):
    from asthron.extensions import db

    deadline = time.monotonic() + TIMEOUT_MS / 1000
    while time.monotonic() < deadline:
        found = live.seed(lambda: [(e.to, e.text, e.attachments)
                                   for e in db.session.scalars(_confirmation(workspace_id))])
        if found:
            return found[0]
        time.sleep(0.2)
    raise AssertionError("no confirmation email reached the outbox")


def _free_starts(live, service_id, start):
    from asthron.extensions import db
    from asthron.models.booking import Service
    from asthron.services import availability

    def starts():
        service = db.session.get(Service, service_id)
        return [s.start for s in availability.slots(service, start=start, end=start + timedelta(hours=1))]
    return live.seed(starts)


def _stored_booking(live):
    from sqlalchemy import select

    from asthron.extensions import db
    from asthron.models.booking import Booking

    return live.seed(lambda: [(b.start_at.replace(tzinfo=UTC), b.status.value, b.email)
                              for b in db.session.scalars(select(Booking))])


def test_visitor_books_gets_the_email_cancels_by_link_and_the_slot_is_free_again(live, browser, second_origin):
    clinic = live.seed(_clinic, [second_origin.url])
    context = browser.new_context(base_url=live.url, timezone_id=VISITOR_ZONE)
    context.set_default_timeout(TIMEOUT_MS)
    try:
        page = context.new_page()
        page.goto(second_origin.add_page("/index.html", _host_page(live, clinic["key"])))
        page.get_by_role("button", name="Chat with us").click()
        page.get_by_role("button", name="Book an appointment").click()
        page.get_by_role("button", name=re.compile(r"^Check-up · 60 min")).click()
        booking = page.get_by_role("region", name="What would you like to book?")
        expect(booking.get_by_text(f"Times in {VISITOR_ZONE}")).to_be_visible()
        booking.locator(".g button").first.click()  # the first day with free times
        first_time = booking.locator(".g button").first
        chosen = first_time.text_content()
        first_time.click()
        booking.get_by_role("textbox", name="Your name").fill("Vera Visitor")
        booking.get_by_role("textbox", name="Your email").fill("vera@example.com")
        booking.get_by_role("button", name="Book").click()
        expect(booking.get_by_text("Booked: Check-up")).to_be_visible()
        expect(booking.get_by_text(f"{chosen} ({VISITOR_ZONE})")).to_be_visible()

        [(start, status, email)] = _stored_booking(live)
        # The time the visitor clicked is the stored UTC time, seen from Tokyo.
        assert start.astimezone(ZoneInfo(VISITOR_ZONE)).strftime("%H:%M") == chosen
        assert status == "confirmed" and email == "vera@example.com"
        assert start not in _free_starts(live, clinic["service"], start)

        to, text, attachments = _wait_for_email(live, clinic["workspace"])
        assert to == "vera@example.com" and attachments[0]["filename"] == "booking.ics"
        link = re.search(r"https?://\S+/booking/manage/\S+", text).group(0)
        manage = context.new_page()
        manage.goto(live.url + urlsplit(link).path)  # the email names the configured public URL
        assert manage.locator("#status").text_content() == "confirmed"
        manage.get_by_role("button", name="Cancel this booking").click()
        expect(manage.get_by_role("status")).to_have_text("Your booking is cancelled.")
        expect(manage.locator("#status")).to_have_text("cancelled")
        assert _stored_booking(live)[0][1] == "cancelled"
        assert start in _free_starts(live, clinic["service"], start)
    finally:
        context.close()


def test_the_booking_script_is_not_part_of_the_first_load(live, new_page, second_origin):
    clinic = live.seed(_clinic, [second_origin.url])
    page = new_page()
    scripts = []
    page.on("request", lambda request: scripts.append(request.url) if request.url.endswith(".js") else None)
    page.goto(second_origin.add_page("/index.html", _host_page(live, clinic["key"])))
    page.get_by_role("button", name="Chat with us").click()
    page.get_by_role("button", name="Book an appointment").wait_for()
    assert not any(u.endswith("/widget-booking.js") for u in scripts)
    page.get_by_role("button", name="Book an appointment").click()
    page.get_by_role("button", name=re.compile(r"^Check-up")).wait_for()
    assert any(u.endswith("/widget-booking.js") for u in scripts)
