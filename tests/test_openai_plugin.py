"""The OpenAI plugin (plugins/openai_provider.py), driven against a real local OpenAI-compatible server."""
import logging

import pytest
from sqlalchemy import select, update

from asthron import registry
from asthron.extensions import db
from asthron.jobs import runner
from asthron.models.base import utcnow
from asthron.models.chat import (
    AIConnection, Conversation, ConversationOwner, KnowledgeEntry, UsageEntry, WidgetSettings,
)
from asthron.models.chat import Message as StoredMessage
from asthron.models.jobs import OutboxEntry, OutboxStatus
from asthron.models.leads import Lead
from asthron.models.tenancy import Workspace
from asthron.providers import secrets
from asthron.providers.ai import AIProviderError, Message, Tool, ToolCall, Usage, collect
from asthron.services import replies, streams
from asthron.widget import limits
from tests import fake_openai as fake

KEY = "sk-h8-test-4f9b2c1de0a7"
CAPTURE_LEAD = Tool(name="capture_lead", description="Save the visitor's contact details.",
                    parameters={"type": "object", "properties": {"email": {"type": "string"},
                                                                 "name": {"type": "string"}},
                                "required": ["email"]})
PROMPT = [Message(role="system", content="You answer for Bakery One."),
          Message(role="user", content="When are you open?")]


@pytest.fixture
def provider(openai_plugin):
    return registry.ai_providers.get("openai")


@pytest.fixture
def settings(fake_openai):
    return {"base_url": fake_openai.base_url, "api_key": KEY, "model": "fake-gpt", "max_tokens": 300}


def stream(provider, settings, **kwargs):
    kwargs.setdefault("messages", PROMPT)
    return list(provider.stream(model=settings["model"], settings=settings, **kwargs))


# --- replies --------------------------------------------------------------------------------------

def test_streamed_text_arrives_in_pieces_and_assembles(provider, settings, fake_openai):
    fake_openai.script(fake.text("We open at eight, every day but Sunday."))
    chunks = stream(provider, settings)
    assert len([c for c in chunks if c.text]) > 1
    assert "".join(c.text for c in chunks) == "We open at eight, every day but Sunday."
    assert chunks[-1].finish_reason == "stop"


def test_streamed_usage_is_the_servers_token_counts(provider, settings, fake_openai):
    fake_openai.script(fake.text("Hi.", usage=(123, 45)))
    reply = collect(stream(provider, settings))
    assert reply.usage == Usage(input_tokens=123, output_tokens=45)
    assert fake_openai.requests[-1]["body"]["stream_options"] == {"include_usage": True}


def test_whole_reply_has_text_usage_and_model(provider, settings, fake_openai):
    fake_openai.script(fake.text("Eight to six.", usage=(30, 4)))
    reply = provider.reply(messages=PROMPT, model="fake-gpt", settings=settings)
    assert (reply.text, reply.usage, reply.model, reply.finish_reason) == \
        ("Eight to six.", Usage(30, 4), "fake-gpt", "stop")
    assert fake_openai.requests[-1]["body"].get("stream") in (None, False)


def test_request_carries_the_prompt_model_and_max_tokens(provider, settings, fake_openai):
    stream(provider, settings)
    body = fake_openai.requests[-1]["body"]
    assert body["model"] == "fake-gpt" and body["max_tokens"] == 300 and body["stream"] is True
    assert body["messages"] == [{"role": "system", "content": "You answer for Bakery One."},
                                {"role": "user", "content": "When are you open?"}]


# --- tool calls -----------------------------------------------------------------------------------

def test_tool_call_split_across_chunks_is_assembled(provider, settings, fake_openai):
    fake_openai.script(fake.tool_call("capture_lead", {"email": "ann@example.com", "name": "Ann Lee"},
                                      call_id="call_7"))
    chunks = stream(provider, settings, tools=(CAPTURE_LEAD,))
    reply = collect(chunks)
    assert reply.tool_calls == (ToolCall(id="call_7", name="capture_lead",
                                         arguments={"email": "ann@example.com", "name": "Ann Lee"}),)
    assert reply.finish_reason == "tool_calls" and chunks[-1].tool_calls == reply.tool_calls


def test_tools_are_sent_as_function_tools(provider, settings, fake_openai):
    stream(provider, settings, tools=(CAPTURE_LEAD,))
    assert fake_openai.requests[-1]["body"]["tools"] == [{"type": "function", "function": {
        "name": "capture_lead", "description": "Save the visitor's contact details.",
        "parameters": dict(CAPTURE_LEAD.parameters)}}]


