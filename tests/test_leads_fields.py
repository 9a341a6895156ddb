"""Lead values are validated against the workspace's fields: one clear error per bad field, of every kind."""
import pytest

from asthron.extensions import db
from asthron.models.chat import WidgetSettings
from asthron.models.leads import FieldKind, LeadField
from asthron.services import leads


@pytest.fixture
def workspace(ctx, tenants):
    """Workspace A1 with a custom field of each kind besides the core name, email and phone."""
    ws = tenants["a1"]
    leads.ensure_default_fields(ws)
    for position, (key, kind, options) in enumerate([
            ("company", FieldKind.text, []), ("team_size", FieldKind.number, []),
            ("plan", FieldKind.select, ["Basic", "Pro"]), ("needs", FieldKind.multiselect, ["Chat", "Booking"]),
            ("start", FieldKind.date, []), ("newsletter", FieldKind.checkbox, []),
            ("work_email", FieldKind.email, []), ("mobile", FieldKind.phone, [])], start=10):
        db.session.add(LeadField(workspace_id=ws, key=key, label=key.title(), kind=kind, options=options,
                                 position=position))
    db.session.flush()
    return ws


def errors_for(workspace, values, **kwargs):
    with pytest.raises(leads.LeadValidationError) as caught:
        leads.validate(workspace, {"email": "a@example.com", **values}, **kwargs)
    return caught.value.errors


@pytest.mark.parametrize(("key", "value", "message"), [
    ("company", 42, "Enter text."),
    ("company", "x" * 1001, "at most 1000"),
    ("email", "not-an-email", "name@example.com"),
    ("work_email", "a@b", "name@example.com"),
    ("phone", "12", "country code"),
    ("mobile", "+1 555 0100", "not a valid phone number"),
    ("team_size", "a dozen", "Enter a number"),
    ("team_size", True, "Enter a number"),
    ("team_size", "nan", "Enter a number"),
    ("plan", "Enterprise", "Choose one of: Basic, Pro."),
    ("needs", ["Chat", "Coffee"], "Choose one or more of: Chat, Booking."),
    ("needs", {"Chat": True}, "Choose one or more of"),
    ("start", "31/03/2025", "YYYY-MM-DD"),
    ("start", "2025-02-30", "YYYY-MM-DD"),
    ("newsletter", "perhaps", "Tick the box"),
])
def test_a_bad_value_of_each_kind_is_named_with_how_to_write_it(workspace, key, value, message):
    errors = errors_for(workspace, {key: value})
    assert list(errors) == [key]
    assert message in errors[key]


def test_every_bad_field_is_reported_at_once(workspace):
    errors = errors_for(workspace, {"team_size": "many", "plan": "Gold", "start": "soon"})
    assert set(errors) == {"team_size", "plan", "start"}


def test_an_unknown_key_is_an_error_not_silently_dropped(workspace):
    assert errors_for(workspace, {"favourite_colour": "blue"}) == {"favourite_colour": "There is no such field."}


def test_good_values_are_normalised(workspace):
    cleaned = leads.validate(workspace, {
        "name": "  Ada Lovelace ", "email": "Ada@Example.COM", "phone": "+44 20 7946 0958", "team_size": "12",
        "plan": "Pro", "needs": ["Booking", "Chat", "Booking"], "start": "2025-03-31", "newsletter": "on",
        "company": "", "mobile": "+1 (415) 555-2671"})
    assert cleaned == {"name": "Ada Lovelace", "email": "ada@example.com", "phone": "+442079460958", "team_size": 12,
                       "plan": "Pro", "needs": ["Booking", "Chat"], "start": "2025-03-31", "newsletter": True,
                       "company": None, "mobile": "+14155552671"}


def test_a_decimal_number_stays_decimal(workspace):
    assert leads.validate(workspace, {"email": "a@example.com", "team_size": "2,5"})["team_size"] == 2.5


def test_required_fields_must_be_given_unless_partial(workspace):
    db.session.get(LeadField, _field_id(workspace, "plan")).required = True
    db.session.get(LeadField, _field_id(workspace, "newsletter")).required = True
    errors = errors_for(workspace, {"newsletter": False})
    assert errors == {"plan": "This field is required.", "newsletter": "Tick this box to continue."}
    assert leads.validate(workspace, {"name": "Ada"}, partial=True) == {"name": "Ada"}
    assert errors_for(workspace, {"plan": ""}, partial=True) == {"plan": "This field is required."}


def test_the_default_email_field_is_required(ctx, tenants):
    with pytest.raises(leads.LeadValidationError) as caught:
        leads.validate(tenants["a1"], {"name": "Ada"})
    assert caught.value.errors == {"email": "This field is required."}


def test_a_workspace_without_saved_fields_gets_the_core_three(ctx, tenants):
    assert [(f.key, f.kind, f.id) for f in leads.fields(tenants["b1"])] == [
        ("name", FieldKind.text, None), ("email", FieldKind.email, None), ("phone", FieldKind.phone, None)]
    saved = leads.ensure_default_fields(tenants["b1"])
    assert all(f.id for f in saved) and len(saved) == 3
    assert len(leads.ensure_default_fields(tenants["b1"])) == 3


def test_a_phone_without_country_code_is_read_in_the_workspace_region(workspace):
    errors = errors_for(workspace, {"phone": "020 7946 0958"})
    assert errors["phone"].endswith("Enter the number with its country code, like +44 20 7946 0958.")
    db.session.add(WidgetSettings(workspace_id=workspace, phone_region="GB"))
    db.session.flush()
    assert leads.validate(workspace, {"email": "a@example.com", "phone": "020 7946 0958"})["phone"] == "+442079460958"
    assert "outside GB" in errors_for(workspace, {"phone": "0000"})["phone"]


def test_the_configured_region_applies_when_the_workspace_names_none(workspace, app, monkeypatch):
    monkeypatch.setitem(app.config, "ASTHRON_LEADS_PHONE_REGION", "US")
    assert leads.validate(workspace, {"email": "a@example.com", "phone": "(415) 555-2671"})["phone"] == "+14155552671"


def test_values_that_are_not_an_object_are_refused(workspace):
    with pytest.raises(leads.LeadValidationError) as caught:
        leads.validate(workspace, ["email"])
    assert "fields" in caught.value.errors


def _field_id(workspace, key):
    return next(f.id for f in leads.fields(workspace) if f.key == key)
