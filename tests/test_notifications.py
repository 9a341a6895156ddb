"""Email notifications: queued with the change, rendered at send time, retried through outages, escaped."""
from datetime import timedelta

import pytest
from sqlalchemy import func, select, update

from asthron.extensions import db
from asthron.hookspecs import hookimpl
from asthron.jobs import sweeper
from asthron.models.base import utcnow
from asthron.models.chat import Conversation, ConversationOwner
from asthron.models.jobs import OutboxEntry, OutboxStatus
from asthron.models.leads import Lead
from asthron.models.notifications import (
    EmailSettings, Notification, NotificationAttachment, NotificationPreference, NotificationStatus, OutboxEmail,
)
from asthron.plugins import pm
from asthron.providers.email import Attachment, EmailTransport, SendResult
from asthron.services import conversations, notifications

XSS = "<img src=x onerror=alert(1)>"
ESCAPED = "&lt;img src=x onerror=alert(1)&gt;"


class RecordingTransport(EmailTransport):
    """A transport the test steers: accept, fail for now, or refuse for good; it keeps what it was given."""

    name = "recording"
    label = "Recording (tests)"

    def __init__(self):
        self.sent, self.outcomes, self.settings = [], [], []

    def send(self, *, settings, message):
        self.settings.append(dict(settings))
        outcome = self.outcomes.pop(0) if self.outcomes else "accept"
        if outcome == "raise":
            raise RuntimeError(f"boom with {settings.get('password')}")
        if outcome == "accept":
            self.sent.append(message)
            return SendResult(accepted=True, message_id=f"rec-{len(self.sent)}")
        return SendResult(accepted=False, error=f"server said no ({outcome})", permanent=outcome == "permanent")


class RecordingPlugin:
    def __init__(self, transport):
        self.transport = transport

    @hookimpl
    def register_email_transports(self, register):
        register(self.transport)


@pytest.fixture
def recording(app):
    """The `recording` transport, installed for one test and made the default."""
    transport = RecordingTransport()
    pm.register(RecordingPlugin(transport), name="recording_transport")
    app.config["ASTHRON_EMAIL_TRANSPORT"] = "recording"
    yield transport
    app.config["ASTHRON_EMAIL_TRANSPORT"] = "outbox"
    pm.unregister(name="recording_transport")


def _lead(workspace_id, name="Ada Lovelace", email="ada@example.com"):
    lead = Lead(workspace_id=workspace_id, source="ai", name=name, email=email, phone="+441234567890")
    db.session.add(lead)
    db.session.flush()
    return lead


def _conversation(workspace_id):
    conversation = Conversation(workspace_id=workspace_id, token_hash="0" * 64, owner=ConversationOwner.waiting,
                                needs_human=True, flag_reason="The visitor asked for a person.")
    db.session.add(conversation)
    db.session.flush()
    return conversation


def _age_retries(app):
    """Make every retry due now (instead of waiting out the back-off)."""
    with app.app_context():
        db.session.execute(update(OutboxEntry).where(OutboxEntry.status == OutboxStatus.pending)
                           .values(available_at=utcnow() - timedelta(seconds=1)))
        db.session.commit()


def _notification(app, notification_id):
    with app.app_context():
        row = db.session.get(Notification, notification_id)
        db.session.expunge(row)
        return row


def _send(app, workspace_id, **kwargs):
    with app.app_context():
        kwargs.setdefault("template", "new_lead")
        if "context" not in kwargs:
            kwargs["context"] = {"lead_id": _lead(workspace_id).id}
        notification = notifications.send_email(workspace_id=workspace_id, to=kwargs.pop("to", "boss@example.com"),
                                                **kwargs)
        db.session.commit()
        return notification.id


# --- queueing and the outbox transport ----------------------------------------------------------

