"""Server-side sessions: logout, password changes and deactivation end sessions; copied cookies stop working."""
import hashlib
import logging
from datetime import timedelta

from flask_login.utils import encode_cookie
from sqlalchemy import select

from tests.conftest import PASSWORD, Auth, csrf_token

NEW_PASSWORD = "a brand new passphrase for tests"
PROFILE = "/users/userinfo/"


def signed_in(client):
    """Say whether the client's cookies still open a page that needs a signed-in user."""
    return client.get(PROFILE).status_code == 200


def session_token(client):
    with client.session_transaction() as sess:
        return sess.get("_asthron_sid")


def records(app, user_id):
    from asthron.extensions import db
    from asthron.models.security import UserSession

    with app.app_context():
        rows = db.session.scalars(select(UserSession).where(UserSession.user_id == user_id)
                                  .order_by(UserSession.id)).all()
        db.session.expunge_all()
        return rows


def shift_times(app, user_id, **deltas):
    """Move a user's session timestamps into the past, e.g. last_seen_at=timedelta(minutes=31)."""
    from asthron.extensions import db
    from asthron.models.security import UserSession

    with app.app_context():
        for record in db.session.scalars(select(UserSession).where(UserSession.user_id == user_id)):
            for column, delta in deltas.items():
                setattr(record, column, getattr(record, column) - delta)
        db.session.commit()


def second_browser(app, username):
    other = app.test_client()
    Auth(other).login(username)
    return other


def audit_entries(app, action=None):
    """Return the audit entries, all of them or those of one action."""
    from asthron.extensions import db
    from asthron.models.audit import AuditEntry
    from asthron.tenancy import unrestricted

    query = select(AuditEntry).order_by(AuditEntry.seq)
    with app.app_context(), unrestricted():
        rows = db.session.scalars(query if action is None else query.where(AuditEntry.action == action)).all()
        db.session.expunge_all()
        return rows


def test_login_creates_a_session_record_that_stores_only_a_hash_of_the_id(app, client, auth, tenants):
    auth.login("a1_staff")
    token = session_token(client)
    [record] = records(app, tenants["a1_staff"])
    assert token and record.token_hash == hashlib.sha256(token.encode()).hexdigest()
    assert token not in record.token_hash and record.revoked_at is None


def test_login_records_address_and_browser_of_the_session(app, client, auth, tenants):
    client.environ_base.update(REMOTE_ADDR="198.51.100.7", HTTP_USER_AGENT="SpecBrowser/1.0")
    auth.login("a1_staff")
    [record] = records(app, tenants["a1_staff"])
    assert (record.ip, record.user_agent) == ("198.51.100.7", "SpecBrowser/1.0")


def test_copied_session_cookie_stops_working_after_logout(app, client, auth, tenants):
    auth.login("a1_staff")
    thief = app.test_client()
    thief.set_cookie("session", client.get_cookie("session").value, domain="localhost")
    assert signed_in(thief)
    auth.logout()
    assert not signed_in(thief)


def test_logout_ends_the_users_sessions_in_other_browsers(app, client, auth, tenants):
    auth.login("a1_staff")
    laptop = second_browser(app, "a1_staff")
    auth.logout()
    assert not signed_in(laptop)
    assert all(r.revoked_at is not None for r in records(app, tenants["a1_staff"]))


def test_logout_leaves_other_users_signed_in(app, client, auth, tenants):
    colleague = second_browser(app, "a1_admin")
    auth.login("a1_staff")
    auth.logout()
    assert signed_in(colleague)


def test_get_logout_only_asks_for_confirmation(app, client, auth, tenants):
    auth.login("a1_staff")
    page = client.get("/logout/")
    assert page.status_code == 200
    assert 'method="post"' in page.get_data(as_text=True)
    assert signed_in(client)


def test_logout_post_without_csrf_token_is_refused(app, client, auth, tenants):
    auth.login("a1_staff")
    assert client.post("/logout/").status_code == 400
    assert signed_in(client)


def test_own_password_change_keeps_this_session_and_ends_the_others(app, client, auth, tenants):
    auth.login("a1_staff")
    phone = second_browser(app, "a1_staff")
    token = csrf_token(client, "/resetmypassword/form")
    response = client.post("/resetmypassword/form", data={"password": NEW_PASSWORD, "conf_password": NEW_PASSWORD,
                                                           "csrf_token": token})
    assert response.status_code == 302
    assert signed_in(client)
    assert not signed_in(phone)


