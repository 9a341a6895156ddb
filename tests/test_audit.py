"""The audit log: what is recorded, and that any tampering is detected."""
import pytest
from sqlalchemy import select, text

from asthron import audit
from asthron.extensions import db
from asthron.models.audit import AuditEntry
from asthron.models.tenancy import Workspace
from asthron.services import tenancy as svc


def _entries(action=None):
    query = select(AuditEntry).order_by(AuditEntry.seq)
    if action:
        query = query.where(AuditEntry.action == action)
    return db.session.scalars(query).all()


def test_creating_a_workspace_is_audited_with_its_fields(ctx):
    agency = svc.create_agency("Acme")
    svc.create_workspace(agency=agency, name="Shop", origins=["https://shop.example"])
    db.session.commit()
    [entry] = _entries("workspace.create")
    assert entry.details["name"] == {"new": "Shop"}
    assert entry.workspace_id is not None and entry.agency_id == agency.id
    assert entry.actor == "system"


def test_update_records_a_field_diff(ctx):
    ws = svc.create_workspace(agency=svc.create_agency("Acme"), name="Shop")
    db.session.commit()
    ws.name = "Shop Two"
    db.session.commit()
    [entry] = _entries("workspace.update")
    assert entry.details["name"] == {"old": "Shop", "new": "Shop Two"}
    assert set(entry.details) <= {"name", "updated_at"}


def test_delete_records_the_deleted_row(ctx):
    ws = svc.create_workspace(agency=svc.create_agency("Acme"), name="Shop")
    db.session.commit()
    db.session.delete(ws)
    db.session.commit()
    [entry] = _entries("workspace.delete")
    assert entry.details["deleted"]["name"] == "Shop"


def test_secrets_are_redacted_in_details(ctx):
    entry = audit.record("test.secret", details={"api_key": "sk-live-123", "nested": {"password": "hunter2"},
                                                 "public_key": "pk_visible"})
    assert entry["details"] == {"api_key": "[redacted]", "nested": {"password": "[redacted]"},
                                "public_key": "pk_visible"}


def test_rolled_back_change_leaves_no_entry(ctx):
    svc.create_workspace(agency=svc.create_agency("Acme"), name="Shop")
    db.session.rollback()
    assert _entries() == []
    assert audit.verify(db.session) == 0


def test_verify_counts_an_intact_chain(ctx, runner):
    for i in range(5):
        audit.record("test.event", details={"i": i})
    assert audit.verify(db.session) == 5
    result = runner.invoke(args=["asthron", "audit", "verify"])
    assert result.exit_code == 0
    assert "ok: 5 entries" in result.output


def _tamper(sql, **params):
    """Change the table behind the writer's back (on PostgreSQL the trigger must be lifted first)."""
    with db.engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("ALTER TABLE audit_entry DISABLE TRIGGER audit_entry_no_change"))
        conn.execute(text(sql), params)
        if conn.dialect.name == "postgresql":
            conn.execute(text("ALTER TABLE audit_entry ENABLE TRIGGER audit_entry_no_change"))


def _chain_of(n):
    for i in range(n):
        audit.record("test.event", details={"i": i})
    db.session.remove()


def test_verify_detects_an_edited_entry(ctx, runner):
    _chain_of(4)
    _tamper("UPDATE audit_entry SET actor = 'mallory' WHERE seq = 2")
    result = runner.invoke(args=["asthron", "audit", "verify"])
    assert result.exit_code == 1
    assert "seq 2" in result.output and "altered" in result.output


def test_verify_detects_a_deleted_entry(ctx, runner):
    _chain_of(4)
    _tamper("DELETE FROM audit_entry WHERE seq = 3")
    result = runner.invoke(args=["asthron", "audit", "verify"])
    assert result.exit_code == 1
    assert "seq 3 is missing" in result.output


def test_verify_detects_a_deleted_last_entry(ctx, runner):
    _chain_of(4)
    _tamper("DELETE FROM audit_entry WHERE seq = 4")
    result = runner.invoke(args=["asthron", "audit", "verify"])
    assert result.exit_code == 1
    assert "deleted" in result.output


