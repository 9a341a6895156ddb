"""Human handoff: atomic owner changes, round robin, the AI's silence, notes kept from the visitor, the visitor API."""
import json
import threading

import pytest
from sqlalchemy import select

from asthron import jobs
from asthron.extensions import db
from asthron.hookspecs import hookimpl
from asthron.models.chat import Conversation, ConversationOwner, KnowledgeEntry, Message, WidgetSettings
from asthron.models.inbox import InboxSettings, StaffAvailability
from asthron.models.jobs import OutboxEntry, OutboxStatus
from asthron.models.leads import Lead
from asthron.models.notifications import Notification
from asthron.models.tenancy import Workspace
from asthron.providers.ai import AIProvider, Reply, Usage
from asthron.services import conversations, handoff, inbox, streams
from asthron.tenancy import scope_for_user, scoped
from asthron.widget import limits, sse

API = "/widget/api/v1"
A1 = "https://a1.example"
NOTE = "Internal: this visitor is a known time-waster zq9"


def _conversation(workspace_id, *, owner=ConversationOwner.ai, text="Hello there"):
    conversation = Conversation(workspace_id=workspace_id, token_hash="0" * 64, owner=owner)
    db.session.add(conversation)
    db.session.flush()
    conversations.add_message(conversation, "visitor", text)
    db.session.commit()
    return conversation.id


def _as(user_id):
    return scoped(scope_for_user(user_id))


def _texts(conversation_id, role=None):
    db.session.expire_all()
    query = select(Message).where(Message.conversation_id == conversation_id).order_by(Message.id)
    return [(m.role.value, m.text) for m in db.session.scalars(query) if role is None or m.role.value == role]


def _available(workspace_id, user_id, *, available=True):
    db.session.add(StaffAvailability(workspace_id=workspace_id, user_id=user_id, available=available))
    db.session.commit()


def _drain(get):
    found = []
    while (event := get(0)) is not None:
        found.append(event)
    return found


# --- The race: two staff take the same conversation at once -------------------------------------------------

def _take_in_thread(app, conversation_id, user_id, barrier, results):
    with app.app_context():
        try:
            with _as(user_id):
                barrier.wait(timeout=10)
                handoff.take(conversation_id, user_id=user_id)
                db.session.commit()
            results[user_id] = "won"
        except handoff.AlreadyTaken as exc:
            db.session.rollback()
            results[user_id] = exc
        finally:
            db.session.remove()


@pytest.mark.parametrize("round_", range(3))
def test_two_staff_taking_at_once_exactly_one_wins_and_the_other_hears_who(app, ctx, tenants, round_):
    conversation_id = _conversation(tenants["a1"], owner=ConversationOwner.waiting)
    people = [tenants["a1_staff"], tenants["a1_admin"]]
    barrier, results = threading.Barrier(2), {}
    threads = [threading.Thread(target=_take_in_thread, args=(app, conversation_id, uid, barrier, results))
               for uid in people]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    winners = [uid for uid, result in results.items() if result == "won"]
    assert len(results) == 2 and len(winners) == 1
    [loser] = [r for r in results.values() if r != "won"]
    winner_name = handoff.user_name(winners[0])
    assert loser.user_id == winners[0] and str(loser) == f"{winner_name} has already taken this conversation."
    conversation = db.session.get(Conversation, conversation_id)
    db.session.refresh(conversation)
    assert (conversation.owner, conversation.assignee_id) == (ConversationOwner.human, winners[0])
    assert _texts(conversation_id, "system") == [("system", f"{winner_name} from the team joined the chat.")]


def test_taking_again_is_harmless_but_a_closed_conversation_must_be_reopened(ctx, tenants):
    conversation_id = _conversation(tenants["a1"])
    with _as(tenants["a1_staff"]):
        handoff.take(conversation_id, user_id=tenants["a1_staff"])
        handoff.take(conversation_id, user_id=tenants["a1_staff"])
        handoff.close(conversation_id, user_id=tenants["a1_staff"])
        with pytest.raises(handoff.InvalidTransition):
            handoff.take(conversation_id, user_id=tenants["a1_staff"])
        db.session.commit()
    assert len(_texts(conversation_id, "system")) == 2  # joined once, closed once