def test_admin_password_reset_ends_all_the_users_sessions(app, client, auth, tenants):
    staff = second_browser(app, "a1_staff")
    auth.login("operator")
    path = f"/resetpassword/form?pk={tenants['a1_staff']}"
    token = csrf_token(client, path)
    client.post(path, data={"password": NEW_PASSWORD, "conf_password": NEW_PASSWORD, "csrf_token": token})
    assert not signed_in(staff)
    assert Auth(app.test_client()).login("a1_staff", NEW_PASSWORD).headers["Location"] == "/"


def test_password_change_is_audited_without_the_password(app, client, auth, tenants):
    auth.login("a1_staff")
    token = csrf_token(client, "/resetmypassword/form")
    client.post("/resetmypassword/form", data={"password": NEW_PASSWORD, "conf_password": NEW_PASSWORD,
                                               "csrf_token": token})
    [entry] = audit_entries(app, "password.change")
    assert entry.target_id == str(tenants["a1_staff"]) and entry.actor == "a1_staff"
    assert NEW_PASSWORD not in repr(entry.details)


def deactivate(client, user_id):
    """Untick "active" for a user in the user admin, keeping the other fields as they are."""
    import re

    html = client.get(f"/users/edit/{user_id}").get_data(as_text=True)
    data = {name: value for name, value in re.findall(r'<input[^>]*name="(\w+)"[^>]*value="([^"]*)"', html)}
    data.pop("active", None)
    data["roles"] = re.findall(r'<option selected value="(\d+)"', html) or \
        re.findall(r'<option[^>]*value="(\d+)"[^>]*selected', html)
    return client.post(f"/users/edit/{user_id}", data=data)


def test_deactivating_a_user_in_the_user_admin_ends_their_sessions(app, client, auth, tenants):
    staff = second_browser(app, "a1_staff")
    auth.login("operator")
    assert deactivate(client, tenants["a1_staff"]).status_code == 302
    assert not signed_in(staff)
    assert all(r.revoke_reason == "deactivated" for r in records(app, tenants["a1_staff"]))


def test_session_revocation_on_deactivation_is_audited(app, client, auth, tenants):
    second_browser(app, "a1_staff")
    auth.login("operator")
    deactivate(client, tenants["a1_staff"])
    [entry] = audit_entries(app, "sessions.revoke")
    assert entry.target_id == str(tenants["a1_staff"]) and entry.actor == "operator"
    assert entry.details == {"reason": "deactivated", "count": 1}


def test_idle_session_ends_after_the_idle_timeout(app, client, auth, tenants):
    auth.login("a1_staff")
    idle = app.config["ASTHRON_SESSION_IDLE_MINUTES"]
    shift_times(app, tenants["a1_staff"], last_seen_at=timedelta(minutes=idle + 1))
    assert not signed_in(client)
    assert records(app, tenants["a1_staff"])[0].revoke_reason == "expired"


def test_session_ends_after_the_absolute_lifetime_despite_activity(app, client, auth, tenants):
    auth.login("a1_staff")
    shift_times(app, tenants["a1_staff"], created_at=app.config["PERMANENT_SESSION_LIFETIME"] + timedelta(minutes=1))
    assert not signed_in(client)


def test_activity_moves_the_idle_deadline(app, client, auth, tenants):
    auth.login("a1_staff")
    shift_times(app, tenants["a1_staff"], last_seen_at=timedelta(minutes=20))
    before = records(app, tenants["a1_staff"])[0].last_seen_at
    assert signed_in(client)
    assert records(app, tenants["a1_staff"])[0].last_seen_at > before


def test_remember_cookie_does_not_sign_in_without_a_session_record(app, client, tenants):
    with app.test_request_context():
        cookie = encode_cookie(str(tenants["a1_staff"]))
    client.set_cookie("remember_token", cookie, domain="localhost")
    assert not signed_in(client)


def test_audit_and_logs_never_hold_a_password_or_session_id(app, client, auth, tenants, caplog):
    caplog.set_level(logging.DEBUG)
    auth.login("a1_staff", "wrong password, not the real one")
    auth.login("a1_staff")
    token = session_token(client)
    form = csrf_token(client, "/resetmypassword/form")
    client.post("/resetmypassword/form", data={"password": NEW_PASSWORD, "conf_password": NEW_PASSWORD,
                                               "csrf_token": form})
    auth.logout()
    everything = repr([(e.action, e.details) for e in audit_entries(app)]) + caplog.text
    for secret in (PASSWORD, NEW_PASSWORD, "wrong password, not the real one", token):
        assert secret not in everything

