"""Journey: an admin reads an email in the outbox (its HTML inert), retries a failure, chooses their emails."""
import pytest

pytestmark = pytest.mark.browser

HOSTILE_HTML = ('<p id="greeting">Hello from the outbox</p>'
                '<img src="x" onerror="window.top.h4Pwned = 1; alert(1)">'
                '<script>window.top.h4Pwned = 2; alert(2)</script>')


def _seed_emails(ids):
    from asthron.extensions import db
    from asthron.models.notifications import Notification, NotificationStatus, OutboxEmail

    email = OutboxEmail(workspace_id=ids["a1"], to="visitor@example.com", from_addr="A <a@example.com>",
                        subject="Your conversation", text="Plain <b>text</b> part", html=HOSTILE_HTML,
                        attachments=[{"filename": "conversation.txt", "content_type": "text/plain", "size": 12}])
    failed = Notification(workspace_id=ids["a1"], recipient="gone@example.com", template="new_lead",
                          context={"lead_id": 424242}, status=NotificationStatus.failed, attempts=10,
                          last_error="recipient refused: 550 5.1.1 No such user", message_id="<t.1@example.com>")
    db.session.add_all([email, failed])
    db.session.flush()
    return {"email": email.id, "failed": failed.id}


def test_the_outbox_shows_html_in_a_frame_that_runs_nothing(live, agencies, new_page, sign_in):
    rows = live.seed(_seed_emails, agencies)
    page = sign_in(new_page(), "a_admin")
    dialogs = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    page.goto(f"/outboxemailview/show/{rows['email']}")
    assert "Plain <b>text</b> part" in page.inner_text(".outbox-text")
    frame = page.frame_locator("iframe.outbox-html")
    assert frame.locator("#greeting").inner_text() == "Hello from the outbox"
    page.wait_for_timeout(300)  # give a stray onerror handler the chance to run
    assert dialogs == []
    assert page.evaluate("window.h4Pwned") is None
    assert "conversation.txt (text/plain, 12 bytes)" in page.inner_text("body")


def test_an_admin_retries_a_failed_email_from_the_list(live, agencies, new_page, sign_in):
    rows = live.seed(_seed_emails, agencies)
    page = sign_in(new_page(), "a_admin")
    page.goto("/notificationview/list/")
    with page.expect_navigation():  # read the filtered page, not the one being replaced
        page.click("text=Failed only")
    assert "550 5.1.1 No such user" in page.inner_text("body")
    page.check(f"input[name=rowid][value='{rows['failed']}']")
    page.click("text=Actions")
    page.click("text=Retry now")
    with page.expect_navigation():
        page.click(".modal.in >> text=OK")  # FAB's confirmation
    assert "1 queued again." in page.inner_text("body")


def test_a_person_turns_off_new_lead_emails(live, agencies, new_page, sign_in):
    page = sign_in(new_page(), "a_admin")
    page.goto("/notification-preferences/")
    box = page.locator("input[name=template][value=new_lead]")
    assert box.is_checked()
    box.uncheck()
    with page.expect_navigation():
        page.click("form.notification-preferences button[type=submit]")
    assert "Your email notifications are saved." in page.inner_text("body")
    assert not page.locator("input[name=template][value=new_lead]").is_checked()
    assert page.locator("input[name=template][value=handoff_requested]").is_checked()