def test_an_email_is_stored_by_the_outbox_transport_after_commit(app, tenants):
    notification_id = _send(app, tenants["a1"])
    sent = _notification(app, notification_id)
    assert (sent.status, sent.attempts, sent.last_error) == (NotificationStatus.sent, 1, None)
    assert sent.transport == "outbox" and sent.sent_at is not None
    assert sent.subject == "New lead: Ada Lovelace"
    with app.app_context():
        stored = db.session.scalars(select(OutboxEmail)).one()
        assert (stored.workspace_id, stored.notification_id, stored.to) == (tenants["a1"], notification_id,
                                                                            "boss@example.com")
        assert stored.from_addr == 'A One <notifications@asthron.localhost>'
        assert stored.message_id == sent.message_id and sent.message_id.endswith("@asthron.localhost>")
        assert "ada@example.com" in stored.text and "ada@example.com" in stored.html


def test_nothing_is_sent_when_the_transaction_rolls_back(app, tenants):
    with app.app_context():
        notifications.send_email(workspace_id=tenants["a1"], to="boss@example.com", template="new_lead",
                                 context={"lead_id": _lead(tenants["a1"]).id})
        db.session.rollback()
        assert db.session.scalar(select(func.count()).select_from(Notification)) == 0
        assert db.session.scalar(select(func.count()).select_from(OutboxEmail)) == 0


@pytest.mark.parametrize("kwargs, message", [
    ({"to": "not-an-address"}, "not an email address"),
    ({"to": "a@example.com\r\nBcc: x@example.com"}, "not an email address"),
    ({"template": "no_such_template"}, "no email template named"),
    ({"context": {"lead": object()}}, "not an id or a short string"),
    ({"context": {"note": "x" * 600}}, "longer than 500"),
    ({"attachments": ["not an attachment"]}, "Attachment instances"),
])
def test_a_notification_that_cannot_be_queued_is_refused_and_nothing_is_written(app, tenants, kwargs, message):
    with app.app_context():
        args = {"workspace_id": tenants["a1"], "to": "boss@example.com", "template": "new_lead",
                "context": {"lead_id": 1}, **kwargs}
        with pytest.raises(notifications.NotificationError, match=message):
            notifications.send_email(**args)
        db.session.commit()
        assert db.session.scalar(select(func.count()).select_from(Notification)) == 0
        assert db.session.scalar(select(func.count()).select_from(OutboxEntry)) == 0


def test_the_workspace_sender_identity_and_reply_to_are_used(app, tenants):
    with app.app_context():
        db.session.add(EmailSettings(workspace_id=tenants["a1"], from_name="Acme Dental",
                                     from_address="hello@acme-dental.example", reply_to="desk@acme-dental.example"))
        db.session.commit()
    notification_id = _send(app, tenants["a1"])
    with app.app_context():
        stored = db.session.scalars(select(OutboxEmail)).one()
        assert stored.from_addr == 'Acme Dental <hello@acme-dental.example>'
        assert stored.reply_to == "desk@acme-dental.example"
    assert _notification(app, notification_id).message_id.endswith("@acme-dental.example>")


# --- recipients and preferences -----------------------------------------------------------------

def test_staff_notifications_go_to_the_workspace_team_and_the_agency_admins(app, tenants):
    with app.app_context():
        sent = notifications.notify_staff(workspace_id=tenants["a1"], template="new_lead",
                                          context={"lead_id": _lead(tenants["a1"]).id})
        db.session.commit()
        assert sorted(n.recipient for n in sent) == ["a1_admin@example.com", "a1_staff@example.com",
                                                     "a_admin@example.com"]
        assert {n.user_id for n in sent} == {tenants["a1_admin"], tenants["a1_staff"], tenants["a_admin"]}


