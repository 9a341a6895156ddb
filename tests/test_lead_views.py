"""The leads admin: list filters, the lead page and its timeline, the board, edits, export; tenants stay apart."""
import csv
import io

import pytest
from sqlalchemy import select

from asthron.extensions import db
from asthron.models.audit import AuditEntry
from asthron.models.chat import Conversation, ConversationOwner
from asthron.models.leads import ActivityKind, FieldKind, Lead, LeadActivity, LeadField, PipelineStage
from asthron.services import conversations, lead_pipeline, lead_search, leads
from tests.conftest import csrf_token

XSS = "<img src=x onerror=alert(1)>"
ESCAPED = "&lt;img src=x onerror=alert(1)&gt;"


def _capture(ws, **values):
    source = values.pop("source", "api")
    conversation_id = values.pop("conversation_id", None)
    return leads.capture(ws, source=source, values=values, conversation_id=conversation_id)


@pytest.fixture
def pipeline(app, tenants):
    """Leads in A1 (with a Budget field and a conversation), one in A2 and one in B1; return their ids."""
    with app.app_context():
        db.session.add(LeadField(workspace_id=tenants["a1"], key="budget", label="Budget", kind=FieldKind.select,
                                 options=["Small", "Large"], position=5))
        db.session.flush()
        conversation = Conversation(workspace_id=tenants["a1"], token_hash="0" * 64, owner=ConversationOwner.ai)
        db.session.add(conversation)
        db.session.flush()
        conversations.add_message(conversation, "visitor", f"I need a quote {XSS}")
        ids = {
            "ann": _capture(tenants["a1"], name=f"Ann {XSS}", email="ann@example.com", budget="Large",
                            source="widget", conversation_id=conversation.id).id,
            "bob": _capture(tenants["a1"], name="Bob", email="bob@example.com", budget="Small").id,
            "cid": leads.capture(tenants["a1"], source="api", values={"name": "Cid", "phone": "+442071838750"},
                                 require_all=False).id,
            "dee": _capture(tenants["a2"], name="Dee A2", email="dee@example.com").id,
            "eve": _capture(tenants["b1"], name="Eve B1", email="eve@example.com").id,
        }
        stages = {s.name: s.id for s in lead_pipeline.stages(tenants["a1"])}
        leads.set_stage(db.session.get(Lead, ids["bob"]), stages["Contacted"], actor_id=None)
        db.session.get(Lead, ids["cid"]).score = 70
        db.session.commit()
        b1_stage = lead_pipeline.stages(tenants["b1"])[1].id
        return {**tenants, **ids, "stages": stages, "b1_stage": b1_stage, "conversation": conversation.id}


def _names(body):
    return {name for name in ("Ann", "Bob", "Cid", "Dee A2", "Eve B1") if f">{name}" in body}


def test_staff_list_shows_only_their_workspace(client, auth, pipeline):
    auth.login("a1_staff")
    body = client.get("/leadview/list/").get_data(as_text=True)
    assert _names(body) == {"Ann", "Bob", "Cid"}
    assert ESCAPED in body and XSS not in body


def test_agency_admin_lists_across_their_workspaces(client, auth, pipeline):
    auth.login("a_admin")
    body = client.get("/leadview/list/").get_data(as_text=True)
    assert _names(body) == {"Ann", "Bob", "Cid", "Dee A2"}
    body = client.get(f"/leadview/list/?workspace={pipeline['a2']}").get_data(as_text=True)
    assert _names(body) == {"Dee A2"}


@pytest.mark.parametrize("query, expected", [
    ("stage={Contacted}", {"Bob"}),
    ("score_min=50", {"Cid"}),
    ("score_max=49", {"Ann", "Bob"}),
    ("source=widget", {"Ann"}),
    ("field=budget&value=large", {"Ann"}),
    ("q=BOB@", {"Bob"}),
    ("q=%25", set()),
    ("created_from=2000-01-01&created_to=2000-01-02", set()),
    ("owner=0", {"Ann", "Bob", "Cid"}),
])
def test_list_filters(client, auth, pipeline, query, expected):
    auth.login("a1_staff")
    body = client.get("/leadview/list/?" + query.format(**pipeline["stages"])).get_data(as_text=True)
    assert _names(body) == expected


