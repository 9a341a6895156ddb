"""The SMTP transport plugin against a real SMTP server (aiosmtpd): TLS, AUTH, failures, retries, no leaks."""
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from asthron.extensions import db
from asthron.jobs import sweeper
from asthron.models.audit import AuditEntry
from asthron.models.base import utcnow
from asthron.models.jobs import OutboxEntry, OutboxStatus
from asthron.models.leads import Lead
from asthron.models.notifications import EmailSettings, Notification, NotificationStatus
from asthron.providers.email import Attachment, EmailMessage
from asthron.services import notifications
from tests.conftest import csrf_token

PASSWORD = "Pw-0f-the-mailer-9c1e"


def _message(**overrides):
    values = {"to": ("visitor@example.com",), "subject": "Hello there", "text": "Plain body",
              "html": "<p>HTML body</p>", "from_addr": "Acme Dental <hello@acme.example>",
              "reply_to": "desk@acme.example", "headers": {"Message-ID": "<asthron.test.1@acme.example>"}}
    return EmailMessage(**{**values, **overrides})


def _send(plugin, settings, **overrides):
    return plugin.SMTPTransport().send(settings=settings, message=_message(**overrides))


# --- the transport on its own -------------------------------------------------------------------

def test_a_message_reaches_a_plain_relay_with_its_headers_parts_and_attachments(smtp_plugin, smtp_server):
    server = smtp_server().start()
    invite = Attachment("invite.ics", "text/calendar; method=REQUEST", b"BEGIN:VCALENDAR\r\nEND:VCALENDAR\r\n")
    result = _send(smtp_plugin, server.settings(), attachments=(invite,))
    assert result.accepted and result.message_id == "<asthron.test.1@acme.example>"
    (got,) = server.received
    assert (got.mail_from, got.rcpt_tos) == ("hello@acme.example", ["visitor@example.com"])
    message = got.message
    assert message["From"] == "Acme Dental <hello@acme.example>" and message["Reply-To"] == "desk@acme.example"
    assert message["Message-ID"] == "<asthron.test.1@acme.example>" and message["Subject"] == "Hello there"
    assert message.get_body(("plain",)).get_content().strip() == "Plain body"
    assert message.get_body(("html",)).get_content().strip() == "<p>HTML body</p>"
    (attached,) = list(message.iter_attachments())
    assert attached.get_filename() == "invite.ics" and attached.get_content_type() == "text/calendar"
    assert attached.get_param("method") == "REQUEST"
    assert attached.get_payload(decode=True) == invite.data


@pytest.mark.parametrize("exclude, mechanism", [(["LOGIN"], "PLAIN"), (["PLAIN"], "LOGIN")])
def test_starttls_with_authentication(smtp_plugin, smtp_server, certificates, exclude, mechanism):
    server = smtp_server(security="starttls", certificates=certificates, users={"mailer": PASSWORD},
                         exclude_mechanisms=exclude).start()
    result = _send(smtp_plugin, server.settings(username="mailer", password=PASSWORD))
    assert result.accepted, result.error
    assert server.received[0].login == "mailer"
    assert server.mechanisms_used == [mechanism]


def test_implicit_tls_with_authentication(smtp_plugin, smtp_server, certificates):
    server = smtp_server(security="tls", certificates=certificates, users={"mailer": PASSWORD}).start()
    result = _send(smtp_plugin, server.settings(username="mailer", password=PASSWORD))
    assert result.accepted, result.error
    assert server.received[0].login == "mailer"


@pytest.mark.parametrize("security", ["starttls", "tls"])
def test_an_untrusted_certificate_is_refused_and_retried_later(smtp_plugin, smtp_server, certificates, security):
    server = smtp_server(security=security, certificates=certificates).start()
    settings = server.settings()
    del settings["ca_file"]  # the system's CAs do not know the test CA
    result = _send(smtp_plugin, settings)
    assert (result.accepted, result.permanent) == (False, False)
    assert "certificate was not trusted" in result.error
    assert server.received == []


def test_a_server_without_starttls_is_a_configuration_error(smtp_plugin, smtp_server):
    server = smtp_server().start()
    result = _send(smtp_plugin, {**server.settings(), "security": "starttls"})
    assert (result.accepted, result.permanent) == (False, True)
    assert "does not offer STARTTLS" in result.error


