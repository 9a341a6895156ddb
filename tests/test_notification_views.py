"""Admin views for email: notifications, retries, the outbox, sender settings, preferences; tenants apart."""
import pytest
from sqlalchemy import func, select

from asthron.extensions import db
from asthron.models.audit import AuditEntry
from asthron.models.leads import Lead
from asthron.models.notifications import (
    EmailSettings, Notification, NotificationPreference, NotificationStatus, OutboxEmail,
)
from asthron.services import notifications
from tests.conftest import csrf_token

XSS = "<img src=x onerror=alert(1)>"
ESCAPED = "&lt;img src=x onerror=alert(1)&gt;"


@pytest.fixture
def mail(app, tenants):
    """A sent email in A1 (about a hostile lead name), a failed one in A1 and a sent one in B1."""
    with app.app_context():
        ids = {}
        for key, ws in (("a1", tenants["a1"]), ("b1", tenants["b1"])):
            lead = Lead(workspace_id=ws, source="ai", name=f"Lead {key} {XSS}", email=f"lead-{key}@example.com")
            db.session.add(lead)
            db.session.flush()
            ids[f"sent_{key}"] = notifications.send_email(workspace_id=ws, to=f"boss-{key}@example.com",
                                                          template="new_lead", context={"lead_id": lead.id}).id
        failed = notifications.send_email(workspace_id=tenants["a1"], to="gone@example.com", template="new_lead",
                                          context={"lead_id": 999999})
        db.session.commit()
        ids["failed_a1"] = failed.id
        ids["outbox_a1"] = db.session.scalars(select(OutboxEmail.id).where(
            OutboxEmail.notification_id == ids["sent_a1"])).one()
    return {**tenants, **ids}


def _status(app, notification_id):
    with app.app_context():
        return db.session.get(Notification, notification_id).status


def _retry(client, notification_id):
    token = csrf_token(client, "/notificationview/list/")
    return client.post("/notificationview/action_post", data={"action": "retry", "rowid": [notification_id],
                                                               "csrf_token": token})


def test_admins_see_their_workspaces_notifications_with_errors(client, auth, mail):
    auth.login("a_admin")
    body = client.get("/notificationview/list/").get_data(as_text=True)
    assert "boss-a1@example.com" in body and "gone@example.com" in body
    assert "the lead no longer exists" in body
    assert "boss-b1@example.com" not in body


def test_the_list_filters_failures(client, auth, mail):
    auth.login("a1_admin")
    assert 'href="/notificationview/list/?_flt_3_status=failed">Failed only' in \
        client.get("/notificationview/list/").get_data(as_text=True)
    body = client.get("/notificationview/list/?_flt_3_status=failed").get_data(as_text=True)
    assert "gone@example.com" in body and "boss-a1@example.com" not in body


def test_an_admin_retries_a_failed_notification(client, auth, mail, app):
    with app.app_context():
        db.session.get(Notification, mail["failed_a1"]).context = {"lead_id": db.session.scalars(
            select(Lead.id).where(Lead.workspace_id == mail["a1"])).first()}
        db.session.commit()
    auth.login("a1_admin")
    response = _retry(client, mail["failed_a1"])
    assert response.status_code == 302
    assert _status(app, mail["failed_a1"]) == NotificationStatus.sent
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(AuditEntry).where(
            AuditEntry.action == "notification.retry")) == 1


def test_another_tenant_cannot_retry_and_nothing_changes(client, auth, mail, app):
    auth.login("b_admin")
    assert _retry(client, mail["failed_a1"]).status_code == 404
    assert _status(app, mail["failed_a1"]) == NotificationStatus.failed
    assert client.get(f"/notificationview/show/{mail['failed_a1']}").status_code == 404


def test_staff_read_notifications_but_do_not_retry(client, auth, mail, app):
    auth.login("a1_staff")
    assert "gone@example.com" in client.get("/notificationview/list/").get_data(as_text=True)
    _retry(client, mail["failed_a1"])
    assert _status(app, mail["failed_a1"]) == NotificationStatus.failed


@pytest.mark.parametrize("user", ["a1_client", "operator"])
def test_clients_and_operators_see_no_email(client, auth, mail, user):
    auth.login(user)
    for path in ("/notificationview/list/", "/outboxemailview/list/", "/emailsettingsview/list/",
                 f"/outboxemailview/show/{mail['outbox_a1']}"):
        response = client.get(path)
        assert response.status_code in (302, 403, 404), path
        assert "boss-a1@example.com" not in response.get_data(as_text=True)


def test_the_outbox_shows_the_email_with_its_html_inert(client, auth, mail):
    auth.login("a1_staff")
    body = client.get(f"/outboxemailview/show/{mail['outbox_a1']}").get_data(as_text=True)
    assert f"New lead: Lead a1 {ESCAPED}" in body  # the text part, as text
    assert 'sandbox=""' in body and 'srcdoc="' in body
    assert XSS not in body  # the HTML part sits escaped in the attribute; the escaped name is escaped again
    assert "&amp;lt;img src=x onerror=alert(1)&amp;gt;" in body


def test_another_tenant_gets_404_for_an_outbox_email(client, auth, mail):
    auth.login("b1_staff")
    assert client.get(f"/outboxemailview/show/{mail['outbox_a1']}").status_code == 404
    assert "boss-a1@example.com" not in client.get("/outboxemailview/list/").get_data(as_text=True)


# --- email settings -----------------------------------------------------------------------------

def _settings_id(client, app, workspace_id):
    client.get("/emailsettingsview/list/")  # creates the rows the caller may configure
    with app.app_context():
        return db.session.scalars(select(EmailSettings.id).where(EmailSettings.workspace_id == workspace_id)).one()