def test_a_person_who_turned_a_notification_off_does_not_receive_it(app, tenants):
    with app.app_context():
        notifications.set_preferences(tenants["a1_staff"], {"new_lead": False, "handoff_requested": True})
        db.session.commit()
        assert not notifications.wants(tenants["a1_staff"], "new_lead")
        assert notifications.wants(tenants["a1_staff"], "handoff_requested")
        lead = _lead(tenants["a1"])
        sent = notifications.notify_staff(workspace_id=tenants["a1"], template="new_lead",
                                          context={"lead_id": lead.id})
        handoff = notifications.notify_staff(workspace_id=tenants["a1"], template="handoff_requested",
                                             context={"conversation_id": _conversation(tenants["a1"]).id})
        db.session.commit()
        assert "a1_staff@example.com" not in {n.recipient for n in sent}
        assert "a1_staff@example.com" in {n.recipient for n in handoff}


def test_preferences_accept_only_staff_templates(app, tenants):
    with app.app_context():
        with pytest.raises(notifications.NotificationError, match="unknown notification 'transcript'"):
            notifications.set_preferences(tenants["a1_staff"], {"transcript": False})
        assert db.session.scalar(select(func.count()).select_from(NotificationPreference)) == 0


# --- templates ----------------------------------------------------------------------------------

def test_a_hostile_lead_name_is_escaped_in_html_and_plain_in_text(app, tenants):
    with app.app_context():
        lead_id = _lead(tenants["a1"], name=XSS).id
        db.session.commit()
    notification_id = _send(app, tenants["a1"], context={"lead_id": lead_id})
    with app.app_context():
        stored = db.session.scalars(select(OutboxEmail).where(OutboxEmail.notification_id == notification_id)).one()
        assert XSS not in stored.html and ESCAPED in stored.html
        assert "<img" not in stored.html.replace("&lt;img", "")
        assert f"New lead: {XSS}" in stored.text
        assert stored.subject == f"New lead: {XSS}"


def test_the_handoff_email_links_to_the_conversation_in_the_inbox(app, tenants):
    app.config["ASTHRON_BASE_URL"] = "https://admin.agency.example/"
    try:
        with app.app_context():
            conversation = _conversation(tenants["a1"])
            conversations.add_message(conversation, "visitor", f"I need a human {XSS}")
            conversation_id = conversation.id
            db.session.commit()
        notification_id = _send(app, tenants["a1"], template="handoff_requested",
                                context={"conversation_id": conversation_id})
    finally:
        app.config["ASTHRON_BASE_URL"] = "http://127.0.0.1:5000"
    with app.app_context():
        stored = db.session.scalars(select(OutboxEmail).where(OutboxEmail.notification_id == notification_id)).one()
        link = f"https://admin.agency.example/inbox/c/{conversation_id}"
        assert link in stored.text and f'href="{link}"' in stored.html
        assert f"I need a human {XSS}" in stored.text and f"I need a human {ESCAPED}" in stored.html
        assert stored.subject == "A visitor is waiting for a person on A One"


def test_the_transcript_goes_to_the_visitor_with_a_text_copy_attached(app, tenants, recording):
    with app.app_context():
        conversation = _conversation(tenants["a1"])
        conversations.add_message(conversation, "visitor", "What are your opening hours?")
        conversations.add_message(conversation, "assistant", "We open at 9.")
        conversations.add_message(conversation, "system", "internal: handed to the team")
        conversations.add_message(conversation, "staff", "Anything else?", author="Grace")
        conversation_id = conversation.id
        db.session.commit()
    _send(app, tenants["a1"], template="transcript", to="visitor@example.com",
          context={"conversation_id": conversation_id})
    message = recording.sent[0]
    assert message.to == ("visitor@example.com",)
    assert message.text.index("What are your opening hours?") < message.text.index("We open at 9.")
    assert "Grace (" in message.text and "internal" not in message.text
    (attachment,) = message.attachments
    assert attachment.filename.startswith("conversation-") and attachment.content_type.startswith("text/plain")
    assert attachment.data.decode() == message.text