def test_a_client_or_another_tenant_cannot_take(ctx, tenants):
    conversation_id = _conversation(tenants["a1"], owner=ConversationOwner.waiting)
    with _as(tenants["a1_client"]), pytest.raises(handoff.NotAllowed):
        handoff.take(conversation_id, user_id=tenants["a1_client"])
    db.session.rollback()
    with _as(tenants["b1_staff"]), pytest.raises(handoff.NotFound):
        handoff.take(conversation_id, user_id=tenants["b1_staff"])
    db.session.rollback()
    assert db.session.get(Conversation, conversation_id).owner == ConversationOwner.waiting


# --- Requests, round robin and events ------------------------------------------------------------------------

def test_a_handoff_request_is_idempotent_emits_once_and_notifies_the_team(ctx, tenants, recorder):
    conversation_id = _conversation(tenants["a1"])
    with streams.subscribe(conversation_id) as get:
        for _ in range(2):
            handoff.request_handoff(db.session.get(Conversation, conversation_id), reason="The visitor asked.")
            db.session.commit()
        live = _drain(get)
    conversation = db.session.get(Conversation, conversation_id)
    assert (conversation.owner, conversation.needs_human, conversation.flag_reason) == \
        (ConversationOwner.waiting, True, "The visitor asked.")
    assert _texts(conversation_id, "system") == [("system", handoff.HANDOFF_NOTICE)]
    assert [(e.name, e.conversation_id) for e in recorder.seen] == [("handoff.requested", conversation_id)]
    assert [e for e in live if e["type"] == "state"] == [{"type": "state", "owner": "waiting", "needs_human": True}]
    notified = db.session.scalars(select(Notification).where(Notification.template == "handoff_requested")).all()
    assert notified and all(n.context["conversation_id"] == conversation_id for n in notified)
    assert {n.recipient for n in notified} >= {"a1_staff@example.com", "a1_admin@example.com"}
    assert len(notified) == len({n.recipient for n in notified})  # once each, not once per request


def test_round_robin_gives_each_handoff_to_the_available_person_who_waited_longest(ctx, tenants, recorder):
    _available(tenants["a1"], tenants["a1_staff"])
    _available(tenants["a1"], tenants["a1_admin"])
    _available(tenants["a1"], tenants["a_admin"], available=False)  # away: never picked
    assignees = []
    for n in range(4):
        conversation_id = _conversation(tenants["a1"], text=f"visitor {n}")
        handoff.request_handoff(db.session.get(Conversation, conversation_id), reason="asked")
        db.session.commit()
        assignees.append(db.session.get(Conversation, conversation_id).assignee_id)
    first, second = tenants["a1_staff"], tenants["a1_admin"]
    assert assignees == [first, second, first, second]
    assert [e.name for e in recorder.seen].count("handoff.assigned") == 4
    assert db.session.get(Conversation, conversation_id).owner == ConversationOwner.human


def test_a_member_who_became_a_client_is_skipped_by_round_robin(ctx, tenants):
    _available(tenants["a1"], tenants["a1_client"])
    conversation_id = _conversation(tenants["a1"])
    handoff.request_handoff(db.session.get(Conversation, conversation_id), reason="asked")
    db.session.commit()
    assert db.session.get(Conversation, conversation_id).owner == ConversationOwner.waiting


def test_without_automatic_assignment_the_handoff_waits_even_when_someone_is_available(ctx, tenants):
    _available(tenants["a1"], tenants["a1_staff"])
    db.session.add(InboxSettings(workspace_id=tenants["a1"], auto_assign=False))
    db.session.commit()
    conversation_id = _conversation(tenants["a1"])
    handoff.request_handoff(db.session.get(Conversation, conversation_id), reason="asked")
    db.session.commit()
    assert db.session.get(Conversation, conversation_id).owner == ConversationOwner.waiting


