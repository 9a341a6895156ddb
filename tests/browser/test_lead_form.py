"""The widget's lead form on a client's website: rendered from the workspace's fields, errors beside each field."""
import pytest

pytestmark = pytest.mark.browser

FIELDS = [  # key, label, kind, options, required
    ("company", "Company", "text", [], False),
    ("team_size", "Team size", "number", [], False),
    ("plan", "Plan", "select", ["Basic", "Pro"], True),
    ("needs", "Needs", "multiselect", ["Chat", "Booking"], False),
    ("start", "Start date", "date", [], False),
    ("terms", "I agree to be contacted", "checkbox", [], True),
]


def _workspace(origins):
    from asthron.models.leads import FieldKind, LeadField
    from asthron.services import tenancy as svc
    from asthron.services import widget_settings
    from asthron.extensions import db

    workspace = svc.create_workspace(agency=svc.create_agency("Northwind"), name="Bluebell Dental", origins=origins)
    widget_settings.ensure(workspace.id).lead_form = "start"
    for position, (key, label, kind, options, required) in enumerate(FIELDS, start=10):
        db.session.add(LeadField(workspace_id=workspace.id, key=key, label=label, kind=FieldKind(kind),
                                 options=options, required=required, position=position,
                                 question="Which plan suits you?" if key == "plan" else None,
                                 help_text="People who will use it" if key == "team_size" else None))
    return workspace.public_key


def _lead():
    from sqlalchemy import select

    from asthron.extensions import db
    from asthron.models.leads import Lead

    lead = db.session.scalars(select(Lead)).one()
    return {"email": lead.email, "phone": lead.phone, "values": lead.values, "source": lead.source.value}


def test_visitor_fills_the_lead_form_fixes_errors_and_is_thanked(live, new_page, second_origin):
    key = live.seed(_workspace, [second_origin.url])
    page = new_page()
    page.goto(second_origin.add_page("/index.html", f'<!doctype html><html lang="en"><body><h1>Bluebell</h1>'
                                                    f'<script src="{live.url}/widget.js" data-key="{key}" async>'
                                                    f'</script></body></html>'))
    page.get_by_role("button", name="Chat with us").click()
    dialog = page.get_by_role("dialog")
    # Every kind renders as its control, labelled by the question where there is one.
    dialog.get_by_label("Which plan suits you? *").wait_for()
    assert dialog.get_by_label("Email *").get_attribute("type") == "email"
    assert dialog.get_by_label("Phone").get_attribute("type") == "tel"
    assert dialog.get_by_label("Team size").get_attribute("type") == "number"
    assert dialog.get_by_label("Start date").get_attribute("type") == "date"
    assert dialog.get_by_label("I agree to be contacted *").get_attribute("type") == "checkbox"
    assert dialog.get_by_text("People who will use it").is_visible()
    assert dialog.get_by_role("group").get_by_label("Booking").is_visible()

    dialog.get_by_label("Email *").fill("ada@")
    dialog.get_by_label("Phone").fill("12")
    dialog.get_by_role("button", name="Send").first.click()
    dialog.get_by_text("Enter an email address like name@example.com.").wait_for()
    assert dialog.get_by_text("Tick this box to continue.").is_visible()
    assert dialog.get_by_text("This field is required.").is_visible()
    assert dialog.get_by_text("country code").is_visible()

    dialog.get_by_label("Email *").fill("ada@example.com")
    dialog.get_by_label("Phone").fill("+44 20 7946 0958")
    dialog.get_by_label("Which plan suits you? *").select_option("Pro")
    dialog.get_by_role("group").get_by_label("Booking").check()
    dialog.get_by_label("Team size").fill("4")
    dialog.get_by_label("Start date").fill("2026-03-02")
    dialog.get_by_label("I agree to be contacted *").check()
    dialog.get_by_role("button", name="Send").first.click()
    dialog.get_by_text("Thank you! We will be in touch.").wait_for()
    assert not dialog.get_by_label("Email *").is_visible()
    assert live.seed(_lead) == {"email": "ada@example.com", "phone": "+442079460958", "source": "widget",
                                "values": {"plan": "Pro", "needs": ["Booking"], "team_size": 4,
                                           "start": "2026-03-02", "terms": True}}