def test_verify_detects_reordered_entries(ctx, runner):
    _chain_of(4)
    # Swap the positions of entries 2 and 3 (each keeps its own hash).
    _tamper("UPDATE audit_entry SET seq = -2 WHERE seq = 2")
    _tamper("UPDATE audit_entry SET seq = 2 WHERE seq = 3")
    _tamper("UPDATE audit_entry SET seq = 3 WHERE seq = -2")
    result = runner.invoke(args=["asthron", "audit", "verify"])
    assert result.exit_code == 1
    assert "seq 2" in result.output


def test_postgresql_refuses_update_and_delete_of_entries(ctx):
    if db.engine.dialect.name != "postgresql":
        pytest.skip("the database-level refusal is a PostgreSQL trigger")
    audit.record("test.event")
    for statement in ("UPDATE audit_entry SET actor = 'x'", "DELETE FROM audit_entry"):
        with pytest.raises(Exception, match="append-only"):
            with db.engine.begin() as conn:
                conn.execute(text(statement))
    assert audit.verify(db.session) == 1


def test_concurrent_writers_keep_one_linear_chain(app):
    """Writers in several threads (own connections) never fork the chain."""
    import threading

    def write_many():
        with app.app_context():
            for i in range(10):
                audit.record("test.thread", details={"i": i})

    threads = [threading.Thread(target=write_many) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    with app.app_context():
        assert audit.verify(db.session) == 40


def test_login_success_and_failure_are_audited(client, auth, tenants, ctx):
    auth.login("a1_staff", "wrong password!!")
    auth.login("nobody-at-all", "wrong password!!")
    auth.login("a1_staff")
    failures = _entries("login.failure")
    assert [e.details["username"] for e in failures] == ["a1_staff", "nobody-at-all"]
    assert all("password" not in str(e.details) for e in failures)
    [success] = _entries("login.success")
    assert success.actor == "a1_staff" and success.ip == "127.0.0.1"


def test_workspace_edit_through_the_admin_is_attributed_to_the_user(client, auth, tenants, ctx):
    from tests.conftest import csrf_token

    auth.login("a1_admin")
    token = csrf_token(client, f"/workspaceview/edit/{tenants['a1']}")
    response = client.post(f"/workspaceview/edit/{tenants['a1']}", data={
        "csrf_token": token, "name": "A One Renamed", "slug": "a-one", "status": "active", "time_zone": "UTC"})
    assert response.status_code == 302
    assert db.session.get(Workspace, tenants["a1"]).name == "A One Renamed"
    [entry] = _entries("workspace.update")
    assert entry.actor == "a1_admin" and entry.workspace_id == tenants["a1"]
    assert entry.details["name"] == {"old": "A One", "new": "A One Renamed"}


def test_role_changes_of_an_account_are_audited_without_the_password(client, auth, tenants, ctx):
    from flask_appbuilder.security.sqla.models import Role as FabRole

    from tests.conftest import csrf_token

    auth.login("operator")
    client_role = db.session.scalar(select(FabRole).where(FabRole.name == "Client"))
    token = csrf_token(client, f"/users/edit/{tenants['b1_staff']}")
    response = client.post(f"/users/edit/{tenants['b1_staff']}", data={
        "csrf_token": token, "first_name": "Bea", "last_name": "Staff", "username": "b1_staff",
        "email": "b1_staff@example.com", "active": "y", "roles": [str(client_role.id)]})
    assert response.status_code == 302
    [entry] = [e for e in _entries("ab_user.update") if e.actor == "operator" and "roles" in e.details]
    assert entry.target_id == str(tenants["b1_staff"])
    assert entry.details["roles"] == {"added": ["Client"], "removed": ["Staff"]}
    assert "password" not in entry.details
    assert "login_count" not in str(_entries())


def test_visitor_messages_stay_out_of_the_append_only_log(ctx):
    from asthron.models.chat import Conversation
    from asthron.services import conversations

    ws = svc.create_workspace(agency=svc.create_agency("Acme"), name="Shop")
    conversation = Conversation(workspace_id=ws.id, token_hash="0" * 64)
    db.session.add(conversation)
    db.session.commit()
    conversations.add_message(conversation, "visitor", "my phone is +44 20 7946 0000")
    db.session.commit()
    assert _entries("message.create") == []
    assert _entries("conversation.update") == []
    assert "7946" not in str([e.details for e in _entries()])
    [created] = _entries("conversation.create")
    assert created.details["token_hash"] == "[redacted]"
