"""Scoring rules add up to a lead's score; stage rules move leads forward only; both re-apply when rules change."""
import pytest
from sqlalchemy import select

from asthron.extensions import db
from asthron.models.jobs import OutboxEntry
from asthron.models.leads import ActivityKind, FieldKind, Lead, LeadActivity, LeadField, ScoringRule, StageRule
from asthron.services import lead_pipeline, lead_rules, leads
from tests.plugin_fixtures import EventRecorder


@pytest.fixture
def ws(ctx, tenants):
    """Workspace A1 with budget (number), plan (select), needs (multiselect) and start (date) fields, default stages."""
    workspace = tenants["a1"]
    for position, (key, kind, options) in enumerate([
            ("budget", FieldKind.number, []), ("plan", FieldKind.select, ["Basic", "Pro"]),
            ("needs", FieldKind.multiselect, ["Chat", "Booking"]), ("start", FieldKind.date, []),
            ("company", FieldKind.text, [])], start=10):
        db.session.add(LeadField(workspace_id=workspace, key=key, label=key, kind=kind, options=options,
                                 position=position))
    lead_pipeline.ensure_default_stages(workspace)
    db.session.commit()
    return workspace


def stage(ws, name):
    return next(s for s in lead_pipeline.stages(ws) if s.name == name)


def rule(ws, key, operator, value, points):
    db.session.add(ScoringRule(workspace_id=ws, field_key=key, operator=operator, value=value, points=points))


def stage_rule(ws, key, operator, value, stage_name):
    db.session.add(StageRule(workspace_id=ws, field_key=key, operator=operator, value=value,
                             stage_id=stage(ws, stage_name).id))


@pytest.mark.parametrize(("operator", "actual", "expected", "result"), [
    ("equals", "Pro", "pro", True), ("equals", "Basic", "Pro", False), ("equals", 50, "50", True),
    ("equals", True, "true", True), ("equals", ["Chat", "Booking"], "booking", True),
    ("contains", "Acme Dental Ltd", "dental", True), ("contains", ["Chat"], "book", False),
    ("gt", 5000, "1000", True), ("gt", 500, "1000", False), ("gt", "abc", "1", False),
    ("lt", "2025-01-01", "2025-06-01", True), ("lt", None, "5", False),
    ("is_set", "x", None, True), ("is_set", "", None, False), ("is_set", [], None, False),
    ("is_set", False, None, False), ("is_set", 0, None, True),
])
def test_conditions(operator, actual, expected, result):
    assert lead_rules.holds(operator, actual, expected) is result


def test_the_score_is_the_sum_of_the_rules_that_hold(ws):
    rule(ws, "budget", "gt", "1000", 30)
    rule(ws, "plan", "equals", "Pro", 20)
    rule(ws, "phone", "is_set", None, 10)
    rule(ws, "company", "contains", "spam", -50)
    lead = leads.capture(ws, source="widget", values={"email": "a@example.com", "budget": 5000, "plan": "Pro"})
    db.session.commit()
    assert lead.score == 50


def test_the_score_is_recomputed_when_the_data_changes(ws):
    rule(ws, "budget", "gt", "1000", 30)
    db.session.commit()
    lead = leads.capture(ws, source="widget", values={"email": "b@example.com", "budget": 100})
    assert lead.score == 0
    leads.capture(ws, source="ai", values={"email": "b@example.com", "budget": 2000}, require_all=False)
    assert lead.score == 30
    leads.update(lead, {"budget": None})
    db.session.commit()
    assert lead.score == 0


def test_the_scores_are_recomputed_when_the_rules_change(ws, register_plugin):
    lead = leads.capture(ws, source="widget", values={"email": "c@example.com", "plan": "Pro"})
    db.session.commit()
    recorder = register_plugin(EventRecorder(), "recorder")
    rule(ws, "plan", "equals", "Pro", 40)
    db.session.commit()
    db.session.refresh(lead)
    assert lead.score == 40
    assert [(e.name, e.fields) for e in recorder.seen] == [("lead.updated", ("score",))]
    db.session.delete(db.session.scalars(select(ScoringRule)).one())
    db.session.commit()
    db.session.refresh(lead)
    assert lead.score == 0


def test_a_big_workspace_is_rescored_by_a_maintenance_job(ws, monkeypatch):
    monkeypatch.setattr(lead_pipeline, "INLINE_RESCORE_LIMIT", 1)
    for n in range(3):
        leads.capture(ws, source="widget", values={"email": f"d{n}@example.com", "budget": 5000})
    db.session.commit()
    rule(ws, "budget", "gt", "10", 5)
    db.session.commit()  # the inline job runner (tests' embedded mode) runs the job right after this commit
    entry = db.session.scalars(select(OutboxEntry).where(OutboxEntry.job == "maintenance.rescore_leads")).one()
    assert entry.payload == {"workspace_id": ws}
    db.session.expire_all()
    assert [lead.score for lead in db.session.scalars(select(Lead).where(Lead.workspace_id == ws))] == [5, 5, 5]