def _edit(client, pk, **fields):
    data = {"from_name": "", "from_address": "", "reply_to": "", "transport": "", "settings_json": "{}", **fields}
    data["csrf_token"] = csrf_token(client, f"/emailsettingsview/edit/{pk}")
    return client.post(f"/emailsettingsview/edit/{pk}", data=data)


def test_an_admin_sets_the_sender_identity(client, auth, tenants, app):
    auth.login("a1_admin")
    pk = _settings_id(client, app, tenants["a1"])
    response = _edit(client, pk, from_name="Acme Dental", from_address="hello@acme.example",
                     reply_to="desk@acme.example", transport="outbox")
    assert response.status_code == 302
    with app.app_context():
        row = db.session.get(EmailSettings, pk)
        assert (row.from_name, row.from_address, row.reply_to, row.transport) == (
            "Acme Dental", "hello@acme.example", "desk@acme.example", "outbox")


@pytest.mark.parametrize("fields, message", [
    ({"from_address": "not an address"}, "Enter one email address"),
    ({"reply_to": "x@y"}, "Enter one email address"),
    ({"settings_json": "{not json"}, "JSON object"),
    ({"transport": "outbox", "settings_json": '{"host": "x"}'}, "takes no settings"),
    ({"transport": "carrier-pigeon"}, "Not a valid choice"),
])
def test_invalid_email_settings_are_refused_with_400(client, auth, tenants, app, fields, message):
    auth.login("a1_admin")
    pk = _settings_id(client, app, tenants["a1"])
    response = _edit(client, pk, **fields)
    assert response.status_code == 400
    assert message in response.get_data(as_text=True)
    with app.app_context():
        assert db.session.get(EmailSettings, pk).from_address is None


def test_a_literal_password_is_refused_and_never_shown_again(client, auth, tenants, app):
    auth.login("a1_admin")
    pk = _settings_id(client, app, tenants["a1"])
    response = _edit(client, pk, settings_json='{"password": "hunter2-literal"}')
    assert response.status_code == 400
    body = response.get_data(as_text=True)
    assert "literal secret" in body
    with app.app_context():
        assert db.session.get(EmailSettings, pk).transport_settings == {}


def test_settings_show_which_variables_are_missing_never_values(client, auth, tenants, app, monkeypatch):
    monkeypatch.setenv("H4_SET_PASSWORD", "value-that-must-not-show")
    monkeypatch.delenv("H4_UNSET_TOKEN", raising=False)
    with app.app_context():
        db.session.add(EmailSettings(workspace_id=tenants["a1"], transport_settings={
            "password": {"$env": "H4_SET_PASSWORD"}, "token": {"$env": "H4_UNSET_TOKEN"}}))
        db.session.commit()
    auth.login("a1_admin")
    pk = _settings_id(client, app, tenants["a1"])
    body = client.get(f"/emailsettingsview/show/{pk}").get_data(as_text=True)
    assert "not set in this process: H4_UNSET_TOKEN" in body
    assert "value-that-must-not-show" not in body


def test_another_tenant_cannot_edit_email_settings(client, auth, tenants, app):
    auth.login("a1_admin")
    pk = _settings_id(client, app, tenants["a1"])
    auth.logout()
    auth.login("b_admin")
    assert client.get(f"/emailsettingsview/edit/{pk}").status_code == 404
    response = client.post(f"/emailsettingsview/edit/{pk}", data={
        "from_address": "evil@b.example", "csrf_token": csrf_token(client, "/emailsettingsview/list/")})
    assert response.status_code == 404
    with app.app_context():
        assert db.session.get(EmailSettings, pk).from_address is None


def test_staff_cannot_change_email_settings(client, auth, tenants, app):
    auth.login("a1_admin")
    pk = _settings_id(client, app, tenants["a1"])
    auth.logout()
    auth.login("a1_staff")
    response = client.post(f"/emailsettingsview/edit/{pk}", data={
        "from_address": "staff@a.example", "csrf_token": csrf_token(client, "/notification-preferences/")})
    assert response.status_code in (302, 403)
    with app.app_context():
        assert db.session.get(EmailSettings, pk).from_address is None


# --- preferences --------------------------------------------------------------------------------

def test_a_person_turns_an_email_off_and_on(client, auth, tenants, app):
    auth.login("a1_staff")
    body = client.get("/notification-preferences/").get_data(as_text=True)
    assert 'value="new_lead" checked' in body and 'value="handoff_requested" checked' in body
    assert 'value="transcript"' not in body  # it goes to visitors
    token = csrf_token(client, "/notification-preferences/")
    response = client.post("/notification-preferences/", data={"template": ["handoff_requested"],
                                                                "csrf_token": token})
    assert response.status_code == 302
    with app.app_context():
        assert not notifications.wants(tenants["a1_staff"], "new_lead")
        assert notifications.wants(tenants["a1_staff"], "handoff_requested")
        assert notifications.wants(tenants["a1_admin"], "new_lead")  # only their own choice changed
    assert 'value="new_lead" >' in client.get("/notification-preferences/").get_data(as_text=True)


def test_preferences_need_a_csrf_token(client, auth, tenants, app):
    auth.login("a1_staff")
    response = client.post("/notification-preferences/", data={"template": []})
    assert response.status_code == 400
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(NotificationPreference)) == 0


def test_clients_have_no_email_preferences(client, auth, tenants):
    auth.login("a1_client")
    assert client.get("/notification-preferences/").status_code in (302, 403)
