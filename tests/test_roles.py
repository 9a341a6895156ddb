"""Roles defined in code, what each may do, and that nobody edits their own role, tenant or status."""
from flask_appbuilder.security.sqla.models import Role as FabRole, User
from sqlalchemy import select

from asthron.extensions import db
from asthron.models.tenancy import Membership, Role, Workspace
from asthron.tenancy import unrestricted
from tests.conftest import csrf_token


def _post_form(client, path, data, token_path=None):
    data = dict(data, csrf_token=csrf_token(client, token_path or path))
    return client.post(path, data=data)


def test_sync_roles_creates_every_role_idempotently(runner, ctx):
    for _ in range(2):
        result = runner.invoke(args=["asthron", "sync-roles"])
        assert result.exit_code == 0, result.output
    names = set(db.session.scalars(select(FabRole.name)))
    assert {r.value for r in Role} <= names
    staff = db.session.scalar(select(FabRole).where(FabRole.name == "Staff"))
    granted = {(p.view_menu.name, p.permission.name) for p in staff.permissions}
    assert ("WorkspaceView", "can_list") in granted
    assert ("WorkspaceView", "can_edit") not in granted


def test_staff_cannot_edit_their_workspace(client, auth, tenants, ctx):
    auth.login("a1_staff")
    response = client.get(f"/workspaceview/edit/{tenants['a1']}")
    assert response.status_code in (302, 403)
    assert db.session.get(Workspace, tenants["a1"]).name == "A One"


def test_workspace_admin_edits_only_their_own_workspace(client, auth, tenants, ctx):
    auth.login("a1_admin")
    form = {"name": "A One Clinic", "slug": "a-one", "status": "active", "time_zone": "Europe/London"}
    assert _post_form(client, f"/workspaceview/edit/{tenants['a1']}", form).status_code == 302
    assert client.get(f"/workspaceview/edit/{tenants['a2']}").status_code == 404
    db.session.expire_all()
    assert db.session.get(Workspace, tenants["a1"]).name == "A One Clinic"


def test_client_is_read_only(client, auth, tenants, ctx):
    auth.login("a1_client")
    assert client.get(f"/workspaceview/show/{tenants['a1']}").status_code == 200
    response = _post_form(client, f"/workspaceview/edit/{tenants['a1']}",
                          {"name": "changed", "slug": "x", "status": "active", "time_zone": "UTC"},
                          token_path="/workspaceview/list/")
    assert response.status_code in (302, 403)
    assert db.session.get(Workspace, tenants["a1"]).name == "A One"


def test_agency_admin_creates_a_workspace_in_their_agency(client, auth, tenants, ctx):
    auth.login("a_admin")
    response = _post_form(client, "/workspaceview/add", {"agency": str(tenants["a"]), "name": "A Three",
                                                         "slug": "a-three", "time_zone": "UTC"})
    assert response.status_code == 302
    with unrestricted():
        ws = db.session.scalar(select(Workspace).where(Workspace.name == "A Three"))
    assert ws is not None and ws.agency_id == tenants["a"] and ws.public_key.startswith("pk_")


def test_agency_admin_adds_staff_who_can_sign_in_to_that_workspace_only(app, client, auth, tenants, ctx):
    auth.login("a_admin")
    response = _post_form(client, "/team/add/form", {
        "username": "newbie", "email": "newbie@example.com", "first_name": "New", "last_name": "Bie",
        "password": "a long enough passphrase", "workspace": str(tenants["a2"]), "role": "staff"})
    assert response.status_code == 302
    auth.logout()
    other = app.test_client()
    from tests.conftest import Auth

    assert Auth(other).login("newbie", "a long enough passphrase").status_code == 302
    body = other.get("/workspaceview/list/").get_data(as_text=True)
    assert "A Two" in body and "A One" not in body


def test_team_member_with_a_weak_password_is_refused(client, auth, tenants, ctx):
    auth.login("a_admin")
    _post_form(client, "/team/add/form", {
        "username": "weak", "email": "weak@example.com", "first_name": "W", "last_name": "K",
        "password": "short", "workspace": str(tenants["a2"]), "role": "staff"})
    assert db.session.scalar(select(User).where(User.username == "weak")) is None


def test_workspace_admin_cannot_add_to_a_workspace_they_do_not_run(client, auth, tenants, ctx):
    auth.login("a1_admin")
    _post_form(client, "/team/add/form", {
        "username": "sneak", "email": "sneak@example.com", "first_name": "S", "last_name": "N",
        "password": "a long enough passphrase", "workspace": str(tenants["a2"]), "role": "staff"})
    assert db.session.scalar(select(User).where(User.username == "sneak")) is None


