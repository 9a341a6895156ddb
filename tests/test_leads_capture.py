"""Capturing leads: one lead per person per workspace, duplicates merged with both histories, events after commit."""
import pytest
from sqlalchemy import func, select

from asthron.extensions import db
from asthron.models.leads import ActivityKind, Lead, LeadActivity, LeadSource
from asthron.models.notifications import Notification
from asthron.services import conversations, leads


def conversation(workspace_id):
    from asthron.models.tenancy import Workspace

    conv, _token = conversations.start_conversation(db.session.get(Workspace, workspace_id))
    return conv


def kinds(lead):
    return [a.kind for a in db.session.scalars(select(LeadActivity).where(LeadActivity.lead_id == lead.id)
                                               .order_by(LeadActivity.id))]


def count_leads(workspace_id):
    return db.session.scalar(select(func.count(Lead.id)).where(Lead.workspace_id == workspace_id))


def test_a_capture_creates_a_lead_in_the_first_stage_with_a_timeline(ctx, tenants):
    conv = conversation(tenants["a1"])
    lead = leads.capture(tenants["a1"], source="widget", values={"name": "Ada", "email": "ADA@example.com"},
                         conversation_id=conv.id, consent_version="3", consented_at=conv.created_at)
    db.session.commit()
    assert (lead.email, lead.name, lead.source, lead.conversation_id) == ("ada@example.com", "Ada", LeadSource.widget,
                                                                         conv.id)
    assert lead.stage.name == "New" and lead.score == 0 and lead.consent_version == "3"
    assert kinds(lead) == [ActivityKind.created]
    assert leads.lead_for_conversation(conv) == lead


def test_invalid_values_write_nothing(ctx, tenants):
    with pytest.raises(leads.LeadValidationError) as caught:
        leads.capture(tenants["a1"], source="widget", values={"email": "nope"})
    assert caught.value.errors == {"email": "Enter an email address like name@example.com."}
    assert count_leads(tenants["a1"]) == 0


def test_a_lead_needs_an_email_or_a_phone(ctx, tenants):
    with pytest.raises(leads.LeadValidationError) as caught:
        leads.capture(tenants["a1"], source="ai", values={"name": "Ada"}, require_all=False)
    assert set(caught.value.errors) == {"email", "phone"}


def test_the_same_email_updates_the_existing_lead(ctx, tenants, recorder):
    first = leads.capture(tenants["a1"], source="widget", values={"email": "ada@example.com", "name": "Ada"})
    db.session.commit()
    again = leads.capture(tenants["a1"], source="ai", values={"email": "Ada@Example.com", "name": "Ada L."})
    db.session.commit()
    assert again.id == first.id and again.name == "Ada L." and again.source == LeadSource.widget
    assert count_leads(tenants["a1"]) == 1
    assert kinds(again) == [ActivityKind.created, ActivityKind.updated]
    assert recorder.names() == ["lead.created", "lead.updated"]
    assert recorder.seen[1].fields == ("name",)


def test_the_same_email_in_another_workspace_is_another_lead(ctx, tenants):
    leads.capture(tenants["a1"], source="widget", values={"email": "ada@example.com"})
    leads.capture(tenants["a2"], source="widget", values={"email": "ada@example.com"})
    db.session.commit()
    assert count_leads(tenants["a1"]) == count_leads(tenants["a2"]) == 1


def test_a_phone_in_another_format_matches_the_same_lead(ctx, tenants):
    first = leads.capture(tenants["a1"], source="widget", values={"email": "bo@example.com",
                                                                   "phone": "+44 20 7946 0958"})
    again = leads.capture(tenants["a1"], source="ai", values={"phone": "+44 (0)20-7946-0958"}, require_all=False)
    assert again.id == first.id and count_leads(tenants["a1"]) == 1


