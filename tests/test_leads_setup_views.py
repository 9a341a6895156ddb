"""Admin views of the lead setup: validated forms (400 per field), roles, tenants apart, copying a setup."""
import pytest
from sqlalchemy import func, select

from asthron.extensions import db
from asthron.models.leads import FieldKind, Lead, LeadField, PipelineStage, RuleOperator, ScoringRule, StageRule
from asthron.services import lead_pipeline, lead_setup, leads
from tests.conftest import csrf_token


def add_form(client, view, data):
    token = csrf_token(client, f"/{view}/add")
    return client.post(f"/{view}/add", data={**data, "csrf_token": token})


def edit_form(client, view, pk, data):
    token = csrf_token(client, f"/{view}/edit/{pk}")
    return client.post(f"/{view}/edit/{pk}", data={**data, "csrf_token": token})


def count(model, **where):
    query = select(func.count(model.id))
    for key, value in where.items():
        query = query.where(getattr(model, key) == value)
    return db.session.scalar(query)


@pytest.fixture
def setup(app, tenants):
    """A1 with its default fields and stages, a budget field and a scoring rule on it; B1 with its defaults."""
    with app.app_context():
        for ws in (tenants["a1"], tenants["b1"]):
            leads.ensure_default_fields(ws)
            lead_pipeline.ensure_default_stages(ws)
        db.session.add(LeadField(workspace_id=tenants["a1"], key="budget", label="Budget", kind=FieldKind.number,
                                 position=5, question="What is your budget?"))
        db.session.add(ScoringRule(workspace_id=tenants["a1"], field_key="budget", operator=RuleOperator.greater_than,
                                   value="1000", points=30))
        db.session.commit()
    return tenants


def test_an_admin_adds_a_select_field(client, auth, setup, ctx):
    auth.login("a1_admin")
    response = add_form(client, "leadfieldview", {
        "workspace": setup["a1"], "key": "plan", "label": "Plan", "kind": "select", "options_text": "Basic\nPro\n\nPro",
        "question": "Which plan?", "position": "6"})
    assert response.status_code == 302
    field = db.session.scalars(select(LeadField).where(LeadField.key == "plan")).one()
    assert (field.workspace_id, field.kind, field.options, field.question) == (setup["a1"], FieldKind.select,
                                                                             ["Basic", "Pro"], "Which plan?")


@pytest.mark.parametrize(("data", "message"), [
    ({"key": "Plan"}, "Use a lower-case letter"),
    ({"key": "budget"}, "already has a field budget"),
    ({"key": "score"}, "score is the lead"),
    ({"key": "plan", "kind": "select", "options_text": ""}, "Give the choices"),
    ({"key": "email", "kind": "number"}, "always of kind email"),
])
def test_a_bad_field_is_refused_with_a_400_saying_why(client, auth, setup, ctx, data, message):
    auth.login("a1_admin")
    before = count(LeadField)
    response = add_form(client, "leadfieldview", {"workspace": setup["a1"], "label": "X", "kind": "text",
                                                  "position": "1", **data})
    assert response.status_code == 400 and message in response.get_data(as_text=True)
    assert count(LeadField) == before


def test_core_and_used_fields_cannot_be_deleted(client, auth, setup, ctx):
    auth.login("a1_admin")
    email = db.session.scalars(select(LeadField).where(LeadField.key == "email",
                                                       LeadField.workspace_id == setup["a1"])).one()
    budget = db.session.scalars(select(LeadField).where(LeadField.key == "budget")).one()
    for field, message in ((email, "needed to find duplicate leads"), (budget, "1 rule(s) use the field budget")):
        token = csrf_token(client, "/leadfieldview/list/")
        response = client.post(f"/leadfieldview/delete/{field.id}", data={"csrf_token": token}, follow_redirects=True)
        assert message in response.get_data(as_text=True)
    db.session.expire_all()
    assert count(LeadField, workspace_id=setup["a1"]) == 4