def test_a_4xx_reply_is_temporary_and_a_5xx_reply_permanent(smtp_plugin, smtp_server):
    server = smtp_server().start()
    server.handler.data_reply = "451 4.3.0 Try again later"
    later = _send(smtp_plugin, server.settings())
    assert (later.accepted, later.permanent) == (False, False)
    assert later.error == "message refused: 451 4.3.0 Try again later"
    server.handler.data_reply, server.handler.rcpt_reply = None, "550 5.1.1 No such user"
    never = _send(smtp_plugin, server.settings())
    assert (never.accepted, never.permanent, never.error) == (False, True, "recipient refused: 550 5.1.1 No such user")


def test_a_server_that_is_down_is_temporary(smtp_plugin, smtp_server):
    server = smtp_server()  # never started
    result = _send(smtp_plugin, server.settings())
    assert (result.accepted, result.permanent) == (False, False)
    assert result.error == "could not reach the server (ConnectionRefusedError)"


def test_a_wrong_password_is_permanent_and_not_quoted(smtp_plugin, smtp_server, certificates):
    server = smtp_server(security="starttls", certificates=certificates, users={"mailer": "another"}).start()
    result = _send(smtp_plugin, server.settings(username="mailer", password=PASSWORD))
    assert (result.accepted, result.permanent) == (False, True)
    assert result.error.startswith("authentication failed: 535") and PASSWORD not in result.error


@pytest.mark.parametrize("settings, message", [
    ({"port": 25}, "needs \"host\""),
    ({"host": "smtp.example.com", "security": "ssl"}, "\"security\" is"),
    ({"host": "smtp.example.com", "port": "587"}, "\"port\" is a number"),
    ({"host": "smtp.example.com", "security": "none", "username": "u", "password": {"$env": "P"}}, "in clear"),
    ({"host": "smtp.example.com", "username": "u"}, "needs a \"password\""),
    ({"host": "smtp.example.com", "verify": False}, "Unknown SMTP setting 'verify'"),
])
def test_settings_that_cannot_work_are_refused_before_saving(smtp_plugin, settings, message):
    with pytest.raises(ValueError, match=message):
        smtp_plugin.SMTPTransport().check_settings(settings)


# --- through the app: retries and secrets -------------------------------------------------------

def _configure(app, workspace_id, settings):
    with app.app_context():
        db.session.add(EmailSettings(workspace_id=workspace_id, from_name="Acme Dental",
                                     from_address="hello@acme.example", transport="smtp",
                                     transport_settings=settings))
        lead = Lead(workspace_id=workspace_id, source="ai", name="Ada", email="ada@example.com")
        db.session.add(lead)
        db.session.commit()
        return lead.id


def _queue(app, workspace_id, lead_id):
    with app.app_context():
        notification = notifications.send_email(workspace_id=workspace_id, to="boss@example.com",
                                                template="new_lead", context={"lead_id": lead_id})
        db.session.commit()
        return notification.id


def _get(app, notification_id):
    with app.app_context():
        row = db.session.get(Notification, notification_id)
        db.session.expunge(row)
        return row


def _age_retries(app):
    with app.app_context():
        db.session.execute(update(OutboxEntry).where(OutboxEntry.status == OutboxStatus.pending)
                           .values(available_at=utcnow() - timedelta(seconds=1)))
        db.session.commit()


def test_mail_waits_while_the_server_is_down_and_is_delivered_once_it_is_back(
        app, tenants, smtp_plugin, smtp_server, certificates, monkeypatch):
    monkeypatch.setenv("H4_SMTP_PASSWORD", PASSWORD)
    server = smtp_server(security="starttls", certificates=certificates, users={"mailer": PASSWORD})
    lead_id = _configure(app, tenants["a1"], server.settings(username="mailer",
                                                              password={"$env": "H4_SMTP_PASSWORD"}))
    notification_id = _queue(app, tenants["a1"], lead_id)
    waiting = _get(app, notification_id)
    assert (waiting.status, waiting.attempts) == (NotificationStatus.retrying, 1)
    assert waiting.last_error == "could not reach the server (ConnectionRefusedError)"
    _age_retries(app)
    sweeper.run_due(app)
    assert (_get(app, notification_id).status, _get(app, notification_id).attempts) == (NotificationStatus.retrying, 2)

    server.start()
    _age_retries(app)
    sweeper.run_due(app)
    sent = _get(app, notification_id)
    assert (sent.status, sent.attempts, sent.last_error, sent.transport) == (NotificationStatus.sent, 3, None, "smtp")
    (got,) = server.received
    assert got.message["Message-ID"] == sent.message_id and got.message["Subject"] == "New lead: Ada"
    assert got.mail_from == "hello@acme.example" and got.message["From"] == "Acme Dental <hello@acme.example>"
    _age_retries(app)
    assert sweeper.run_due(app) == 0  # delivered once