def test_nobody_changes_their_own_membership_role(client, auth, tenants, ctx):
    auth.login("a1_admin")
    own = db.session.scalar(select(Membership).where(Membership.user_id == tenants["a1_admin"]))
    _post_form(client, f"/membershipview/edit/{own.id}", {"role": "agency_admin"})
    db.session.expire_all()
    assert db.session.get(Membership, own.id).role == Role.workspace_admin


def test_workspace_admin_cannot_grant_agency_admin(client, auth, tenants, ctx):
    auth.login("a1_admin")
    staff = db.session.scalar(select(Membership).where(Membership.user_id == tenants["a1_staff"]))
    _post_form(client, f"/membershipview/edit/{staff.id}", {"role": "agency_admin"})
    db.session.expire_all()
    assert db.session.get(Membership, staff.id).role == Role.staff


def test_workspace_admin_promotes_staff_and_roles_follow(client, auth, tenants, ctx):
    auth.login("a1_admin")
    staff = db.session.scalar(select(Membership).where(Membership.user_id == tenants["a1_staff"]))
    assert _post_form(client, f"/membershipview/edit/{staff.id}", {"role": "workspace_admin"}).status_code == 302
    db.session.expire_all()
    user = db.session.get(User, tenants["a1_staff"])
    assert [r.name for r in user.roles] == ["Workspace admin"]


def test_operator_cannot_change_their_own_roles_or_active_flag(client, auth, tenants, ctx):
    auth.login("operator")
    staff_role = db.session.scalar(select(FabRole).where(FabRole.name == "Staff"))
    me = tenants["operator"]
    _post_form(client, f"/users/edit/{me}", {"first_name": "Op", "last_name": "Erator", "username": "operator",
                                             "email": "operator@example.com", "roles": [str(staff_role.id)]})
    _post_form(client, f"/users/edit/{me}", {"first_name": "Op", "last_name": "Erator", "username": "operator",
                                             "email": "operator@example.com", "active": ""})
    db.session.expire_all()
    user = db.session.get(User, me)
    assert [r.name for r in user.roles] == ["Operator"] and user.active


def test_profile_form_ignores_role_and_active_fields(client, auth, tenants, ctx):
    auth.login("a1_staff")
    _post_form(client, "/userinfoeditview/form", {"first_name": "Sam", "last_name": "Staff",
                                                  "active": "", "roles": "1"})
    db.session.expire_all()
    user = db.session.get(User, tenants["a1_staff"])
    assert user.first_name == "Sam" and user.active and [r.name for r in user.roles] == ["Staff"]


def test_operator_sees_every_workspace_record(client, auth, tenants):
    auth.login("operator")
    body = client.get("/workspaceview/list/").get_data(as_text=True)
    assert "A One" in body and "B One" in body


def test_permission_matrix_document_matches_the_code(ctx):
    from asthron.roles import permission_matrix_markdown, registered_views

    with open("docs/permissions.md", encoding="utf-8") as fh:
        documented = fh.read()
    assert permission_matrix_markdown(registered_views(ctx.appbuilder)) in documented, \
        "docs/permissions.md is stale: regenerate the table with `flask --app wsgi asthron roles`"


def test_workspace_admin_sets_allowed_origins(client, auth, tenants, ctx):
    auth.login("a1_admin")
    form = {"name": "A One", "slug": "a-one", "status": "active", "time_zone": "UTC",
            "origins": "https://www.a1.example/\nhttp://localhost:8000"}
    assert _post_form(client, f"/workspaceview/edit/{tenants['a1']}", form).status_code == 302
    db.session.expire_all()
    assert db.session.get(Workspace, tenants["a1"]).allowed_origins == ["https://www.a1.example",
                                                                         "http://localhost:8000"]


def test_invalid_origin_or_time_zone_is_refused_and_nothing_is_saved(client, auth, tenants, ctx):
    auth.login("a1_admin")
    for bad in ({"origins": "javascript:alert(1)"}, {"time_zone": "Mars/Olympus"}):
        form = dict({"name": "Changed", "slug": "a-one", "status": "active", "time_zone": "UTC",
                     "origins": "https://ok.example"}, **bad)
        response = _post_form(client, f"/workspaceview/edit/{tenants['a1']}", form)
        assert response.status_code == 400
        assert "like https://example.com" in response.get_data(as_text=True) or \
            "is not an IANA time zone" in response.get_data(as_text=True)
        db.session.expire_all()
        ws = db.session.get(Workspace, tenants["a1"])
        assert ws.name == "A One" and ws.allowed_origins == ["https://a1.example"]
