"""Journey: the admin runs in a real browser under its Content-Security-Policy, and the navbar signs out by POST."""
import pytest

pytestmark = pytest.mark.browser

PAGES = ["/login/", "/workspaceview/list/", "/workspaceview/add", "/membershipview/list/", "/users/userinfo/",
         "/resetmypassword/form"]


def _watch_for_csp_violations(page):
    violations = []
    page.on("console", lambda msg: violations.append(msg.text) if "Content Security Policy" in msg.text else None)
    page.on("pageerror", lambda exc: violations.append(str(exc)))
    return violations


def test_admin_pages_run_without_content_security_policy_violations(agencies, new_page, sign_in):
    page = new_page()
    violations = _watch_for_csp_violations(page)
    sign_in(page, "a_admin")
    for path in PAGES:
        page.goto(path)
        page.wait_for_load_state("load")
    assert violations == []


def test_navbar_logout_signs_out_with_one_click_after_opening_the_menu(agencies, new_page, sign_in):
    page = sign_in(new_page(), "a_admin")
    page.click("a.dropdown-toggle:has(.fa-user)")
    with page.expect_navigation():
        page.click("button[form=asthron-logout]")
    page.goto("/workspaceview/list/")
    assert "/login" in page.url