def test_the_password_is_never_in_errors_logs_audit_or_admin_pages(
        app, tenants, client, auth, smtp_plugin, smtp_server, certificates, monkeypatch, caplog):
    monkeypatch.setenv("H4_SMTP_PASSWORD", PASSWORD)
    server = smtp_server(security="starttls", certificates=certificates, users={"mailer": "the-right-one"}).start()
    settings = server.settings(username="mailer", password={"$env": "H4_SMTP_PASSWORD"})
    lead_id = _configure(app, tenants["a1"], settings)
    caplog.set_level("DEBUG")
    notification_id = _queue(app, tenants["a1"], lead_id)
    failed = _get(app, notification_id)
    assert failed.status == NotificationStatus.failed and failed.last_error.startswith("authentication failed: 535")

    auth.login("a1_admin")
    pages = [client.get("/notificationview/list/"), client.get(f"/notificationview/show/{notification_id}"),
             client.get("/emailsettingsview/list/")]
    with app.app_context():
        settings_id = db.session.scalars(select(EmailSettings.id).where(
            EmailSettings.workspace_id == tenants["a1"])).one()
        audit_text = " ".join(str(e.details) for e in db.session.scalars(select(AuditEntry)))
        outbox_errors = " ".join(str(e.last_error) for e in db.session.scalars(select(OutboxEntry)))
    pages.append(client.get(f"/emailsettingsview/show/{settings_id}"))
    pages.append(client.get(f"/emailsettingsview/edit/{settings_id}"))
    assert all(p.status_code == 200 for p in pages)
    assert "H4_SMTP_PASSWORD" in pages[-2].get_data(as_text=True)  # the reference is shown, not the value
    for text in [failed.last_error, caplog.text, audit_text, outbox_errors] + [p.get_data(as_text=True)
                                                                             for p in pages]:
        assert PASSWORD not in text


def test_an_admin_saves_smtp_settings_with_an_env_reference(app, tenants, client, auth, smtp_plugin):
    auth.login("a1_admin")
    client.get("/emailsettingsview/list/")
    with app.app_context():
        pk = db.session.scalars(select(EmailSettings.id).where(EmailSettings.workspace_id == tenants["a1"])).one()
    form = {"from_name": "Acme", "from_address": "hello@acme.example", "reply_to": "", "transport": "smtp",
            "csrf_token": csrf_token(client, f"/emailsettingsview/edit/{pk}")}
    literal = client.post(f"/emailsettingsview/edit/{pk}", data={
        **form, "settings_json": '{"host": "smtp.acme.example", "username": "u", "password": "' + PASSWORD + '"}'})
    assert literal.status_code == 400 and PASSWORD not in literal.get_data(as_text=True)
    plain_auth = client.post(f"/emailsettingsview/edit/{pk}", data={
        **form, "settings_json": '{"host": "smtp.acme.example", "security": "none", "username": "u", '
                                 '"password": {"$env": "SMTP_PASSWORD"}}'})
    assert plain_auth.status_code == 400 and "in clear" in plain_auth.get_data(as_text=True)
    saved = client.post(f"/emailsettingsview/edit/{pk}", data={
        **form, "settings_json": '{"host": "smtp.acme.example", "port": 465, "security": "tls", "username": "u", '
                                 '"password": {"$env": "SMTP_PASSWORD"}}'})
    assert saved.status_code == 302
    with app.app_context():
        row = db.session.get(EmailSettings, pk)
        assert row.transport == "smtp" and row.transport_settings["password"] == {"$env": "SMTP_PASSWORD"}