def test_a_scoring_rule_is_checked_and_rescores_the_leads(client, auth, setup, ctx):
    lead = leads.capture(setup["a1"], source="widget", values={"email": "a@example.com", "budget": 50})
    db.session.commit()
    lead_id = lead.id
    auth.login("a1_admin")
    bad = add_form(client, "scoringruleview", {"workspace": setup["a1"], "field_key": "budgit", "operator": "gt",
                                               "value": "lots", "points": "10", "position": "0"})
    body = bad.get_data(as_text=True)
    assert bad.status_code == 400 and "Use one of this workspace's field keys: budget, email, name, phone." in body
    assert "Give a number to compare with" in body
    good = add_form(client, "scoringruleview", {"workspace": setup["a1"], "field_key": "budget", "operator": "lt",
                                                "value": "100", "points": "15", "position": "0"})
    assert good.status_code == 302
    db.session.expire_all()
    assert db.session.get(Lead, lead_id).score == 15
    rule = db.session.scalars(select(ScoringRule).where(ScoringRule.points == 15)).one()
    assert rule.operator == RuleOperator.less_than and rule.value == "100"


def test_a_stage_rule_may_test_the_score_and_must_target_its_own_workspace(client, auth, setup, ctx):
    qualified = next(s for s in lead_pipeline.stages(setup["a1"]) if s.qualified)
    foreign = lead_pipeline.stages(setup["b1"])[2]
    auth.login("a1_admin")
    response = add_form(client, "stageruleview", {"workspace": setup["a1"], "field_key": "score", "operator": "gt",
                                                  "value": "20", "stage": foreign.id, "position": "0"})
    assert response.status_code == 400 and count(StageRule) == 0
    response = add_form(client, "stageruleview", {"workspace": setup["a1"], "field_key": "score", "operator": "gt",
                                                  "value": "20", "stage": qualified.id, "position": "0"})
    assert response.status_code == 302 and count(StageRule, stage_id=qualified.id) == 1


def test_only_one_stage_is_the_qualified_stage(client, auth, setup, ctx):
    auth.login("a1_admin")
    response = add_form(client, "pipelinestageview", {"workspace": setup["a1"], "name": "Hot", "position": "9",
                                                      "qualified": "y"})
    assert response.status_code == 400 and "Only one stage is the qualified stage" in response.get_data(as_text=True)
    renamed = lead_pipeline.stages(setup["a1"])[1]
    response = edit_form(client, "pipelinestageview", renamed.id, {"name": "Called", "position": "1"})
    assert response.status_code == 302
    db.session.expire_all()
    assert db.session.get(PipelineStage, renamed.id).name == "Called"


def test_staff_and_clients_read_the_setup_but_cannot_change_it(client, auth, setup, ctx):
    for user in ("a1_staff", "a1_client"):
        auth.login(user)
        assert client.get("/leadfieldview/list/").status_code == 200
        assert "What is your budget?" in client.get("/leadfieldview/list/").get_data(as_text=True)
        response = client.post("/leadfieldview/add", data={"workspace": setup["a1"], "key": "x", "label": "X",
                                                            "kind": "text"})
        assert response.status_code in (302, 400, 403) and count(LeadField, key="x") == 0
        auth.logout()


def test_another_agency_cannot_edit_or_delete_the_setup(client, auth, setup, ctx):
    budget = db.session.scalars(select(LeadField).where(LeadField.key == "budget")).one()
    rule = db.session.scalars(select(ScoringRule)).one()
    stage = lead_pipeline.stages(setup["a1"])[1]
    auth.login("b_admin")
    token = csrf_token(client, "/leadfieldview/list/")
    for view, pk, data in (("leadfieldview", budget.id, {"label": "Mine"}),
                           ("scoringruleview", rule.id, {"field_key": "budget", "operator": "gt", "value": "1",
                                                         "points": "99"}),
                           ("pipelinestageview", stage.id, {"name": "Mine", "position": "1"})):
        assert client.get(f"/{view}/show/{pk}").status_code == 404
        assert client.post(f"/{view}/edit/{pk}", data={**data, "csrf_token": token}).status_code == 404
        assert client.post(f"/{view}/delete/{pk}", data={"csrf_token": token}).status_code == 404
    response = add_form(client, "scoringruleview", {"workspace": setup["a1"], "field_key": "budget", "operator": "gt",
                                                    "value": "1", "points": "5"})
    assert response.status_code in (400, 404)
    db.session.expire_all()
    assert (budget.label, rule.points, stage.name) == ("Budget", 30, "Contacted")
    assert count(ScoringRule) == 1


# ---- copying a setup ---------------------------------------------------------------------------------------