def test_email_and_phone_of_two_leads_merge_them_keeping_both_histories(ctx, tenants, recorder):
    conv_a, conv_b = conversation(tenants["a1"]), conversation(tenants["a1"])
    a = leads.capture(tenants["a1"], source="widget", values={"email": "cy@example.com", "name": "Cy"},
                      conversation_id=conv_a.id)
    b = leads.capture(tenants["a1"], source="ai", values={"phone": "+14155552671"}, conversation_id=conv_b.id,
                      require_all=False, note="Wants a demo on Friday")
    a_id, b_id = a.id, b.id
    db.session.commit()
    merged = leads.capture(tenants["a1"], source="api", values={"email": "cy@example.com", "phone": "+14155552671",
                                                                 "name": "Cy Young"})
    db.session.commit()
    assert merged.id == a_id and db.session.get(Lead, b_id) is None
    assert (merged.email, merged.phone, merged.name) == ("cy@example.com", "+14155552671", "Cy Young")
    timeline = db.session.scalars(select(LeadActivity).where(LeadActivity.lead_id == a_id)
                                  .order_by(LeadActivity.id)).all()
    assert [t.kind for t in timeline] == [ActivityKind.created, ActivityKind.created, ActivityKind.note,
                                          ActivityKind.merged, ActivityKind.updated]
    assert timeline[3].summary == f"Merged lead {b_id} (+14155552671) into this lead"
    assert timeline[3].meta["conversation_id"] == conv_b.id
    assert leads.lead_for_conversation(conv_b).id == a_id  # the merged lead's conversation still finds the person
    assert recorder.seen[-1].name == "lead.updated" and recorder.seen[-1].merged_lead_ids == (b_id,)


def test_merge_combines_values_and_keeps_the_further_stage(ctx, tenants):
    from asthron.services import lead_pipeline

    a = leads.capture(tenants["a1"], source="widget", values={"email": "di@example.com"})
    b = leads.capture(tenants["a1"], source="widget", values={"email": "di2@example.com", "phone": "+14155552671"})
    stages = lead_pipeline.stages(tenants["a1"])
    leads.set_stage(b, stages[2].id, actor_id=tenants["a1_staff"])
    b.tags, a.tags = ["vip"], ["web"]
    db.session.commit()
    merged = leads.capture(tenants["a1"], source="api", values={"email": "di@example.com", "phone": "+14155552671"})
    db.session.commit()
    assert merged.id == a.id and merged.stage_id == stages[2].id and merged.tags == ["web", "vip"]
    assert merged.email == "di@example.com"


def test_a_concurrent_duplicate_is_retried_as_an_update(ctx, tenants, monkeypatch):
    """The other transaction's row appears between our lookup and our insert: the unique index stops the insert."""
    real = leads._matches
    calls = []

    def racing(workspace_id, given, conversation_id):
        calls.append(1)
        if len(calls) == 1:  # what we saw before the other transaction committed
            return []
        return real(workspace_id, given, conversation_id)

    other = Lead(workspace_id=tenants["a1"], source=LeadSource.api, email="eve@example.com", values={}, tags=[])
    db.session.add(other)
    db.session.commit()
    monkeypatch.setattr(leads, "_matches", racing)
    lead = leads.capture(tenants["a1"], source="widget", values={"email": "eve@example.com", "name": "Eve"})
    db.session.commit()
    assert len(calls) == 2 and lead.id == other.id and lead.name == "Eve"
    assert count_leads(tenants["a1"]) == 1


def test_a_second_conversation_moves_the_link_and_keeps_the_first(ctx, tenants):
    first, second = conversation(tenants["a1"]), conversation(tenants["a1"])
    lead = leads.capture(tenants["a1"], source="widget", values={"email": "fay@example.com"}, conversation_id=first.id)
    leads.capture(tenants["a1"], source="widget", values={"email": "fay@example.com"}, conversation_id=second.id)
    db.session.commit()
    assert lead.conversation_id == second.id
    assert leads.lead_for_conversation(first).id == lead.id
    assert leads.lead_for_conversation(second.id).id == lead.id


def test_a_conversation_without_a_lead_has_none(ctx, tenants):
    assert leads.lead_for_conversation(conversation(tenants["a1"])) is None


def test_a_new_lead_notifies_the_staff_who_want_it(ctx, tenants):
    lead = leads.capture(tenants["a1"], source="widget", values={"email": "gus@example.com"})
    db.session.commit()
    rows = db.session.scalars(select(Notification).where(Notification.workspace_id == tenants["a1"])).all()
    assert rows and all(r.template == "new_lead" and r.context == {"lead_id": lead.id} for r in rows)


def test_events_carry_ids_not_personal_data(ctx, tenants, recorder):
    conv = conversation(tenants["a1"])
    lead = leads.capture(tenants["a1"], source="widget", values={"email": "hal@example.com"}, conversation_id=conv.id)
    db.session.commit()
    assert recorder.seen[0].to_dict() == {"name": "lead.created", "workspace_id": tenants["a1"], "lead_id": lead.id,
                                          "conversation_id": conv.id,
                                          "occurred_at": recorder.seen[0].occurred_at.isoformat()}
    assert "hal@example.com" not in repr(recorder.seen)


