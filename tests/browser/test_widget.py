"""The chat widget on a client's website: embedded from another origin, used with the keyboard, on a phone."""
import pytest

pytestmark = pytest.mark.browser

QUESTION = "What are your opening hours?"
HOURS = "Monday to Friday 8:00 to 18:00"
NOTICE = "Bluebell keeps this chat to answer you."
# Records every text the pending assistant bubble showed, to see the answer arrive in pieces.
WATCH_TEXTS = """() => {
  const root = document.querySelector('[data-asthron-widget]').shadowRoot;
  window.__texts = [];
  new MutationObserver(() => {
    const last = [...root.querySelectorAll('.b.assistant')].pop();
    if (last) window.__texts.push(last.textContent);
  }).observe(root.querySelector('[role=log]'), {subtree: true, childList: true, characterData: true});
}"""


def _workspace(origins, *, consent):
    from asthron.models.chat import KnowledgeEntry
    from asthron.services import tenancy as svc
    from asthron.services import widget_settings

    agency = svc.create_agency("Northwind")
    workspace = svc.create_workspace(agency=agency, name="Bluebell Dental", origins=origins)
    settings = widget_settings.ensure(workspace.id)
    settings.assistant_name = "Bluebell assistant"
    settings.consent_required = consent
    settings.consent_notice = NOTICE
    settings.notice_version = "v1"
    settings.privacy_url = "https://example.com/privacy"
    from asthron.extensions import db

    db.session.add(KnowledgeEntry(workspace_id=workspace.id, title="Opening hours",
                                  body=f"Our opening hours: {HOURS}, Saturday 9:00 to 13:00."))
    return workspace.public_key


def _host_page(live, key):
    return (f'<!doctype html><html lang="en"><head><title>Bluebell Dental</title></head><body>'
            f'<h1>Bluebell Dental</h1><a href="#visit">Visit us</a>'
            f'<script src="{live.url}/widget.js" data-key="{key}" async></script></body></html>')


def _focused_label(page):
    return page.evaluate("""() => {
      const host = document.activeElement, inner = host && host.shadowRoot && host.shadowRoot.activeElement;
      return inner ? (inner.getAttribute('aria-label') || inner.textContent || inner.tagName) : null;
    }""")


def _tab_to_launcher(page):
    for _ in range(5):
        page.keyboard.press("Tab")
        if _focused_label(page) == "Chat with us":
            return
    raise AssertionError("the launcher is not reachable with Tab")


def test_visitor_accepts_consent_and_gets_a_streamed_answer(live, new_page, second_origin):
    key = live.seed(_workspace, [second_origin.url], consent=True)
    page = new_page()
    page.goto(second_origin.add_page("/index.html", _host_page(live, key)))
    launcher = page.get_by_role("button", name="Chat with us")
    assert launcher.get_attribute("aria-expanded") == "false"

    _tab_to_launcher(page)
    page.keyboard.press("Enter")
    dialog = page.get_by_role("dialog", name="Bluebell assistant")
    assert dialog.is_visible() and launcher.get_attribute("aria-expanded") == "true"
    assert dialog.get_by_text(NOTICE).is_visible()
    assert dialog.get_by_role("link", name="Privacy notice").get_attribute("href") == "https://example.com/privacy"
    message_box = dialog.get_by_role("textbox", name="Your message")
    assert message_box.is_disabled()
    assert _focused_label(page) == "Accept and continue"

    page.keyboard.press("Enter")
    page.wait_for_function("() => document.querySelector('[data-asthron-widget]').shadowRoot"
                           ".activeElement?.tagName === 'TEXTAREA'")
    page.evaluate(WATCH_TEXTS)
    page.keyboard.type(QUESTION)
    page.keyboard.press("Enter")
    log = dialog.get_by_role("log")
    log.locator(".b.visitor", has_text=QUESTION).wait_for()
    answer = log.locator(".b.assistant", has_text=HOURS)
    answer.wait_for()
    final = answer.text_content()
    page.wait_for_function("() => window.__texts.length > 0")
    partial = [t for t in page.evaluate("window.__texts") if t and t != final and t != "…"]
    assert partial and all(final.startswith(t.rstrip()) for t in partial), "the answer did not stream in"

    page.keyboard.press("Escape")
    assert not dialog.is_visible()
    assert _focused_label(page) == "Chat with us"

    page.reload()
    page.get_by_role("button", name="Chat with us").click()
    log = page.get_by_role("dialog", name="Bluebell assistant").get_by_role("log")
    log.locator(".b.assistant", has_text=HOURS).wait_for()
    assert log.locator(".b.visitor").all_text_contents() == [QUESTION]
    assert log.locator(".b.assistant", has_text=HOURS).count() == 1
    assert not page.get_by_text(NOTICE).is_visible()
    assert page.get_by_role("textbox", name="Your message").is_enabled()


