"""Tenant isolation: every registered admin view and API route, walked as a user of another agency."""
import re

import pytest
from sqlalchemy import select

from asthron.extensions import db
from asthron.models.audit import AuditEntry
from asthron.models.tenancy import Membership, Workspace
from asthron.tenancy import Scope, tenant_models, unrestricted
from tests.conftest import csrf_token

MARKER = "Zq7Secret"  # appears in tenant A's rows only
SKIP_ENDPOINTS = {"static", "appbuilder.static", "AuthDBView.login", "AuthDBView.logout"}
OUTSIDERS = ["b_admin", "b1_staff"]


@pytest.fixture
def marked(tenants, app):
    """Give tenant A's rows names that must never appear to tenant B."""
    with app.app_context():
        for ws_id in (tenants["a1"], tenants["a2"]):
            ws = db.session.get(Workspace, ws_id)
            ws.name = f"{MARKER} {ws.name}"
            ws.allowed_origins = [f"https://{MARKER.lower()}.example"]
        _marked_conversation(tenants["a1"])
        _marked_calendar(tenants["a1"])
        _marked_lead(tenants["a1"])
        db.session.commit()
    return tenants


def _marked_conversation(workspace_id):
    """A waiting conversation with a note and a canned reply in A1, so inbox pages have A's rows to hide."""
    from asthron.models.chat import Conversation, ConversationOwner
    from asthron.models.inbox import CannedReply
    from asthron.services import conversations

    conversation = Conversation(workspace_id=workspace_id, token_hash="0" * 64, owner=ConversationOwner.waiting,
                                needs_human=True, flag_reason=f"{MARKER} reason")
    db.session.add(conversation)
    db.session.flush()
    conversations.add_message(conversation, "visitor", f"{MARKER} visitor text")
    conversations.add_message(conversation, "note", f"{MARKER} note")
    db.session.add(CannedReply(workspace_id=workspace_id, title=f"{MARKER} canned", body=f"{MARKER} body"))


def _marked_calendar(workspace_id):
    """A resource with a private feed and a booking whose calendar sync failed, in A1 (calendar pages)."""
    from datetime import UTC, datetime, timedelta

    from asthron.models.booking import Booking, Resource, Service

    resource = Resource(workspace_id=workspace_id, name=f"{MARKER} Ada", feed_token_hash="f" * 64,
                        busy_sync_error=f"{MARKER} calendar error")
    service = Service(workspace_id=workspace_id, name=f"{MARKER} service")
    db.session.add_all([resource, service])
    db.session.flush()
    start = datetime.now(UTC) + timedelta(days=2)
    db.session.add(Booking(workspace_id=workspace_id, service_id=service.id, resource_id=resource.id,
                           start_at=start, end_at=start + timedelta(hours=1), blocked_start=start,
                           blocked_end=start + timedelta(hours=1), name=f"{MARKER} visitor",
                           email="marker@example.com", sync_status="failed", sync_error=f"{MARKER} sync error"))


def _marked_lead(workspace_id):
    """A lead with a note in A1, so the leads list, lead page, board and export have A's rows to hide."""
    from asthron.services import leads

    lead = leads.capture(workspace_id, source="api", values={"name": f"{MARKER} lead", "email": "zq7@example.com"})
    leads.add_note(lead, f"{MARKER} lead note", actor_id=None)


def _scope_of_a(t):
    return Scope(user_id=t["a_admin"], agency_ids=frozenset({t["a"]}), admin_agency_ids=frozenset({t["a"]}),
                 workspace_ids=frozenset({t["a1"], t["a2"]}), data_workspace_ids=frozenset({t["a1"], t["a2"]}))


def _scope_of_b(t):
    return Scope(user_id=t["b_admin"], agency_ids=frozenset({t["b"]}), admin_agency_ids=frozenset({t["b"]}),
                 workspace_ids=frozenset({t["b1"]}), data_workspace_ids=frozenset({t["b1"]}))


def _foreign_pk(model, t):
    """Return the pk of a row tenant A sees and tenant B does not, or None."""
    with unrestricted():
        seen_by_a = set(db.session.scalars(select(model.id).where(model.tenant_clause(_scope_of_a(t)))))
        seen_by_b = set(db.session.scalars(select(model.id).where(model.tenant_clause(_scope_of_b(t)))))
    return min(seen_by_a - seen_by_b, default=None)


def _routes(app):
    """Yield (rule, view instance or None) for every GET-able route but static files and sign-in."""
    views = {type(v).__name__: v for v in app.appbuilder.baseviews}
    for rule in app.url_map.iter_rules():
        if rule.endpoint in SKIP_ENDPOINTS or "GET" not in rule.methods:
            continue
        yield rule, views.get(rule.endpoint.split(".")[0])


def _url_for(rule, view, t):
    model = getattr(getattr(view, "datamodel", None), "obj", None)
    values = {}
    for arg in rule.arguments:
        if arg == "pk" and model is not None and hasattr(model, "tenant_clause"):
            pk = _foreign_pk(model, t)
            if pk is None:
                return None
            values[arg] = pk
        else:
            values[arg] = "1"
    return re.sub(r"<(?:[^:>]+:)?([^>]+)>", lambda m: str(values[m.group(1)]), rule.rule)


