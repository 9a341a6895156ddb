"""Domain events reach plugins once the transaction that caused them commits, and never after a rollback."""
from asthron.extensions import db
from asthron.hookspecs import hookimpl
from asthron.providers.events import LeadCreated
from asthron.services import events
from tests.plugin_fixtures import EventRecorder


def test_an_event_waits_for_the_commit(ctx, tenants, register_plugin):
    recorder = register_plugin(EventRecorder(), "recorder")
    events.emit(LeadCreated(workspace_id=tenants["a1"], lead_id=7))
    assert recorder.seen == []
    db.session.commit()
    assert [(e.name, e.lead_id) for e in recorder.seen] == [("lead.created", 7)]


def test_a_rolled_back_event_is_never_delivered(ctx, tenants, register_plugin):
    from asthron.models.leads import Lead, LeadSource

    recorder = register_plugin(EventRecorder(), "recorder")
    db.session.add(Lead(workspace_id=tenants["a1"], source=LeadSource.api, email="x@example.com"))
    db.session.flush()
    events.emit(LeadCreated(workspace_id=tenants["a1"], lead_id=8))
    db.session.rollback()
    db.session.commit()
    assert recorder.seen == []


def test_a_failing_plugin_does_not_stop_the_others(ctx, tenants, register_plugin):
    class Broken:
        @hookimpl
        def track_event(self, event):
            raise RuntimeError("boom")

    register_plugin(Broken(), "broken")
    recorder = register_plugin(EventRecorder(), "recorder")
    events.emit(LeadCreated(workspace_id=tenants["a1"], lead_id=9))
    db.session.commit()
    assert [e.lead_id for e in recorder.seen] == [9]


def test_a_released_savepoint_is_not_the_commit(ctx, tenants, register_plugin):
    recorder = register_plugin(EventRecorder(), "recorder")
    with db.session.begin_nested():
        events.emit(LeadCreated(workspace_id=tenants["a1"], lead_id=10))
    assert recorder.seen == []
    db.session.commit()
    assert [e.lead_id for e in recorder.seen] == [10]