def test_a_stage_rule_moves_the_lead_forward_and_emits_qualified(ws, register_plugin):
    recorder = register_plugin(EventRecorder(), "recorder")
    rule(ws, "budget", "gt", "1000", 50)
    stage_rule(ws, "score", "gt", "49", "Qualified")
    db.session.commit()
    lead = leads.capture(ws, source="widget", values={"email": "e@example.com", "budget": 5000})
    db.session.commit()
    assert lead.stage.name == "Qualified"
    assert [e.name for e in recorder.seen] == ["lead.created", "lead.qualified"]
    qualified = recorder.seen[1]
    assert (qualified.lead_id, qualified.stage_id, qualified.score) == (lead.id, lead.stage_id, 50)
    moved = db.session.scalars(select(LeadActivity).where(LeadActivity.kind == ActivityKind.stage)).one()
    assert moved.summary == "Moved from New to Qualified (by a stage rule)" and moved.actor_id is None


def test_the_furthest_matching_stage_wins(ws):
    stage_rule(ws, "plan", "equals", "Pro", "Contacted")
    stage_rule(ws, "budget", "gt", "100", "Won")
    db.session.commit()
    lead = leads.capture(ws, source="widget", values={"email": "f@example.com", "plan": "Pro", "budget": 500})
    assert lead.stage.name == "Won"


def test_stage_rules_never_move_a_lead_backwards(ws):
    stage_rule(ws, "plan", "equals", "Basic", "Contacted")
    db.session.commit()
    lead = leads.capture(ws, source="widget", values={"email": "g@example.com"})
    leads.set_stage(lead, stage(ws, "Won").id, actor_id=None)
    leads.update(lead, {"plan": "Basic"})
    db.session.commit()
    assert lead.stage.name == "Won"


def test_a_persons_backward_move_is_not_undone_by_the_rules(ws, tenants):
    stage_rule(ws, "budget", "gt", "1000", "Qualified")
    db.session.commit()
    lead = leads.capture(ws, source="widget", values={"email": "h@example.com", "budget": 5000})
    assert lead.stage.name == "Qualified"
    leads.set_stage(lead, stage(ws, "New").id, actor_id=tenants["a1_staff"])
    leads.update(lead, {"budget": 6000})
    db.session.commit()
    assert lead.stage.name == "New"
    stage_rule(ws, "budget", "gt", "1000", "Won")  # a stage beyond the one the person left still applies
    db.session.commit()
    db.session.refresh(lead)
    assert lead.stage.name == "Won"


def test_a_manual_move_into_the_qualified_stage_emits_qualified_once(ws, tenants, register_plugin):
    lead = leads.capture(ws, source="widget", values={"email": "i@example.com"})
    db.session.commit()
    recorder = register_plugin(EventRecorder(), "recorder")
    assert leads.set_stage(lead, stage(ws, "Qualified").id, actor_id=tenants["a1_staff"]) is True
    assert leads.set_stage(lead, stage(ws, "Qualified").id, actor_id=tenants["a1_staff"]) is False
    db.session.commit()
    assert [e.name for e in recorder.seen] == ["lead.updated", "lead.qualified"]
    assert recorder.seen[0].fields == ("stage",)


def test_a_stage_of_another_workspace_is_refused(ws, tenants):
    lead = leads.capture(ws, source="widget", values={"email": "j@example.com"})
    other = lead_pipeline.ensure_default_stages(tenants["b1"])[1]
    with pytest.raises(leads.LeadValidationError) as caught:
        leads.set_stage(lead, other.id, actor_id=tenants["a1_staff"])
    assert "stage" in caught.value.errors


def test_a_lead_reaching_the_handoff_threshold_hands_its_conversation_to_a_person(ws):
    from asthron.models.chat import Conversation, ConversationOwner
    from asthron.models.inbox import InboxSettings
    from asthron.models.tenancy import Workspace
    from asthron.services import conversations

    db.session.add(InboxSettings(workspace_id=ws, handoff_score_threshold=30))
    rule(ws, "budget", "gt", "1000", 30)
    conversation, _token = conversations.start_conversation(db.session.get(Workspace, ws))
    db.session.commit()
    leads.capture(ws, source="ai", values={"email": "k@example.com", "budget": 10}, conversation_id=conversation.id,
                  require_all=False)
    db.session.commit()
    assert db.session.get(Conversation, conversation.id).owner == ConversationOwner.ai
    leads.capture(ws, source="ai", values={"email": "k@example.com", "budget": 5000}, conversation_id=conversation.id,
                  require_all=False)
    db.session.commit()
    assert db.session.get(Conversation, conversation.id).owner == ConversationOwner.waiting