def test_assign_reassign_hand_back_close_and_reopen(ctx, tenants, recorder):
    conversation_id = _conversation(tenants["a1"], owner=ConversationOwner.waiting)
    staff, admin = tenants["a1_staff"], tenants["a1_admin"]
    with _as(admin):
        handoff.assign(conversation_id, user_id=staff, by_user_id=admin)
        handoff.assign(conversation_id, user_id=admin, by_user_id=admin)
        with pytest.raises(handoff.NotAllowed, match="does not work"):
            handoff.assign(conversation_id, user_id=tenants["b1_staff"], by_user_id=admin)
        handoff.hand_back(conversation_id, user_id=admin)
        assert db.session.get(Conversation, conversation_id).owner == ConversationOwner.ai
        handoff.close(conversation_id, user_id=admin)
        conversation = handoff.reopen(conversation_id, user_id=staff)
        db.session.commit()
    assert (conversation.owner, conversation.assignee_id, conversation.closed_at) == \
        (ConversationOwner.human, staff, None)
    assert [e.name for e in recorder.seen] == ["handoff.assigned", "handoff.assigned", "handoff.returned",
                                               "conversation.closed", "handoff.assigned"]
    from asthron.models.audit import AuditEntry

    actions = db.session.scalars(select(AuditEntry.action).where(AuditEntry.target_id == conversation_id)
                                 .where(AuditEntry.action.like("conversation.%"))).all()
    assert actions[-5:] == ["conversation.assign", "conversation.assign", "conversation.hand_back",
                            "conversation.close", "conversation.reopen"]


def test_a_visitor_writing_to_a_closed_conversation_brings_it_back_to_the_team(ctx, tenants):
    conversation_id = _conversation(tenants["a1"], owner=ConversationOwner.closed)
    conversation = db.session.get(Conversation, conversation_id)
    conversations.post_visitor_message(conversation, WidgetSettings(workspace_id=tenants["a1"]), "Hello again?")
    db.session.commit()
    assert db.session.get(Conversation, conversation_id).owner == ConversationOwner.waiting
    assert db.session.query(OutboxEntry).filter(OutboxEntry.job == "ai.reply").count() == 0


def test_a_lead_reaching_the_score_threshold_hands_its_conversation_off(ctx, tenants):
    db.session.add(InboxSettings(workspace_id=tenants["a1"], handoff_score_threshold=50))
    low_id, high_id = _conversation(tenants["a1"]), _conversation(tenants["a1"])
    low = Lead(workspace_id=tenants["a1"], conversation_id=low_id, source="ai", email="low@example.com", score=49)
    high = Lead(workspace_id=tenants["a1"], conversation_id=high_id, source="ai", email="high@example.com", score=50)
    db.session.add_all([low, high])
    db.session.flush()
    assert handoff.check_lead_rule(low) is False and handoff.check_lead_rule(high) is True
    db.session.commit()
    assert db.session.get(Conversation, low_id).owner == ConversationOwner.ai
    high_conversation = db.session.get(Conversation, high_id)
    assert high_conversation.owner == ConversationOwner.waiting and "50" in high_conversation.flag_reason


# --- The AI stays silent while a person owns the conversation ------------------------------------------------

class SlowTakeoverProvider(AIProvider):
    """Answers, but while it 'thinks' a staff member takes the conversation in another transaction."""

    name = "takeover"

    def __init__(self):
        self.take = None

    def reply(self, *, messages, model, settings, tools=(), timeout=30.0):
        if self.take:
            thread = threading.Thread(target=self.take)
            thread.start()
            thread.join(timeout=20)
        return Reply(text="An AI answer nobody should see.", usage=Usage(7, 3), model=model)


class RecordingProvider(AIProvider):
    name = "recording-h3"

    def __init__(self):
        self.prompts = []

    def reply(self, *, messages, model, settings, tools=(), timeout=30.0):
        self.prompts.append([m.content for m in messages])
        return Reply(text="Noted by the AI.", usage=Usage(1, 1), model=model)


class Providers:
    def __init__(self):
        self.takeover, self.recording = SlowTakeoverProvider(), RecordingProvider()

    @hookimpl
    def register_ai_providers(self, register):
        register(self.takeover)
        register(self.recording)


@pytest.fixture
def providers(register_plugin):
    return register_plugin(Providers(), "handoff-providers")


def _visit(conversation_id, text):
    """Post a visitor message through the real service (the reply job runs inline on commit)."""
    conversation = db.session.get(Conversation, conversation_id)
    settings = db.session.execute(select(WidgetSettings).where(
        WidgetSettings.workspace_id == conversation.workspace_id)).scalar()
    message = conversations.post_visitor_message(conversation, settings, text)
    db.session.commit()
    return message.id


def _ai_replies(conversation_id):
    return [text for role, text in _texts(conversation_id) if role == "assistant"]