def test_page_from_an_origin_not_allowed_gets_no_widget(live, new_page, second_origin):
    key = live.seed(_workspace, ["https://bluebell.example"], consent=False)
    page = new_page()
    with page.expect_console_message(lambda m: m.type == "warning" and "widget not shown" in m.text):
        page.goto(second_origin.add_page("/index.html", _host_page(live, key)))
    assert page.locator("[data-asthron-widget]").count() == 0


def test_widget_fills_a_small_phone_screen_and_answers(live, new_page, second_origin):
    key = live.seed(_workspace, [second_origin.url], consent=False)
    page = new_page()
    page.set_viewport_size({"width": 360, "height": 640})
    page.goto(second_origin.add_page("/index.html", _host_page(live, key)))
    page.get_by_role("button", name="Chat with us").click()
    dialog = page.get_by_role("dialog", name="Bluebell assistant")
    box = dialog.bounding_box()
    assert (box["x"], box["y"], box["width"], box["height"]) == (0, 0, 360, 640)
    message_box = dialog.get_by_role("textbox", name="Your message")
    assert message_box.is_enabled() and message_box.bounding_box()["y"] + message_box.bounding_box()["height"] <= 640
    message_box.fill(QUESTION)
    dialog.get_by_role("button", name="Send").click()
    dialog.get_by_role("log").locator(".b.assistant", has_text=HOURS).wait_for()
    dialog.get_by_role("button", name="Close chat").click()
    assert not dialog.is_visible()


def test_widget_polls_for_the_answer_when_streaming_is_unavailable(live, new_page, second_origin):
    key = live.seed(_workspace, [second_origin.url], consent=False)
    page = new_page()
    page.add_init_script("delete window.EventSource")
    page.goto(second_origin.add_page("/index.html", _host_page(live, key)))
    page.get_by_role("button", name="Chat with us").click()
    dialog = page.get_by_role("dialog", name="Bluebell assistant")
    dialog.get_by_role("textbox", name="Your message").fill(QUESTION)
    dialog.get_by_role("textbox", name="Your message").press("Enter")
    log = dialog.get_by_role("log")
    log.locator(".b.assistant", has_text=HOURS).wait_for()
    page.wait_for_timeout(2500)  # one more polling round must not add the answer twice
    assert log.locator(".b.assistant", has_text=HOURS).count() == 1
    assert log.locator(".b.visitor").all_text_contents() == [QUESTION]


def _settings_of(workspace_id):
    from asthron.services import widget_settings

    settings = widget_settings.ensure(workspace_id)
    settings.assistant_name = "Preview assistant"
    return settings.id


def test_admin_previews_the_live_widget_beside_the_snippet(live, new_page, agencies, sign_in):
    pk = live.seed(_settings_of, agencies["a1"])
    page = sign_in(new_page(), "a_admin")
    page.goto(f"/widgetsettingsview/preview/{pk}")
    assert "data-key=" in page.locator("#embed-snippet").inner_text()
    page.get_by_role("button", name="Chat with us").click()
    assert page.get_by_role("dialog", name="Preview assistant").is_visible()


def _demo():
    from asthron.services import demo

    return demo.seed()["workspaces"][1]["slug"]  # Harbour Yoga: no consent step


def test_demo_sample_website_answers_from_its_knowledge_base(live, new_page):
    slug = live.seed(_demo)
    page = new_page()
    page.goto(f"/demo/site/{slug}")
    page.get_by_role("button", name="Chat with us").click()
    dialog = page.get_by_role("dialog", name="Harbour Yoga")
    dialog.get_by_role("textbox", name="Your message").fill("How much is a class? What are the prices?")
    dialog.get_by_role("button", name="Send").click()
    dialog.get_by_role("log").locator(".b.assistant", has_text="10-class pass").wait_for()
