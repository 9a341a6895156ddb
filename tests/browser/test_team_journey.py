"""Journey: an agency admin creates a workspace and a staff account; each user sees only their own."""
import re

import pytest

pytestmark = pytest.mark.browser

WORKSPACE = "Bluebell Dental"
STAFF = {"username": "bella", "email": "bella@example.com", "first_name": "Bella", "last_name": "Staff",
         "password": "a long staff password 42"}


def _create_workspace(page):
    page.goto("/workspaceview/add")
    page.select_option("#agency", label="Agency A")
    page.fill("#name", WORKSPACE)
    page.fill("#slug", "bluebell-dental")
    with page.expect_navigation():
        page.click("#model_form button[type=submit]")
    assert "Added Row" in page.inner_text("body"), page.inner_text("body")[:500]


def _add_staff(page):
    page.goto("/team/add/form")
    for field in ("username", "email", "first_name", "last_name", "password"):
        page.fill(f"#{field}", STAFF[field])
    page.select_option("#workspace", label=WORKSPACE)
    page.select_option("#role", label="Staff")
    with page.expect_navigation():
        page.click("form button[type=submit], form input[type=submit]")
    assert f"{STAFF['username']} can now sign in to {WORKSPACE}" in page.inner_text("body")


def _listed_workspaces(page):
    """Return the workspace names in the list table's first data column."""
    page.goto("/workspaceview/list/")
    rows = page.locator("table tbody tr")
    return [rows.nth(i).locator("td").nth(1).inner_text().strip() for i in range(rows.count())]


def _show_url(page, name):
    """Return the show URL of the listed workspace called `name`."""
    page.goto("/workspaceview/list/")
    row = page.locator("tr", has=page.locator("td", has_text=re.compile(f"^{re.escape(name)}$")))
    return row.locator("a[href*='/workspaceview/show/']").first.get_attribute("href")


def test_staff_sees_only_the_workspace_their_agency_admin_gave_them(agencies, new_page, sign_in):
    admin = sign_in(new_page(), "a_admin")
    _create_workspace(admin)
    assert WORKSPACE in _listed_workspaces(admin)
    _add_staff(admin)
    show_url = _show_url(admin, WORKSPACE)

    staff = sign_in(new_page(), STAFF["username"], STAFF["password"])
    assert _listed_workspaces(staff) == [WORKSPACE]
    assert staff.goto(show_url).status == 200

    outsider = sign_in(new_page(), "b_admin")
    assert _listed_workspaces(outsider) == ["B One"]
    assert outsider.goto(show_url).status == 404
    assert WORKSPACE not in outsider.inner_text("body")