def test_no_ai_reply_is_requested_while_a_person_owns_the_conversation(ctx, tenants):
    db.session.add(WidgetSettings(workspace_id=tenants["a1"]))
    db.session.add(KnowledgeEntry(workspace_id=tenants["a1"], title="Prices", body="A haircut costs 35 EUR."))
    conversation_id = _conversation(tenants["a1"])
    with _as(tenants["a1_staff"]):
        handoff.take(conversation_id, user_id=tenants["a1_staff"])
        db.session.commit()
    _visit(conversation_id, "How much is a haircut?")
    assert _ai_replies(conversation_id) == []
    assert db.session.query(OutboxEntry).filter(OutboxEntry.job == "ai.reply").count() == 0
    with _as(tenants["a1_staff"]):
        handoff.hand_back(conversation_id, user_id=tenants["a1_staff"])
        db.session.commit()
    _visit(conversation_id, "How much is a haircut?")
    assert len(_ai_replies(conversation_id)) == 1 and "35 EUR" in _ai_replies(conversation_id)[0]


def test_a_reply_job_queued_before_the_takeover_does_nothing(ctx, tenants):
    db.session.add(WidgetSettings(workspace_id=tenants["a1"]))
    conversation_id = _conversation(tenants["a1"])
    conversation = db.session.get(Conversation, conversation_id)
    message = conversations.add_message(conversation, "visitor", "Are you open on Sunday?")
    jobs.add(db.session, "ai.reply", conversation_id=conversation_id, message_id=message.id)
    with _as(tenants["a1_staff"]):
        handoff.take(conversation_id, user_id=tenants["a1_staff"])  # same transaction: the job runs after it
        db.session.commit()
    entry = db.session.scalars(select(OutboxEntry).where(OutboxEntry.job == "ai.reply")).one()
    assert entry.status == OutboxStatus.done and _ai_replies(conversation_id) == []


def test_a_takeover_while_the_provider_answers_drops_the_ai_reply(app, ctx, tenants, providers):
    db.session.add(WidgetSettings(workspace_id=tenants["a1"], ai_provider="takeover"))
    conversation_id = _conversation(tenants["a1"])

    def take():
        with app.app_context(), _as(tenants["a1_staff"]):
            handoff.take(conversation_id, user_id=tenants["a1_staff"])
            db.session.commit()
            db.session.remove()

    providers.takeover.take = take
    _visit(conversation_id, "Tell me everything")
    conversation = db.session.get(Conversation, conversation_id)
    assert conversation.owner == ConversationOwner.human
    assert _ai_replies(conversation_id) == []


# --- Internal notes never reach the visitor or the AI ---------------------------------------------------------

def test_notes_stay_out_of_the_visitor_list_the_stream_its_replay_and_the_prompt(ctx, tenants, providers):
    db.session.add(WidgetSettings(workspace_id=tenants["a1"], ai_provider="recording-h3"))
    conversation_id = _conversation(tenants["a1"])
    with streams.subscribe(conversation_id) as visitor_live, \
            streams.subscribe(conversations.staff_channel(tenants["a1"])) as staff_live:
        with _as(tenants["a1_staff"]):
            note = inbox.add_note(conversation_id, user_id=tenants["a1_staff"], text=NOTE)
            db.session.commit()
        visitor_events, staff_events = _drain(visitor_live), _drain(staff_live)
    assert visitor_events == []
    assert [e["message"]["text"] for e in staff_events if e["type"] == "message"] == [NOTE]
    assert NOTE not in json.dumps([conversations.message_json(m) for m in conversations.list_messages(conversation_id)])
    scope = scope_for_user(tenants["a1_staff"])
    assert NOTE not in json.dumps(sse.backlog(conversation_id, scope, 0))
    published = {"type": "message", "message": conversations.message_json(note)}
    assert sse.live_frame(published, 0) == (None, 0)  # even if a note were published, the stream drops it
    _visit(conversation_id, "Can you help me?")
    [prompt] = providers.recording.prompts
    assert not any(NOTE in text for text in prompt) and any("Can you help me?" in text for text in prompt)
    assert _ai_replies(conversation_id) == ["Noted by the AI."]


# --- The visitor API --------------------------------------------------------------------------------------------

@pytest.fixture
def visitor(app, tenants, client):
    """A conversation started through the visitor API in A1; returns (conversation id, token)."""
    limits.reset(app)
    with app.app_context():
        key = db.session.get(Workspace, tenants["a1"]).public_key
        db.session.add(WidgetSettings(workspace_id=tenants["a1"]))
        db.session.commit()
    body = client.post(f"{API}/conversations", json={"key": key}, headers={"Origin": A1}).get_json()
    return body["id"], body["token"]