@pytest.mark.parametrize("query", ["score_min=many", "created_from=yesterday", "source=fax", "stage=-1",
                                   "field=budget"])
def test_bad_filter_is_a_400(client, auth, pipeline, query):
    auth.login("a1_staff")
    response = client.get("/leadview/list/?" + query)
    assert response.status_code == 400


def test_list_count_stops_at_the_cap(client, auth, pipeline, monkeypatch):
    monkeypatch.setattr(lead_search, "COUNT_CAP", 2)
    auth.login("a1_staff")
    body = client.get("/leadview/list/").get_data(as_text=True)
    assert "more than 2" in body
    assert client.get("/leadview/list/?page=5").status_code == 400


def test_lead_page_merges_activities_and_transcript(client, auth, pipeline, ctx):
    auth.login("a1_staff")
    body = client.get(f"/leadview/show/{pipeline['ann']}").get_data(as_text=True)
    assert f"I need a quote {ESCAPED}" in body and XSS not in body
    assert "Captured from the widget" in body
    assert body.index("I need a quote") < body.index("Captured from the widget")  # by time, oldest first


def test_staff_adds_a_note_assigns_an_owner_and_edits_values(client, auth, pipeline, ctx):
    auth.login("a1_staff")
    token = csrf_token(client, f"/leadview/show/{pipeline['bob']}")
    base = f"/leadview/show/{pipeline['bob']}"
    note = {"csrf_token": token, "text": "Called, call back Monday"}
    assert client.post(base + "/note", data=note).status_code == 302
    assert client.post(base + "/owner", data={"csrf_token": token, "owner_id": pipeline["a1_staff"]}).status_code == 302
    assert client.post(base + "/values", data={"csrf_token": token, "name": "Bob Smith", "email": "bob@example.com",
                                               "budget": "Large"}).status_code == 302
    db.session.expire_all()
    bob = db.session.get(Lead, pipeline["bob"])
    assert (bob.name, bob.owner_id, bob.values["budget"]) == ("Bob Smith", pipeline["a1_staff"], "Large")
    kinds = [a.kind for a in bob.activities]
    assert ActivityKind.note in kinds
    body = client.get(base).get_data(as_text=True)
    assert "Called, call back Monday" in body


def test_invalid_values_answer_400_with_field_errors_and_change_nothing(client, auth, pipeline, ctx):
    auth.login("a1_staff")
    base = f"/leadview/show/{pipeline['bob']}"
    token = csrf_token(client, base)
    response = client.post(base + "/values", data={"csrf_token": token, "email": "not-an-email", "budget": "Huge"})
    body = response.get_data(as_text=True)
    assert response.status_code == 400
    assert 'data-field="email"' in body and 'data-field="budget"' in body
    db.session.expire_all()
    bob = db.session.get(Lead, pipeline["bob"])
    assert (bob.email, bob.values["budget"]) == ("bob@example.com", "Small")
    for path, data in (("/owner", {"owner_id": pipeline["b1_staff"]}), ("/note", {"text": ""}),
                       ("/stage", {"stage_id": pipeline["b1_stage"]})):
        assert client.post(base + path, data={"csrf_token": token, **data}).status_code == 400, path


def _move(client, lead_id, stage_id, token):
    return client.post("/leads/board/move", data={"csrf_token": token, "lead_id": lead_id, "stage_id": stage_id})


def test_board_shows_a_column_per_stage_in_order(client, auth, pipeline):
    auth.login("a1_staff")
    body = client.get(f"/leads/board/?workspace={pipeline['a1']}").get_data(as_text=True)
    positions = [body.index(f'aria-label="{name}"') for name in ("New", "Contacted", "Qualified", "Won", "Lost")]
    assert positions == sorted(positions)
    assert 'draggable="true"' in body and "leads_board.js" in body
    assert body.index(">Bob<") > body.index('aria-label="Contacted"')