def test_every_route_hides_other_tenants_rows(app, client, auth, marked, ctx):
    checked = 0
    for outsider in OUTSIDERS:
        auth.login(outsider)
        for rule, view in _routes(app):
            url = _url_for(rule, view, marked)
            if url is None:
                continue
            response = client.get(url)
            body = response.get_data(as_text=True)
            assert MARKER not in body, f"{outsider} saw tenant A data at {url}"
            assert response.status_code in (200, 302, 401, 403, 404, 405), (url, response.status_code)
            checked += 1
        auth.logout()
    assert checked > 20


def test_show_edit_and_delete_of_a_foreign_row_answer_404(app, client, auth, marked, ctx):
    auth.login("b_admin")
    for view_name in ("workspaceview", "membershipview", "auditlogview"):
        model = {"workspaceview": Workspace, "membershipview": Membership, "auditlogview": AuditEntry}[view_name]
        pk = _foreign_pk(model, marked)
        assert pk is not None
        assert client.get(f"/{view_name}/show/{pk}").status_code == 404
    pk = marked["a1"]
    assert client.get(f"/workspaceview/edit/{pk}").status_code == 404
    token = csrf_token(client, "/workspaceview/list/")
    response = client.post(f"/workspaceview/edit/{pk}", data={"csrf_token": token, "name": "hijacked",
                                                              "slug": "x", "status": "closed", "time_zone": "UTC"})
    assert response.status_code == 404
    assert client.post(f"/workspaceview/delete/{pk}", data={"csrf_token": token}).status_code == 404
    db.session.expire_all()
    ws = db.session.get(Workspace, pk)
    assert ws.name.startswith(MARKER) and ws.status.value == "active"


def test_foreign_workspace_lists_are_empty_for_each_outsider(app, client, auth, marked):
    for outsider in OUTSIDERS:
        auth.login(outsider)
        body = client.get("/workspaceview/list/").get_data(as_text=True)
        assert "B One" in body and MARKER not in body
        auth.logout()


def test_cross_tenant_attempt_is_audited(app, client, auth, marked, ctx):
    auth.login("b1_staff")
    client.get(f"/workspaceview/show/{marked['a1']}")
    [denial] = db.session.scalars(select(AuditEntry).where(AuditEntry.action == "tenant.denied")).all()
    assert denial.actor == "b1_staff"
    assert denial.target_type == "Workspace" and denial.target_id == str(marked["a1"])
    assert denial.workspace_id is None or denial.workspace_id == marked["a1"]


def test_query_guard_filters_orm_queries_outside_views(app, marked):
    from asthron.tenancy import scoped

    with app.app_context(), scoped(_scope_of_b(marked)):
        names = db.session.scalars(select(Workspace.name)).all()
        assert names == ["B One"]
        assert db.session.get(Workspace, marked["a1"]) is None


def test_query_guard_refuses_writes_into_another_tenant(app, marked):
    from asthron.models.base import Model
    from asthron.tenancy import TenantViolation, scoped

    owned = [m for m in tenant_models() if hasattr(m, "workspace_id") and m not in (Membership, AuditEntry)
             and issubclass(m, Model)]
    with app.app_context(), scoped(_scope_of_b(marked)):
        for model in owned:
            row = model(workspace_id=marked["a1"])
            db.session.add(row)
            with pytest.raises(TenantViolation):
                db.session.flush()
            db.session.rollback()


def test_agency_admin_cannot_create_a_workspace_in_another_agency(app, client, auth, marked, ctx):
    auth.login("b_admin")
    token = csrf_token(client, "/workspaceview/add")
    client.post("/workspaceview/add", data={"csrf_token": token, "agency": str(marked["a"]), "name": "Sneaky",
                                            "slug": "sneaky", "time_zone": "UTC"})
    with unrestricted():
        assert db.session.scalar(select(Workspace).where(Workspace.name == "Sneaky")) is None


def test_equal_scopes_share_their_criteria_and_different_ones_do_not(monkeypatch):
    """Widget and admin requests build a new Scope each time; the guard's criteria are kept per scope value."""
    from asthron import tenancy

    monkeypatch.setattr(tenancy, "_criteria", {})
    one = Scope(agency_ids=frozenset({1}), workspace_ids=frozenset({2}), data_workspace_ids=frozenset({2}))
    same = Scope(agency_ids=frozenset({1}), workspace_ids=frozenset({2}), data_workspace_ids=frozenset({2}))
    other = Scope(agency_ids=frozenset({1}), workspace_ids=frozenset({3}), data_workspace_ids=frozenset({3}))
    assert one.loader_criteria() is same.loader_criteria()
    assert other.loader_criteria() is not one.loader_criteria()
    assert len(one.loader_criteria()) == len(tenant_models())
    monkeypatch.setattr(tenancy, "MAX_CACHED_SCOPES", 2)
    Scope(user_id=7).loader_criteria()
    assert len(tenancy._criteria) == 2  # the oldest went