def _call(client, method, path, token, body=None):
    return client.open(API + path, method=method, json=body,
                       headers={"Origin": A1, "Authorization": f"Bearer {token}"})


def test_the_handoff_button_is_idempotent_and_says_when_to_expect_an_answer(client, visitor, ctx):
    conversation_id, token = visitor
    first = _call(client, "POST", f"/conversations/{conversation_id}/handoff", token)
    again = _call(client, "POST", f"/conversations/{conversation_id}/handoff", token, body={})
    assert first.status_code == again.status_code == 200
    assert first.get_json() == {"owner": "waiting", "staff": None, "away": True, "ask_email": True,
                                "expected_reply": "We usually reply within a few hours."}
    assert _texts(conversation_id, "system") == [("system", handoff.HANDOFF_NOTICE)]
    shown = _call(client, "GET", f"/conversations/{conversation_id}", token).get_json()
    assert shown["owner"] == "waiting" and shown["ask_email"] is True


def test_the_visitor_may_leave_a_valid_email_and_gets_the_transcript_when_staff_reply(client, visitor, ctx, tenants):
    conversation_id, token = visitor
    _call(client, "POST", f"/conversations/{conversation_id}/handoff", token)
    bad = _call(client, "POST", f"/conversations/{conversation_id}/email", token, body={"email": "not-an-email"})
    assert bad.status_code == 400 and bad.get_json()["error"]["message"] == "email is not a valid email address."
    wrong_type = _call(client, "POST", f"/conversations/{conversation_id}/email", token, body={"email": 7})
    assert wrong_type.status_code == 400 and "email" in wrong_type.get_json()["error"]["message"]
    db.session.expire_all()
    assert db.session.get(Conversation, conversation_id).visitor_email is None
    good = _call(client, "POST", f"/conversations/{conversation_id}/email", token, body={"email": "v@example.com"})
    assert good.status_code == 200 and good.get_json() == {"email": "v@example.com"}
    assert _call(client, "GET", f"/conversations/{conversation_id}", token).get_json()["ask_email"] is False
    with _as(tenants["a1_staff"]):
        inbox.reply(conversation_id, user_id=tenants["a1_staff"], text="Hi, I can help.")
        db.session.commit()
        inbox.reply(conversation_id, user_id=tenants["a1_staff"], text="Anything else?")  # same visitor turn
        db.session.commit()
    sent = db.session.scalars(select(Notification).where(Notification.template == "transcript")).all()
    assert [(n.recipient, n.context["conversation_id"]) for n in sent] == [("v@example.com", conversation_id)]
    shown = _call(client, "GET", f"/conversations/{conversation_id}", token).get_json()
    assert (shown["owner"], shown["staff"]) == ("human", "a1_staff")


def test_staff_replies_reach_the_visitor_with_the_staff_name(client, visitor, ctx, tenants):
    conversation_id, token = visitor
    with _as(tenants["a1_staff"]):
        inbox.reply(conversation_id, user_id=tenants["a1_staff"], text="<img src=x onerror=alert(1)> hello")
        db.session.commit()
    messages = _call(client, "GET", f"/conversations/{conversation_id}/messages", token).get_json()["messages"]
    staff = [m for m in messages if m["role"] == "staff"]
    assert [(m["author"], m["text"]) for m in staff] == [("a1_staff", "<img src=x onerror=alert(1)> hello")]


def test_handoff_and_email_need_consent_and_the_conversation_token(client, app, tenants, ctx):
    limits.reset(app)
    key = db.session.get(Workspace, tenants["a1"]).public_key
    db.session.add(WidgetSettings(workspace_id=tenants["a1"], consent_required=True, consent_notice="We keep it."))
    db.session.commit()
    body = client.post(f"{API}/conversations", json={"key": key}, headers={"Origin": A1}).get_json()
    response = _call(client, "POST", f"/conversations/{body['id']}/handoff", body["token"])
    assert response.status_code == 403 and response.get_json()["error"]["code"] == "consent_required"
    response = _call(client, "POST", f"/conversations/{body['id']}/handoff", "wrong-token")
    assert response.status_code == 404
    response = _call(client, "POST", f"/conversations/{body['id']}/email", body["token"], body=[1])
    assert response.status_code == 400
    db.session.expire_all()
    assert db.session.get(Conversation, body["id"]).owner == ConversationOwner.ai