def test_a_context_naming_another_workspaces_row_fails_without_sending(app, tenants, recording):
    with app.app_context():
        foreign_id = _lead(tenants["b1"], name="B secret lead").id
        db.session.commit()
    notification_id = _send(app, tenants["a1"], context={"lead_id": foreign_id})
    failed = _notification(app, notification_id)
    assert (failed.status, failed.last_error) == (NotificationStatus.failed, "the lead no longer exists")
    assert recording.sent == []


# --- delivery: retries, permanent failures, attachments -----------------------------------------

def test_a_temporary_failure_is_retried_and_then_delivered(app, tenants, recording):
    recording.outcomes = ["temporary", "raise"]
    notification_id = _send(app, tenants["a1"])
    first = _notification(app, notification_id)
    assert (first.status, first.attempts, first.last_error) == (NotificationStatus.retrying, 1,
                                                                "server said no (temporary)")
    assert sweeper.run_due(app) == 0  # backing off
    _age_retries(app)
    sweeper.run_due(app)
    second = _notification(app, notification_id)
    assert (second.status, second.attempts) == (NotificationStatus.retrying, 2)
    assert second.last_error == "transport 'recording' raised RuntimeError"  # the message held a setting
    _age_retries(app)
    sweeper.run_due(app)
    sent = _notification(app, notification_id)
    assert (sent.status, sent.attempts, sent.last_error, sent.transport_message_id) == (
        NotificationStatus.sent, 3, None, "rec-1")
    assert len(recording.sent) == 1
    assert recording.sent[0].headers["Message-ID"] == sent.message_id


def test_a_permanent_failure_is_not_retried_and_an_admin_can_retry_it(app, tenants, recording):
    recording.outcomes = ["permanent"]
    notification_id = _send(app, tenants["a1"])
    failed = _notification(app, notification_id)
    assert (failed.status, failed.attempts, failed.last_error) == (NotificationStatus.failed, 1,
                                                                   "server said no (permanent)")
    _age_retries(app)
    assert sweeper.run_due(app) == 0
    with app.app_context():
        notifications.retry(db.session.get(Notification, notification_id))
        db.session.commit()
    sent = _notification(app, notification_id)
    assert (sent.status, sent.attempts) == (NotificationStatus.sent, 2)


def test_out_of_attempts_the_notification_is_failed(app, tenants, recording):
    from asthron.jobs.notifications import DELIVER_MAX_ATTEMPTS

    recording.outcomes = ["temporary"] * DELIVER_MAX_ATTEMPTS
    notification_id = _send(app, tenants["a1"])
    for _ in range(DELIVER_MAX_ATTEMPTS - 1):
        _age_retries(app)
        sweeper.run_due(app)
    failed = _notification(app, notification_id)
    assert (failed.status, failed.attempts) == (NotificationStatus.failed, DELIVER_MAX_ATTEMPTS)
    assert failed.last_error == "server said no (temporary)"
    with app.app_context():
        assert db.session.scalars(select(OutboxEntry.status)).one() == OutboxStatus.failed


def test_only_a_failed_notification_can_be_retried(app, tenants):
    notification_id = _send(app, tenants["a1"])
    with app.app_context():
        with pytest.raises(notifications.NotificationError, match="only a failed notification"):
            notifications.retry(db.session.get(Notification, notification_id))


def test_explicit_attachments_are_sent_and_then_dropped(app, tenants, recording):
    invite = Attachment("invite.ics", "text/calendar; method=REQUEST", b"BEGIN:VCALENDAR\r\nEND:VCALENDAR\r\n")
    notification_id = _send(app, tenants["a1"], attachments=[invite])
    assert recording.sent[0].attachments == (invite,)
    assert _notification(app, notification_id).status == NotificationStatus.sent
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(NotificationAttachment)) == 0