def test_copy_replaces_the_target_setup_and_keeps_its_leads_in_place(ctx, setup):
    a1, a2 = setup["a1"], setup["a2"]
    qualified = next(s for s in lead_pipeline.stages(a1) if s.qualified)
    db.session.add(StageRule(workspace_id=a1, field_key="score", operator=RuleOperator.greater_than, value="20",
                             stage_id=qualified.id))
    lead_pipeline.ensure_default_stages(a2)
    db.session.add(LeadField(workspace_id=a2, key="old_field", label="Old", kind=FieldKind.text, position=9))
    stale = leads.capture(a2, source="api", values={"email": "b@example.com"})
    leads.set_stage(stale, lead_pipeline.stages(a2)[1].id, actor_id=None)
    db.session.commit()
    # A value the target's fields do not know yet, as an old import could have left it.
    db.session.execute(Lead.__table__.update().where(Lead.id == stale.id).values(field_values={"budget": 5000}))
    db.session.commit()
    counts = lead_setup.copy_setup(source_id=a1, target_id=a2)
    db.session.commit()
    assert counts == {"fields": 4, "stages": 5, "scoring_rules": 1, "stage_rules": 1}
    assert sorted(f.key for f in leads.fields(a2)) == ["budget", "email", "name", "phone"]
    db.session.expire_all()
    lead = db.session.get(Lead, stale.id)
    # Kept its stage by name (Contacted), then the copied rules rescored it: 30 points, so on to Qualified.
    assert lead.score == 30 and lead.stage.name == "Qualified" and lead.stage.workspace_id == a2
    assert count(ScoringRule, workspace_id=a1) == 1  # the source is unchanged


def test_copying_a_workspace_onto_itself_is_refused(ctx, setup):
    with pytest.raises(lead_setup.SetupError):
        lead_setup.copy_setup(source_id=setup["a1"], target_id=setup["a1"])


def test_an_agency_admin_copies_through_the_form(client, auth, setup, ctx):
    auth.login("a_admin")
    page = client.get("/leads/setup/copy/form")
    assert page.status_code == 200 and "Replaces all lead fields" in page.get_data(as_text=True)
    token = csrf_token(client, "/leads/setup/copy/form")
    unconfirmed = client.post("/leads/setup/copy/form", data={"source": setup["a1"], "target": setup["a2"],
                                                              "csrf_token": token})
    assert unconfirmed.status_code == 400 and count(LeadField, workspace_id=setup["a2"]) == 0
    response = client.post("/leads/setup/copy/form", data={"source": setup["a1"], "target": setup["a2"],
                                                           "confirm": "y", "csrf_token": token})
    assert response.status_code == 302
    assert count(LeadField, workspace_id=setup["a2"], key="budget") == 1


def test_another_agency_cannot_copy_to_or_from_a_workspace_it_does_not_administer(client, auth, setup, ctx):
    auth.login("b_admin")
    token = csrf_token(client, "/leads/setup/copy/form")
    for source, target in ((setup["a1"], setup["b1"]), (setup["b1"], setup["a1"])):
        response = client.post("/leads/setup/copy/form", data={"source": source, "target": target, "confirm": "y",
                                                               "csrf_token": token})
        assert response.status_code == 404
    assert count(LeadField, workspace_id=setup["b1"], key="budget") == 0
    assert count(LeadField, workspace_id=setup["a1"]) == 4


def test_a_workspace_admin_cannot_copy_setups(client, auth, setup):
    auth.login("a1_admin")
    assert client.get("/leads/setup/copy/form").status_code in (302, 403)


# ---- widget settings: when the form shows, and the phone region ---------------------------------------------

def test_widget_settings_choose_the_lead_form_and_phone_region(app, client, auth, tenants):
    from tests.test_widget_script import _edit, _settings, _settings_id

    auth.login("a1_admin")
    client.get("/widgetsettingsview/list/")
    pk = _settings_id(app, tenants["a1"])
    assert _edit(client, pk, phone_region="xx").status_code == 400
    assert _edit(client, pk, lead_form="sometimes").status_code == 400
    assert _edit(client, pk, lead_form="after_reply", phone_region="gb").status_code == 302
    saved = _settings(app, tenants["a1"])
    assert (saved.lead_form, saved.phone_region) == ("after_reply", "GB")
    assert _edit(client, pk, lead_form="start", phone_region="").status_code == 302
    assert _settings(app, tenants["a1"]).phone_region is None
