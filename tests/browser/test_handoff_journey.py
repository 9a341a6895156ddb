"""A visitor asks for a person; staff see it arrive live, take it, reply; the visitor sees the reply live;
staff hand it back to the AI. Two browser contexts: the visitor on a client's website, staff in the inbox."""
import pytest

pytestmark = pytest.mark.browser

HOURS = "Monday to Friday 8:00 to 18:00"
HOSTILE = "Help with my booking <img src=x onerror=window.__xss=1>"
REPLY = "Hi, this is Anna. I can move your booking <b>today</b>."


def _seed(origins):
    from asthron.extensions import db
    from asthron.models.chat import KnowledgeEntry
    from asthron.models.tenancy import Role
    from asthron.services import tenancy as svc
    from asthron.services import widget_settings

    agency = svc.create_agency("Northwind")
    workspace = svc.create_workspace(agency=agency, name="Bluebell Dental", origins=origins)
    widget_settings.ensure(workspace.id).assistant_name = "Bluebell assistant"
    db.session.add(KnowledgeEntry(workspace_id=workspace.id, title="Opening hours", body=f"Open {HOURS}."))
    anna = svc.create_user(username="anna", email="anna@example.com", password="correct horse battery staple",
                           first_name="Anna", last_name="Staff")
    svc.add_member(user=anna, role=Role.staff, workspace=workspace)
    return workspace.public_key


def _host_page(live, key):
    return (f'<!doctype html><html lang="en"><head><title>Bluebell Dental</title></head><body><h1>Bluebell</h1>'
            f'<script src="{live.url}/widget.js" data-key="{key}" async></script></body></html>')


def test_visitor_asks_for_a_person_and_staff_answer_live_then_hand_back(live, new_page, second_origin, sign_in):
    key = live.seed(_seed, [second_origin.url])

    staff = sign_in(new_page(), "anna")
    staff.goto("/inbox/?tab=waiting")
    inbox_list = staff.locator("#inbox-list")
    inbox_list.get_by_text("No conversations here.").wait_for()

    visitor = new_page()
    visitor.goto(second_origin.add_page("/index.html", _host_page(live, key)))
    visitor.get_by_role("button", name="Chat with us").click()
    dialog = visitor.get_by_role("dialog", name="Bluebell assistant")
    dialog.get_by_role("textbox", name="Your message").fill(HOSTILE)
    dialog.get_by_role("button", name="Send").click()
    log = dialog.get_by_role("log")
    log.locator(".b.assistant").last.wait_for()
    dialog.get_by_role("button", name="Talk to a person").click()

    # Nobody is available: the visitor is told when to expect an answer and may leave an email.
    dialog.get_by_role("status").get_by_text("We usually reply within a few hours.", exact=False).wait_for()
    dialog.get_by_role("textbox", name="Your email").fill("visitor@example.com")
    dialog.get_by_role("button", name="Email me").click()
    dialog.get_by_role("status").get_by_text("We will email you our reply", exact=False).wait_for()
    assert not dialog.get_by_role("button", name="Talk to a person").is_visible()

    # Staff: the conversation arrives in the waiting tab without a reload, its text inert.
    item = inbox_list.locator("li[data-id^='c_']")
    item.get_by_text(HOSTILE).wait_for()
    assert staff.locator("[data-count=waiting]").inner_text() == "1"
    item.locator("a").click()
    staff.locator("#inbox-transcript").get_by_text(HOSTILE).wait_for()
    staff.get_by_role("button", name="Take").click()
    staff.locator("#inbox-owner", has_text="human").wait_for()
    staff.locator("#inbox-assignee", has_text="Anna").wait_for()
    staff.get_by_role("textbox", name="Reply to the visitor").fill(REPLY)
    staff.get_by_role("button", name="Send reply").click()
    staff.locator("#inbox-transcript .inbox-staff").get_by_text(REPLY).wait_for()
    staff.get_by_role("textbox", name="Internal note (the visitor never sees it)").fill("Moved to Friday 9:00")
    staff.get_by_role("button", name="Add note").click()
    staff.locator("#inbox-transcript .inbox-note").get_by_text("Moved to Friday 9:00").wait_for()

    # Visitor: the reply arrives live with the staff member's name, as text.
    reply = log.locator(".b.staff", has_text=REPLY)
    reply.wait_for()
    assert reply.locator(".a").inner_text() == "Anna"
    dialog.get_by_role("status").get_by_text("You are chatting with Anna").wait_for()
    assert log.get_by_text("Moved to Friday").count() == 0

    # Hand back: the AI answers the visitor's next question again.
    staff.get_by_role("button", name="Hand back to AI").click()
    staff.locator("#inbox-owner", has_text="ai").wait_for()
    log.get_by_text("You are chatting with the assistant again.").wait_for()
    dialog.get_by_role("button", name="Talk to a person").wait_for()
    dialog.get_by_role("textbox", name="Your message").fill("What are your opening hours?")
    dialog.get_by_role("button", name="Send").click()
    log.locator(".b.assistant", has_text=HOURS).wait_for()

    for page in (visitor, staff):
        assert page.evaluate("window.__xss") is None
        assert page.locator("img[src=x]").count() == 0