def test_a_missing_secret_variable_delays_mail_and_names_the_variable(app, tenants, recording, monkeypatch):
    with app.app_context():
        db.session.add(EmailSettings(workspace_id=tenants["a1"], transport="recording",
                                     transport_settings={"password": {"$env": "H4_TEST_SMTP_PASSWORD"}}))
        db.session.commit()
    monkeypatch.delenv("H4_TEST_SMTP_PASSWORD", raising=False)
    notification_id = _send(app, tenants["a1"])
    waiting = _notification(app, notification_id)
    assert waiting.status == NotificationStatus.retrying and "H4_TEST_SMTP_PASSWORD" in waiting.last_error
    monkeypatch.setenv("H4_TEST_SMTP_PASSWORD", "s3cret-value")
    _age_retries(app)
    sweeper.run_due(app)
    assert _notification(app, notification_id).status == NotificationStatus.sent
    assert recording.settings[-1] == {"password": "s3cret-value"}


def test_notifications_are_delivered_through_redis_by_a_worker(app, tenants, redis_url):
    from redis import Redis
    from rq import SimpleWorker

    from asthron.jobs import QUEUES

    app.config["REDIS_URL"] = redis_url
    try:
        notification_id = _send(app, tenants["a1"])
        assert _notification(app, notification_id).status == NotificationStatus.queued
        with app.app_context():
            SimpleWorker(list(QUEUES), connection=Redis.from_url(redis_url)).work(burst=True)
    finally:
        app.config["REDIS_URL"] = None
    assert _notification(app, notification_id).status == NotificationStatus.sent


def test_a_template_unknown_to_the_sending_process_delays_the_email(app, tenants, recording):
    def render(context):
        return notifications.RenderedEmail(subject="Late template", text="body")

    notifications.register_template("h4_ephemeral", label="Ephemeral (tests)", render=render)
    try:
        with app.app_context():
            notification = notifications.send_email(workspace_id=tenants["a1"], to="boss@example.com",
                                                    template="h4_ephemeral", context={})
            notifications._templates.pop("h4_ephemeral")  # as in a worker that has not imported its module
            db.session.commit()
            notification_id = notification.id
        waiting = _notification(app, notification_id)
        assert waiting.status == NotificationStatus.retrying
        assert waiting.last_error == "no email template named 'h4_ephemeral' is registered"
        notifications.register_template("h4_ephemeral", label="Ephemeral (tests)", render=render)
        _age_retries(app)
        sweeper.run_due(app)
        assert _notification(app, notification_id).status == NotificationStatus.sent
        assert recording.sent[0].subject == "Late template"
    finally:
        notifications._templates.pop("h4_ephemeral", None)


def test_a_template_that_breaks_is_retried_with_its_error_type_only(app, tenants, recording):
    def render(context):
        raise KeyError(f"secret detail {context['workspace_id']}")

    notifications.register_template("h4_broken", label="Broken (tests)", render=render)
    try:
        notification_id = _send(app, tenants["a1"], template="h4_broken", context={})
    finally:
        notifications._templates.pop("h4_broken", None)
    waiting = _notification(app, notification_id)
    assert waiting.status == NotificationStatus.retrying
    assert waiting.last_error == "template 'h4_broken' failed: KeyError"
    assert recording.sent == []


def test_invalid_default_transport_settings_delay_mail_without_quoting_them(app, tenants):
    app.config["ASTHRON_EMAIL_TRANSPORT_SETTINGS"] = '{"password": "oops-literal"'
    try:
        notification_id = _send(app, tenants["a1"])
    finally:
        app.config["ASTHRON_EMAIL_TRANSPORT_SETTINGS"] = "{}"
    waiting = _notification(app, notification_id)
    assert waiting.status == NotificationStatus.retrying
    assert waiting.last_error == "ASTHRON_EMAIL_TRANSPORT_SETTINGS must be a JSON object"
    _age_retries(app)
    sweeper.run_due(app)
    assert _notification(app, notification_id).status == NotificationStatus.sent