def test_board_move_changes_the_stage_audited_with_a_timeline_entry(client, auth, pipeline, ctx):
    auth.login("a1_staff")
    token = csrf_token(client, f"/leads/board/?workspace={pipeline['a1']}")
    response = _move(client, pipeline["ann"], pipeline["stages"]["Won"], token)
    assert response.status_code == 200 and response.get_json()["stage"] == "Won"
    db.session.expire_all()
    assert db.session.get(Lead, pipeline["ann"]).stage_id == pipeline["stages"]["Won"]
    entry = db.session.scalars(select(AuditEntry).where(AuditEntry.action == "lead.update",
                                                        AuditEntry.target_id == str(pipeline["ann"]))
                               .order_by(AuditEntry.seq.desc())).first()
    assert entry.actor == "a1_staff" and "stage_id" in entry.details
    moved = db.session.scalars(select(LeadActivity).where(LeadActivity.lead_id == pipeline["ann"],
                                                          LeadActivity.kind == ActivityKind.stage)).all()
    assert moved[-1].actor_id == pipeline["a1_staff"] and "to Won" in moved[-1].summary


def test_client_sees_the_board_read_only_and_cannot_move(client, auth, pipeline, ctx):
    auth.login("a1_client")
    body = client.get(f"/leads/board/?workspace={pipeline['a1']}").get_data(as_text=True)
    assert ">Bob<" in body and 'draggable="true"' not in body and "leads_board.js" not in body
    assert client.get("/leadview/list/").status_code == 200
    assert client.get(f"/leadview/show/{pipeline['ann']}").status_code == 200
    token = csrf_token(client, f"/leadview/show/{pipeline['ann']}")
    assert _move(client, pipeline["ann"], pipeline["stages"]["Won"], token).status_code == 403
    assert client.post(f"/leadview/show/{pipeline['ann']}/note",
                       data={"csrf_token": token, "text": "hi"}).status_code == 403
    assert client.get("/leadview/export.csv").status_code == 403
    db.session.expire_all()
    assert db.session.get(Lead, pipeline["ann"]).stage_id == pipeline["stages"]["New"]


def test_board_move_to_another_workspaces_stage_is_a_400(client, auth, pipeline, ctx):
    auth.login("a1_staff")
    token = csrf_token(client, f"/leads/board/?workspace={pipeline['a1']}")
    response = _move(client, pipeline["ann"], pipeline["b1_stage"], token)
    assert response.status_code == 400 and "stage_id" in response.get_json()["errors"]
    assert _move(client, "x", pipeline["stages"]["Won"], token).status_code == 400


def test_another_tenant_gets_404_on_every_lead_route_and_nothing_changes(client, auth, pipeline, ctx):
    auth.login("b1_staff")
    token = csrf_token(client, "/leadview/list/")
    lead = pipeline["ann"]
    assert client.get(f"/leadview/show/{lead}").status_code == 404
    assert client.get(f"/leads/board/?workspace={pipeline['a1']}").status_code == 404
    posts = [(f"/leadview/show/{lead}/note", {"text": "hijack"}),
             (f"/leadview/show/{lead}/owner", {"owner_id": pipeline["b1_staff"]}),
             (f"/leadview/show/{lead}/stage", {"stage_id": pipeline["stages"]["Won"]}),
             (f"/leadview/show/{lead}/values", {"name": "hijacked"}),
             ("/leads/board/move", {"lead_id": lead, "stage_id": pipeline["stages"]["Won"]})]
    for path, data in posts:
        assert client.post(path, data={"csrf_token": token, **data}).status_code == 404, path
    body = client.get(f"/leadview/list/?workspace={pipeline['a1']}").get_data(as_text=True)
    assert _names(body) == set()
    export = client.get(f"/leadview/export.csv?workspace={pipeline['a1']}").get_data(as_text=True)
    assert "Ann" not in export and "ann@" not in export
    db.session.expire_all()
    ann = db.session.get(Lead, lead)
    assert (ann.stage_id, ann.owner_id) == (pipeline["stages"]["New"], None) and ann.name.startswith("Ann")
    assert not any(a.kind == ActivityKind.note for a in ann.activities)
    denials = db.session.scalars(select(AuditEntry).where(AuditEntry.action == "tenant.denied",
                                                          AuditEntry.target_type == "Lead")).all()
    assert denials