def test_whole_reply_decodes_tool_call_arguments(provider, settings, fake_openai):
    fake_openai.script(fake.tool_call("capture_lead", {"email": "bo@example.com"}))
    reply = provider.reply(messages=PROMPT, model="fake-gpt", settings=settings, tools=(CAPTURE_LEAD,))
    assert reply.tool_calls[0].arguments == {"email": "bo@example.com"}


def test_tool_call_and_result_go_back_on_the_wire(provider, settings, fake_openai):
    call = ToolCall(id="call_1", name="capture_lead", arguments={"email": "ann@example.com"})
    history = PROMPT + [Message(role="assistant", content="", tool_calls=(call,)),
                        Message(role="tool", content='{"ok": true}', tool_call_id="call_1")]
    stream(provider, settings, messages=history, tools=(CAPTURE_LEAD,))
    sent = fake_openai.requests[-1]["body"]["messages"]
    assert sent[2] == {"role": "assistant", "content": None, "tool_calls": [{
        "id": "call_1", "type": "function",
        "function": {"name": "capture_lead", "arguments": '{"email": "ann@example.com"}'}}]}
    assert sent[3] == {"role": "tool", "content": '{"ok": true}', "tool_call_id": "call_1"}


@pytest.mark.parametrize("streaming", [True, False])
def test_malformed_tool_arguments_are_a_non_retryable_error(provider, settings, fake_openai, streaming):
    fake_openai.script(fake.malformed_tool_arguments("capture_lead"))
    with pytest.raises(AIProviderError) as caught:
        if streaming:
            stream(provider, settings, tools=(CAPTURE_LEAD,))
        else:
            provider.reply(messages=PROMPT, model="fake-gpt", settings=settings, tools=(CAPTURE_LEAD,))
    assert caught.value.retryable is False and "capture_lead" in str(caught.value)


# --- failures -------------------------------------------------------------------------------------

def test_slow_server_is_a_retryable_timeout(provider, settings, fake_openai):
    fake_openai.script(fake.slow(30), fake.slow(30))
    with pytest.raises(AIProviderError) as caught:
        stream(provider, dict(settings, max_retries=1), timeout=0.3)
    assert caught.value.retryable is True
    assert len(fake_openai.requests) == 2  # the first try and one bounded retry


@pytest.mark.parametrize("behaviour", [fake.status(429, retry_after=1), fake.status(500)], ids=["429", "500"])
def test_rate_limit_and_server_error_are_retryable_after_bounded_retries(provider, settings, fake_openai, behaviour):
    fake_openai.script(behaviour, behaviour, behaviour, behaviour)
    with pytest.raises(AIProviderError) as caught:
        stream(provider, settings)
    assert caught.value.retryable is True
    assert len(fake_openai.requests) == 3  # 1 + the default max_retries of 2


def test_a_retry_that_succeeds_returns_the_reply(provider, settings, fake_openai):
    fake_openai.script(fake.status(500), fake.text("Back again."))
    assert collect(stream(provider, settings)).text == "Back again."
    assert len(fake_openai.requests) == 2


@pytest.mark.parametrize("streaming", [True, False])
def test_garbage_body_is_a_non_retryable_error_with_a_safe_message(provider, settings, fake_openai, streaming):
    fake_openai.script(fake.garbage())
    with pytest.raises(AIProviderError) as caught:
        if streaming:
            stream(provider, settings)
        else:
            provider.reply(messages=PROMPT, model="fake-gpt", settings=settings)
    assert caught.value.retryable is False
    assert str(caught.value) == "the AI server answered with something that is not a chat completion"
    assert len(fake_openai.requests) == 1


def test_rejected_key_is_not_retried_and_the_error_does_not_quote_the_server(provider, settings, fake_openai):
    fake_openai.script(fake.status(401))
    with pytest.raises(AIProviderError) as caught:
        stream(provider, settings)
    assert caught.value.retryable is False and "API key" in str(caught.value)
    assert "Scripted" not in str(caught.value) and caught.value.__cause__ is None
    assert len(fake_openai.requests) == 1


def test_unreachable_server_is_retryable(provider, settings):
    with pytest.raises(AIProviderError) as caught:
        stream(provider, dict(settings, base_url="http://127.0.0.1:9/v1", max_retries=0))
    assert caught.value.retryable is True


def test_missing_model_is_a_clear_error(provider, settings, fake_openai):
    with pytest.raises(AIProviderError, match="no model"):
        list(provider.stream(messages=PROMPT, model=None, settings=dict(settings, model=None)))
    assert fake_openai.requests == []


# --- the key --------------------------------------------------------------------------------------

