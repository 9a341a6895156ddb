"""A visitor leaves details in the widget; staff see the lead, drag it to another stage and export the list."""
import csv
import io

import pytest

pytestmark = pytest.mark.browser
PASSWORD = "correct horse battery staple"


def _workspace(origins):
    from asthron.models.tenancy import Role
    from asthron.services import tenancy as svc
    from asthron.services import widget_settings

    agency = svc.create_agency("Northwind")
    workspace = svc.create_workspace(agency=agency, name="Bluebell Dental", origins=origins)
    widget_settings.ensure(workspace.id).lead_form = "start"
    staff = svc.create_user(username="sam.staff", email="sam@example.com", password=PASSWORD)
    svc.add_member(user=staff, role=Role.staff, workspace=workspace)
    return {"key": workspace.public_key, "workspace": workspace.id}


def _lead_stage():
    from sqlalchemy import select

    from asthron.extensions import db
    from asthron.models.leads import Lead

    lead = db.session.scalars(select(Lead)).one()
    return lead.email, lead.stage.name, [a.kind.value for a in lead.activities]


def test_visitor_lead_reaches_the_board_is_moved_and_exported(live, new_page, sign_in, second_origin):
    seeded = live.seed(_workspace, [second_origin.url])
    visitor = new_page()
    visitor.goto(second_origin.add_page("/index.html", f'<!doctype html><html lang="en"><body><h1>Bluebell</h1>'
                                                       f'<script src="{live.url}/widget.js" data-key="{seeded["key"]}"'
                                                       f' async></script></body></html>'))
    visitor.get_by_role("button", name="Chat with us").click()
    dialog = visitor.get_by_role("dialog")
    dialog.get_by_label("Email *").fill("ada@example.com")
    dialog.get_by_label("Name").fill("Ada Lovelace")
    dialog.get_by_role("button", name="Send").first.click()
    dialog.get_by_text("Thank you! We will be in touch.").wait_for()

    staff = sign_in(new_page(), "sam.staff")
    staff.goto("/leadview/list/")
    staff.get_by_role("link", name="Ada Lovelace").wait_for()
    staff.get_by_role("link", name="Pipeline board").click()
    new_column = staff.locator(".lead-column[aria-label='New']")
    won_column = staff.locator(".lead-column[aria-label='Won']")
    card = new_column.locator(".lead-card", has_text="Ada Lovelace")
    card.wait_for()
    with staff.expect_response(lambda r: r.url.endswith("/leads/board/move")) as moved:
        card.drag_to(won_column)
    assert moved.value.status == 200
    won_column.locator(".lead-card", has_text="Ada Lovelace").wait_for()
    assert won_column.locator(".lead-column-count").inner_text() == "1"
    email, stage, kinds = live.seed(_lead_stage)
    assert (email, stage) == ("ada@example.com", "Won") and "stage" in kinds

    staff.reload()  # the move is stored, not just drawn
    won_column.locator(".lead-card", has_text="Ada Lovelace").wait_for()
    staff.get_by_role("link", name="List").click()
    with staff.expect_download() as download:
        staff.get_by_role("link", name="Export CSV").click()
    rows = list(csv.DictReader(io.StringIO(open(download.value.path(), encoding="utf-8").read())))
    assert [(r["email"], r["name"], r["stage"], r["source"]) for r in rows] == [
        ("ada@example.com", "Ada Lovelace", "Won", "widget")]