def test_operator_has_no_leads_admin(client, auth, pipeline):
    auth.login("operator")
    for url in ("/leadview/list/", f"/leadview/show/{pipeline['ann']}", "/leadview/export.csv", "/leads/board/"):
        response = client.get(url)
        assert response.status_code in (302, 403, 404), url
        assert "ann@example.com" not in response.get_data(as_text=True)


def _rows(response):
    return list(csv.reader(io.StringIO(response.get_data(as_text=True))))


def test_export_holds_the_filtered_list_only_with_formulas_escaped(client, auth, pipeline, ctx):
    lead = db.session.get(Lead, pipeline["bob"])
    lead.name = '=HYPERLINK("http://evil.example","x")'
    db.session.commit()
    auth.login("a1_staff")
    response = client.get(f"/leadview/export.csv?stage={pipeline['stages']['Contacted']}")
    assert response.status_code == 200 and response.mimetype == "text/csv"
    assert "attachment" in response.headers["Content-Disposition"]
    header, *rows = _rows(response)
    assert "budget" in header and "email" in header
    assert [r[header.index("email")] for r in rows] == ["bob@example.com"]
    assert rows[0][header.index("name")] == "'=HYPERLINK(\"http://evil.example\",\"x\")"
    everything = _rows(client.get("/leadview/export.csv"))
    assert len(everything) == 4
    phone = [r for r in everything[1:] if r[header.index("phone")]][0][header.index("phone")]
    assert phone == "'+442071838750"
    assert db.session.scalars(select(AuditEntry).where(AuditEntry.action == "lead.export")).first() is not None


def test_stage_rows_of_stages_are_per_workspace(pipeline, ctx):
    # The board's columns and the stage filter depend on each workspace owning its stages.
    owners = set(db.session.scalars(select(PipelineStage.workspace_id)))
    assert {pipeline["a1"], pipeline["a2"], pipeline["b1"]} <= owners


def test_the_demo_seeds_fields_rules_stages_and_leads_once(ctx, monkeypatch):
    from asthron.models.leads import ScoringRule, StageRule
    from asthron.models.tenancy import Workspace
    from asthron.services import demo, demo_leads

    monkeypatch.setenv("ASTHRON_DEMO_PASSWORD", "demo password long enough")
    demo.seed()
    demo.seed()
    for workspace_id in db.session.scalars(select(Workspace.id)):
        keys = set(db.session.scalars(select(LeadField.key).where(LeadField.workspace_id == workspace_id)))
        assert keys == {"name", "email", "phone", "budget", "team_size"}
        found = db.session.scalars(select(Lead).where(Lead.workspace_id == workspace_id)).all()
        assert len(found) == demo_leads.LEADS_PER_WORKSPACE  # not twice as many
        assert len({lead.stage.name for lead in found}) >= 4  # spread over the board
        assert {lead.score for lead in found} != {0}
        assert db.session.scalars(select(ScoringRule).where(ScoringRule.workspace_id == workspace_id)).all()
        [rule] = db.session.scalars(select(StageRule).where(StageRule.workspace_id == workspace_id)).all()
        assert rule.field_key == "score" and rule.stage.name == "Qualified"
        qualified = [lead for lead in found if lead.score >= 50]
        assert qualified and all(lead.stage.name in ("Qualified", "Won", "Lost") for lead in qualified)