def test_a_rolled_back_capture_leaves_nothing_and_sends_nothing(ctx, tenants, recorder):
    leads.capture(tenants["a1"], source="widget", values={"email": "ida@example.com"})
    db.session.rollback()
    db.session.commit()
    assert count_leads(tenants["a1"]) == 0 and recorder.seen == []


def test_update_validates_and_merges_the_lead_a_new_email_names(ctx, tenants):
    a = leads.capture(tenants["a1"], source="widget", values={"email": "jo@example.com"})
    b = leads.capture(tenants["a1"], source="widget", values={"email": "jo.work@example.com", "name": "Jo"})
    db.session.commit()
    with pytest.raises(leads.LeadValidationError):
        leads.update(a, {"phone": "123"})
    leads.update(a, {"email": "jo.work@example.com"}, actor_id=tenants["a1_staff"])
    db.session.commit()
    assert a.email == "jo.work@example.com" and a.name == "Jo" and db.session.get(Lead, b.id) is None


def test_notes_are_checked_and_kept_in_the_timeline(ctx, tenants):
    lead = leads.capture(tenants["a1"], source="widget", values={"email": "kai@example.com"})
    with pytest.raises(leads.LeadValidationError):
        leads.add_note(lead, "  ", actor_id=tenants["a1_staff"])
    note = leads.add_note(lead, "Called back, interested.", actor_id=tenants["a1_staff"])
    db.session.commit()
    assert note.kind == ActivityKind.note and note.actor_id == tenants["a1_staff"]


def test_records_activity_for_other_capabilities(ctx, tenants):
    lead = leads.capture(tenants["a1"], source="widget", values={"email": "lu@example.com"})
    entry = leads.record_activity(lead, ActivityKind.booking, "Booked a haircut", meta={"booking_id": 5})
    db.session.commit()
    assert (entry.lead_id, entry.workspace_id, entry.meta) == (lead.id, tenants["a1"], {"booking_id": 5})


def test_capture_runs_inside_a_workspace_scope(ctx, tenants):
    """A widget request is scoped to its workspace: capture in it sees no other workspace's leads."""
    from asthron import tenancy

    leads.capture(tenants["a2"], source="widget", values={"email": "mo@example.com"})
    db.session.commit()
    scope = tenancy_service_scope(tenants["a1"])
    with tenancy.scoped(scope):
        lead = leads.capture(tenants["a1"], source="widget", values={"email": "mo@example.com"})
        db.session.commit()
    assert lead.workspace_id == tenants["a1"] and count_leads(tenants["a2"]) == 1


def tenancy_service_scope(workspace_id):
    from asthron import tenancy

    return tenancy.Scope(workspace_ids=frozenset({workspace_id}), data_workspace_ids=frozenset({workspace_id}))


def test_a_corrected_email_in_the_same_conversation_updates_its_lead(ctx, tenants):
    conv = conversation(tenants["a1"])
    lead = leads.capture(tenants["a1"], source="ai", values={"email": "nia@exampel.com"}, conversation_id=conv.id,
                         require_all=False)
    again = leads.capture(tenants["a1"], source="ai", values={"email": "nia@example.com"}, conversation_id=conv.id,
                          require_all=False)
    assert again.id == lead.id and again.email == "nia@example.com" and count_leads(tenants["a1"]) == 1


def test_naming_another_known_persons_email_does_not_merge_two_people(ctx, tenants):
    other = leads.capture(tenants["a1"], source="widget", values={"email": "boss@example.com"})
    conv = conversation(tenants["a1"])
    mine = leads.capture(tenants["a1"], source="ai", values={"email": "oli@example.com"}, conversation_id=conv.id,
                         require_all=False)
    named = leads.capture(tenants["a1"], source="ai", values={"email": "boss@example.com"}, conversation_id=conv.id,
                          require_all=False)
    db.session.commit()
    assert named.id == other.id and db.session.get(Lead, mine.id).email == "oli@example.com"
    assert count_leads(tenants["a1"]) == 2


def test_an_update_cannot_remove_the_last_contact_detail(ctx, tenants):
    lead = leads.capture(tenants["a1"], source="widget", values={"email": "pat@example.com"})
    db.session.commit()
    with pytest.raises(leads.LeadValidationError):
        leads.update(lead, {"email": ""})
    db.session.rollback()
    assert db.session.get(Lead, lead.id).email == "pat@example.com"