def test_auth_header_carries_the_key_resolved_from_env_and_logs_never_do(provider, fake_openai, monkeypatch,
                                                                         caplog):
    monkeypatch.setenv("H8_FAKE_OPENAI_KEY", KEY)
    settings = secrets.resolve({"base_url": fake_openai.base_url, "api_key": {"$env": "H8_FAKE_OPENAI_KEY"},
                                "model": "fake-gpt"})
    fake_openai.script(fake.text("Hello."), fake.status(500), fake.status(500), fake.status(500), fake.status(401))
    caplog.set_level(logging.DEBUG)
    stream(provider, settings)
    for _ in range(2):
        with pytest.raises(AIProviderError):
            stream(provider, settings)
    assert fake_openai.requests[0]["headers"]["authorization"] == f"Bearer {KEY}"
    assert caplog.records, "the failures should have been logged"
    assert KEY not in caplog.text and KEY[-8:] not in caplog.text


def test_no_key_never_sends_the_ambient_openai_key(provider, settings, fake_openai, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-ambient-should-not-leak")
    stream(provider, dict(settings, api_key=None))
    assert "sk-ambient-should-not-leak" not in fake_openai.requests[-1]["headers"].get("authorization", "")


# --- registration ---------------------------------------------------------------------------------

def test_plugin_declares_openai_as_a_subprocessor_while_loaded(openai_plugin, client):
    listing = client.get("/legal/sub-processors.json").json["subprocessors"]
    [entry] = [e for e in listing if e["source"] == "plugin:openai_provider"]
    assert entry["name"] == "OpenAI, L.L.C." and entry["purpose"] == "AI processing of chat messages"
    assert entry["dpa_url"] == "https://openai.com/policies/data-processing-addendum"


def test_without_the_plugin_there_is_no_openai_provider_or_subprocessor(client):
    assert "openai" not in registry.ai_providers.names()
    listing = client.get("/legal/sub-processors.json").json["subprocessors"]
    assert not [e for e in listing if e["name"] == "OpenAI, L.L.C."]


# --- end to end: a visitor's message answered through the fake server -----------------------------

A1_ORIGIN = "https://a1.example"
E2E_KEY = "sk-h8-e2e-9c3d7aa01f"
INSTRUCTIONS = "You are the front desk of A One. Be brief."


@pytest.fixture
def workspace(openai_plugin, fake_openai, app, tenants, monkeypatch):
    """Workspace A1 answering through an AI connection to the fake server, its key in the environment."""
    monkeypatch.setenv("H8_E2E_OPENAI_KEY", E2E_KEY)
    limits.reset(app)
    with app.app_context():
        connection = AIConnection(name="Fake OpenAI", provider="openai", base_url=fake_openai.base_url,
                                  api_key_ref={"$env": "H8_E2E_OPENAI_KEY"}, default_model="fake-gpt")
        db.session.add(connection)
        db.session.flush()
        db.session.add(WidgetSettings(workspace_id=tenants["a1"], assistant_name="Ava", ai_provider="openai",
                                      ai_connection_id=connection.id, model="fake-gpt", instructions=INSTRUCTIONS,
                                      max_reply_tokens=200))
        db.session.add(KnowledgeEntry(workspace_id=tenants["a1"], title="Opening hours",
                                      body="We are open Monday to Friday from 9:00 to 18:00."))
        key = db.session.get(Workspace, tenants["a1"]).public_key
        db.session.commit()
    return {**tenants, "key": key}


def visitor_conversation(client, key):
    response = client.post("/widget/api/v1/conversations", json={"key": key}, headers={"Origin": A1_ORIGIN})
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def visitor_says(client, conversation, text):
    response = client.post(f"/widget/api/v1/conversations/{conversation['id']}/messages", json={"text": text},
                           headers={"Origin": A1_ORIGIN, "Authorization": f"Bearer {conversation['token']}"})
    assert response.status_code == 201, response.get_json()
    return response.get_json()["message"]["id"]


def rows(model, *where):
    db.session.expire_all()
    return db.session.scalars(select(model).where(*where)).all()


def stored(conversation_id):
    db.session.expire_all()
    return db.session.scalars(select(StoredMessage).where(StoredMessage.conversation_id == conversation_id)
                              .order_by(StoredMessage.id)).all()


def drain(get):
    events = []
    while (event := get(0)) is not None:
        events.append(event)
    return events


def run_due_retry(app, message_id):
    """Run the reply job again if it is waiting for a retry, as the sweeper would once due; say if it ran."""
    [entry] = [e for e in rows(OutboxEntry) if e.payload.get("message_id") == message_id]
    if entry.status != OutboxStatus.pending:
        return False
    db.session.execute(update(OutboxEntry).where(OutboxEntry.id == entry.id).values(available_at=utcnow()))
    db.session.commit()
    runner.execute(app, entry.id)
    return True


def test_visitor_message_gets_a_reply_streamed_from_the_server_and_metered(workspace, client, ctx, fake_openai):
    fake_openai.script(fake.text("We open at nine on weekdays.", usage=(321, 12)))
    conversation = visitor_conversation(client, workspace["key"])
    with streams.subscribe(conversation["id"]) as get:
        message_id = visitor_says(client, conversation, "When are you open?")
        events = drain(get)
    visitor, reply = stored(conversation["id"])
    assert (reply.role.value, reply.text, reply.author) == ("assistant", "We open at nine on weekdays.", "Ava")
    tokens = [e["text"] for e in events if e["type"] == "token" and e["reply_to"] == message_id]
    assert len(tokens) > 1 and "".join(tokens) == reply.text
    [usage] = rows(UsageEntry, UsageEntry.kind == "reply")
    assert (usage.input_tokens, usage.output_tokens, usage.provider, usage.model) == (321, 12, "openai", "fake-gpt")
    [request] = fake_openai.requests
    assert request["headers"]["authorization"] == f"Bearer {E2E_KEY}"
    body = request["body"]
    assert body["model"] == "fake-gpt" and body["max_tokens"] == 200 and body["stream"] is True
    assert body["messages"][0]["role"] == "system" and INSTRUCTIONS in body["messages"][0]["content"]
    assert body["messages"][-1] == {"role": "user", "content": "When are you open?"}
    assert "capture_lead" in {t["function"]["name"] for t in body["tools"]}


def test_capture_lead_proposed_by_the_server_is_executed_in_the_workspace(workspace, client, ctx, fake_openai):
    fake_openai.script(fake.tool_call("capture_lead", {"email": "ann@example.com", "name": "Ann Lee"},
                                      call_id="call_lead1", usage=(50, 10)),
                       fake.text("Thanks Ann, the team will write to you.", usage=(70, 9)))
    conversation = visitor_conversation(client, workspace["key"])
    visitor_says(client, conversation, "I'm Ann, ann@example.com, please call me back.")
    [lead] = rows(Lead)
    assert (lead.workspace_id, lead.email, lead.name, lead.conversation_id) == \
        (workspace["a1"], "ann@example.com", "Ann Lee", conversation["id"])
    reply = stored(conversation["id"])[-1]
    assert "Thanks Ann" in reply.text and reply.meta["tools"] == ["capture_lead"]
    follow_up = fake_openai.requests[1]["body"]["messages"]
    assert follow_up[-2]["tool_calls"][0]["id"] == "call_lead1"
    assert follow_up[-1]["role"] == "tool" and follow_up[-1]["tool_call_id"] == "call_lead1"
    assert '"ok": true' in follow_up[-1]["content"]
    [usage] = rows(UsageEntry, UsageEntry.kind == "reply")
    assert (usage.input_tokens, usage.output_tokens) == (50 + 70, 10 + 9)


def test_server_errors_retry_then_fall_back_and_flag_for_a_human(workspace, app, client, ctx, fake_openai, caplog):
    # Retry-After keeps the SDK's own back-off short; the job's back-off is made due by run_due_retry.
    fake_openai.default = fake.status(500, retry_after=0.01)
    conversation = visitor_conversation(client, workspace["key"])
    message_id = visitor_says(client, conversation, "When are you open?")
    assert [m.role.value for m in stored(conversation["id"])] == ["visitor"]  # kept; the reply awaits a retry
    retries = 0
    while retries < 5 and run_due_retry(app, message_id):
        retries += 1
    assert retries == 2  # the job's three attempts in all
    visitor, reply = stored(conversation["id"])
    assert visitor.text == "When are you open?" and reply.text == replies.FALLBACK_TEXT
    row = db.session.get(Conversation, conversation["id"])
    assert (row.owner, row.needs_human, row.flag_reason) == (ConversationOwner.waiting, True, replies.FAILURE_REASON)
    assert len(fake_openai.requests) == 3 * 3  # each job attempt: 1 + 2 SDK tries
    assert rows(UsageEntry, UsageEntry.kind == "reply") == []
    assert E2E_KEY not in caplog.text


def test_a_500_then_an_answer_is_a_normal_reply(workspace, client, ctx, fake_openai):
    fake_openai.script(fake.status(500, retry_after=0.01), fake.text("Nine to six."))
    conversation = visitor_conversation(client, workspace["key"])
    visitor_says(client, conversation, "When are you open?")
    assert stored(conversation["id"])[-1].text == "Nine to six."
    assert not db.session.get(Conversation, conversation["id"]).needs_human
