"""The visitor API (/widget/api/v1): the contract of docs/widget.md, its errors, limits, CORS and stream."""
import hashlib
import json
import threading

import pytest
from sqlalchemy import select

from asthron.extensions import db
from asthron.models.chat import (
    ConsentRecord,
    Conversation,
    ConversationOwner,
    Message,
    UsageEntry,
    WidgetSettings,
)
from asthron.models.jobs import OutboxEntry
from asthron.models.tenancy import Workspace, WorkspaceStatus
from asthron.services import conversations as service
from asthron.services import streams
from asthron.widget import limits

API = "/widget/api/v1"
A1 = "https://a1.example"
B1 = "https://b1.example"
ELSEWHERE = "https://evil.example"


@pytest.fixture
def widget(app, tenants):
    """Tenants with widget settings: A1 needs no consent, A2 requires notice version "3"; fresh limits."""
    limits.reset(app)
    with app.app_context():
        db.session.add(WidgetSettings(workspace_id=tenants["a1"], assistant_name="Ava", colour="#112233"))
        db.session.add(WidgetSettings(workspace_id=tenants["a2"], consent_required=True,
                                      consent_notice="We store this chat.", notice_version="3",
                                      privacy_url="https://a2.example/privacy"))
        keys = {name: db.session.get(Workspace, tenants[name]).public_key for name in ("a1", "a2", "b1")}
        db.session.commit()
    return {**tenants, "keys": keys}


def call(client, method, path, *, origin=A1, token=None, body=None, headers=None, **kwargs):
    """Send one visitor API request with an Origin and an optional bearer token."""
    sent = dict(headers or {})
    if origin:
        sent["Origin"] = origin
    if token:
        sent["Authorization"] = f"Bearer {token}"
    if body is not None:
        kwargs["json"] = body
    return client.open(API + path, method=method, headers=sent, **kwargs)


def start(client, widget, name="a1", origin=A1):
    """Start a conversation in workspace `name`; return its JSON."""
    response = call(client, "POST", "/conversations", origin=origin, body={"key": widget["keys"][name]})
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def post(client, conversation, text, origin=A1):
    return call(client, "POST", f"/conversations/{conversation['id']}/messages", origin=origin,
                token=conversation["token"], body={"text": text})


def error_code(response):
    return response.get_json()["error"]["code"]


def set_owner(app, conversation_id, owner):
    with app.app_context():
        db.session.get(Conversation, conversation_id).owner = owner
        db.session.commit()


# --- config -------------------------------------------------------------------------------------------

def test_config_returns_appearance_and_consent(client, widget):
    response = call(client, "GET", f"/config?key={widget['keys']['a1']}")
    assert response.status_code == 200
    body = response.get_json()
    assert body["workspace"] == {"name": "A One"}
    assert body["appearance"]["assistant_name"] == "Ava" and body["appearance"]["colour"] == "#112233"
    assert set(body["appearance"]) == {"colour", "position", "assistant_name", "greeting", "language", "strings"}
    assert body["consent"] == {"required": False, "notice": "", "version": "1", "privacy_url": None}
    assert response.headers["Access-Control-Allow-Origin"] == A1
    assert "Origin" in response.headers["Vary"]


def test_config_shows_the_consent_notice_when_required(client, widget):
    body = call(client, "GET", f"/config?key={widget['keys']['a2']}", origin="https://a2.example").get_json()
    assert body["consent"] == {"required": True, "notice": "We store this chat.", "version": "3",
                               "privacy_url": "https://a2.example/privacy"}


def test_config_without_settings_row_uses_defaults(client, widget):
    body = call(client, "GET", f"/config?key={widget['keys']['b1']}", origin=B1).get_json()
    assert body["appearance"]["assistant_name"] == "Assistant" and body["appearance"]["strings"] == {}
    assert body["consent"]["required"] is False


@pytest.mark.parametrize("query", ["?key=pk_unknown", "", "?key="])
def test_unknown_or_missing_key_is_not_found(client, widget, query):
    response = call(client, "GET", "/config" + query)
    assert response.status_code == 404 and error_code(response) == "not_found"


def test_request_without_origin_is_refused(client, widget):
    response = call(client, "GET", f"/config?key={widget['keys']['a1']}", origin=None)
    assert response.status_code == 403 and error_code(response) == "origin_not_allowed"


def test_disallowed_origin_is_refused_without_cors_headers(client, widget):
    response = call(client, "GET", f"/config?key={widget['keys']['a1']}", origin=ELSEWHERE)
    assert response.status_code == 403 and error_code(response) == "origin_not_allowed"
    assert "Access-Control-Allow-Origin" not in response.headers


def test_origin_of_another_workspace_is_refused(client, widget):
    response = call(client, "GET", f"/config?key={widget['keys']['a1']}", origin=B1)
    assert response.status_code == 403 and error_code(response) == "origin_not_allowed"


def test_the_apps_own_origin_is_always_allowed(client, widget):
    response = call(client, "GET", f"/config?key={widget['keys']['a1']}", origin="http://localhost")
    assert response.status_code == 200
    assert response.headers["Access-Control-Allow-Origin"] == "http://localhost"


@pytest.mark.parametrize("status", [WorkspaceStatus.suspended, WorkspaceStatus.closed])
def test_unavailable_workspace_refuses_politely(app, client, widget, status):
    conversation = start(client, widget)
    with app.app_context():
        db.session.get(Workspace, widget["a1"]).status = status
        db.session.commit()
    for response in (call(client, "GET", f"/config?key={widget['keys']['a1']}"),
                     call(client, "POST", "/conversations", body={"key": widget["keys"]["a1"]}),
                     post(client, conversation, "Hello?")):
        assert response.status_code == 403
        assert response.get_json()["error"] == {"code": "workspace_unavailable",
                                                "message": "This chat is not available right now."}
        assert response.headers["Access-Control-Allow-Origin"] == A1


# --- CORS preflight -------------------------------------------------------------------------------------

def test_preflight_answers_an_allowed_origin(client, widget):
    conversation = start(client, widget)
    response = call(client, "OPTIONS", f"/conversations/{conversation['id']}/messages",
                    headers={"Access-Control-Request-Method": "POST"})
    assert response.status_code == 204
    assert response.headers["Access-Control-Allow-Origin"] == A1
    assert response.headers["Access-Control-Allow-Methods"] == "GET, POST"
    assert response.headers["Access-Control-Allow-Headers"] == \
        "Content-Type, Authorization, Last-Event-ID, Idempotency-Key"


def test_preflight_for_starting_a_conversation_accepts_a_workspace_origin(client, widget):
    assert call(client, "OPTIONS", "/conversations").status_code == 204
    refused = call(client, "OPTIONS", "/conversations", origin=ELSEWHERE)
    assert refused.status_code == 403 and "Access-Control-Allow-Origin" not in refused.headers
    wildcard = call(client, "OPTIONS", "/conversations", origin="https://a%.example")  # LIKE's wildcard
    assert wildcard.status_code == 403


def test_preflight_refuses_an_origin_the_conversations_workspace_does_not_allow(client, widget):
    conversation = start(client, widget)
    response = call(client, "OPTIONS", f"/conversations/{conversation['id']}/messages", origin=B1)
    assert response.status_code == 403 and "Access-Control-Allow-Origin" not in response.headers
    keyed = call(client, "OPTIONS", f"/config?key={widget['keys']['a1']}", origin=B1)
    assert keyed.status_code == 403


# --- conversations ----------------------------------------------------------------------------------------

def test_start_conversation_returns_id_and_token_stored_as_hash(app, client, widget):
    body = start(client, widget)
    assert body["id"].startswith("c_") and body["owner"] == "ai" and body["consent_required"] is False
    with app.app_context():
        conversation = db.session.get(Conversation, body["id"])
        assert conversation.token_hash == hashlib.sha256(body["token"].encode()).hexdigest()
        assert conversation.workspace_id == widget["a1"] and conversation.origin == A1


def test_start_conversation_says_when_consent_is_required(client, widget):
    assert start(client, widget, "a2", origin="https://a2.example")["consent_required"] is True


@pytest.mark.parametrize("kwargs, field", [
    ({"data": "{not json", "content_type": "application/json"}, "JSON object"),
    ({"data": "", "content_type": "application/json"}, "JSON object"),
    ({"json": ["pk"]}, "JSON object"),
    ({"json": {}}, "key is required"),
    ({"json": {"key": 42}}, "key must be a string"),
    ({"json": {"key": ""}}, "key must not be empty"),
])
def test_start_conversation_validates_the_body(client, widget, kwargs, field):
    response = call(client, "POST", "/conversations", **kwargs)
    assert response.status_code == 400 and error_code(response) == "invalid_request"
    assert field in response.get_json()["error"]["message"]


def test_show_conversation(client, widget):
    conversation = start(client, widget, "a2", origin="https://a2.example")
    response = call(client, "GET", f"/conversations/{conversation['id']}", origin="https://a2.example",
                    token=conversation["token"])
    assert response.get_json() == {"id": conversation["id"], "owner": "ai", "needs_human": False,
                                   "consent": {"required": True, "accepted_version": None},
                                   "staff": None, "away": False, "expected_reply": None, "ask_email": False}


def test_conversation_routes_need_a_token(client, widget):
    conversation = start(client, widget)
    response = call(client, "GET", f"/conversations/{conversation['id']}")
    assert response.status_code == 401 and error_code(response) == "unauthorized"


def test_wrong_token_is_not_found(client, widget):
    conversation = start(client, widget)
    response = call(client, "GET", f"/conversations/{conversation['id']}", token="not-the-token")
    assert response.status_code == 404 and error_code(response) == "not_found"


def test_token_of_another_conversation_is_not_found(client, widget):
    first, second = start(client, widget), start(client, widget)
    for path in ("", "/messages", "/stream"):
        response = call(client, "GET", f"/conversations/{first['id']}{path}", token=second["token"])
        assert response.status_code == 404 and error_code(response) == "not_found"
    assert post(client, {"id": first["id"], "token": second["token"]}, "hi").status_code == 404


# --- consent -----------------------------------------------------------------------------------------------

def test_message_before_consent_is_refused_then_accepted_after(app, client, widget):
    a2 = "https://a2.example"
    conversation = start(client, widget, "a2", origin=a2)
    refused = post(client, conversation, "Hello", origin=a2)
    assert refused.status_code == 403 and error_code(refused) == "consent_required"
    accepted = call(client, "POST", f"/conversations/{conversation['id']}/consent", origin=a2,
                    token=conversation["token"], body={"notice_version": "3"})
    assert accepted.status_code == 201
    assert accepted.get_json()["consent"]["notice_version"] == "3"
    assert post(client, conversation, "Hello", origin=a2).status_code == 201
    with app.app_context():
        record = db.session.execute(select(ConsentRecord)).scalar_one()
        stored = db.session.get(Conversation, conversation["id"])
        assert (record.conversation_id, record.notice_version, record.workspace_id) == \
            (conversation["id"], "3", widget["a2"])
        assert stored.consent_version == "3" and stored.consented_at is not None


@pytest.mark.parametrize("body", [{"notice_version": "2"}, {"notice_version": 3}, {}])
def test_consent_to_another_notice_version_is_refused(app, client, widget, body):
    a2 = "https://a2.example"
    conversation = start(client, widget, "a2", origin=a2)
    response = call(client, "POST", f"/conversations/{conversation['id']}/consent", origin=a2,
                    token=conversation["token"], body=body)
    assert response.status_code == 400 and "notice_version" in response.get_json()["error"]["message"]
    with app.app_context():
        assert db.session.execute(select(ConsentRecord)).first() is None


# --- messages -----------------------------------------------------------------------------------------------

def test_post_message_stores_meters_and_asks_for_a_reply(app, client, widget):
    conversation = start(client, widget)
    response = post(client, conversation, "  What are your opening hours?  ")
    assert response.status_code == 201
    message = response.get_json()["message"]
    assert message["role"] == "visitor" and message["text"] == "What are your opening hours?"
    assert set(message) == {"id", "role", "text", "author", "time"}
    with app.app_context():
        assert db.session.get(Message, message["id"]).conversation_id == conversation["id"]
        usage = db.session.execute(select(UsageEntry).where(UsageEntry.kind == "message")).scalar_one()
        assert (usage.workspace_id, usage.conversation_id) == (widget["a1"], conversation["id"])
        entry = db.session.execute(select(OutboxEntry).where(OutboxEntry.job == "ai.reply")).scalar_one()
        assert entry.payload == {"conversation_id": conversation["id"], "message_id": message["id"]}


@pytest.mark.parametrize("owner", [ConversationOwner.human, ConversationOwner.waiting])
def test_message_to_a_human_owned_conversation_asks_no_ai_reply(app, client, widget, owner):
    conversation = start(client, widget)
    set_owner(app, conversation["id"], owner)
    assert post(client, conversation, "Still there?").status_code == 201
    with app.app_context():
        assert db.session.execute(select(OutboxEntry).where(OutboxEntry.job == "ai.reply")).first() is None


@pytest.mark.parametrize("text, problem", [
    ("", "text must not be empty"), ("   \n ", "text must not be empty"), (None, "text is required"),
    (42, "text must be a string"), (["hi"], "text must be a string"),
    ("x" * 4001, "text must be at most 4000 characters"), ("a\x00b", "NUL"),
])
def test_message_text_is_validated(client, widget, text, problem):
    conversation = start(client, widget)
    response = post(client, conversation, text)
    assert response.status_code == 400 and error_code(response) == "invalid_request"
    assert problem in response.get_json()["error"]["message"]


def test_message_of_4000_characters_is_accepted(client, widget):
    conversation = start(client, widget)
    assert post(client, conversation, "y" * 4000 + "   ").status_code == 201


def test_body_over_16_kb_is_too_large(client, widget):
    conversation = start(client, widget)
    response = call(client, "POST", f"/conversations/{conversation['id']}/messages", token=conversation["token"],
                    data=json.dumps({"text": "z", "pad": "p" * 17000}), content_type="application/json")
    assert response.status_code == 413 and error_code(response) == "payload_too_large"


def test_list_messages_after_an_id_oldest_first(app, client, widget):
    conversation = start(client, widget)
    set_owner(app, conversation["id"], ConversationOwner.human)
    ids = [post(client, conversation, f"m{n}").get_json()["message"]["id"] for n in range(3)]
    path = f"/conversations/{conversation['id']}/messages"
    everything = call(client, "GET", path, token=conversation["token"]).get_json()["messages"]
    assert [m["text"] for m in everything] == ["m0", "m1", "m2"]
    after = call(client, "GET", f"{path}?after={ids[0]}", token=conversation["token"]).get_json()["messages"]
    assert [m["id"] for m in after] == ids[1:]
    bad = call(client, "GET", f"{path}?after=abc", token=conversation["token"])
    assert bad.status_code == 400 and "after" in bad.get_json()["error"]["message"]


def test_list_messages_returns_at_most_100(app, client, widget):
    conversation = start(client, widget)
    with app.app_context():
        stored = db.session.get(Conversation, conversation["id"])
        for n in range(105):
            service.add_message(stored, "visitor", f"m{n}")
        db.session.commit()
    messages = call(client, "GET", f"/conversations/{conversation['id']}/messages",
                    token=conversation["token"]).get_json()["messages"]
    assert len(messages) == 100 and messages[0]["text"] == "m0"


# --- isolation ------------------------------------------------------------------------------------------------

def test_nothing_of_another_workspace_is_reachable(app, client, widget):
    mine = start(client, widget)
    theirs = start(client, widget, "b1", origin=B1)
    set_owner(app, theirs["id"], ConversationOwner.human)
    post(client, theirs, "B secret", origin=B1)
    for path in ("", "/messages", "/stream"):
        # Their conversation with my token, from my site and from theirs: as if it did not exist.
        for origin in (A1, B1):
            response = call(client, "GET", f"/conversations/{theirs['id']}{path}", origin=origin, token=mine["token"])
            assert response.status_code == 404
    assert post(client, {"id": theirs["id"], "token": mine["token"]}, "x").status_code == 404
    # Their token used from my site is refused by origin; their key from my site likewise.
    response = call(client, "GET", f"/conversations/{theirs['id']}/messages", origin=A1, token=theirs["token"])
    assert response.status_code == 403 and "B secret" not in response.get_data(as_text=True)
    assert call(client, "GET", f"/config?key={widget['keys']['b1']}").status_code == 403
    own = call(client, "GET", f"/conversations/{mine['id']}/messages", token=mine["token"])
    assert "B secret" not in own.get_data(as_text=True)


# --- rate limits ----------------------------------------------------------------------------------------------

def test_conversations_per_address_are_limited(app, client, widget, monkeypatch):
    monkeypatch.setitem(app.config, "ASTHRON_WIDGET_LIMIT_CONVERSATIONS_PER_IP", "2 per minute")
    start(client, widget)
    start(client, widget)
    response = call(client, "POST", "/conversations", body={"key": widget["keys"]["a1"]})
    assert response.status_code == 429 and error_code(response) == "rate_limited"
    assert int(response.headers["Retry-After"]) >= 1
    assert response.headers["Access-Control-Allow-Origin"] == A1


def test_messages_per_conversation_are_limited(app, client, widget, monkeypatch):
    monkeypatch.setitem(app.config, "ASTHRON_WIDGET_LIMIT_MESSAGES_PER_CONVERSATION", "2 per minute")
    first, second = start(client, widget), start(client, widget)
    set_owner(app, first["id"], ConversationOwner.human)
    set_owner(app, second["id"], ConversationOwner.human)
    assert [post(client, first, "hi").status_code for _ in range(3)] == [201, 201, 429]
    assert post(client, second, "hi").status_code == 201  # another conversation has its own count


def test_messages_per_address_are_limited(app, client, widget, monkeypatch):
    monkeypatch.setitem(app.config, "ASTHRON_WIDGET_LIMIT_MESSAGES_PER_IP", "1 per minute")
    first, second = start(client, widget), start(client, widget)
    set_owner(app, first["id"], ConversationOwner.human)
    assert post(client, first, "hi").status_code == 201
    refused = post(client, second, "hi")
    assert refused.status_code == 429 and "Retry-After" in refused.headers


def test_writes_per_workspace_are_limited(app, client, widget, monkeypatch):
    monkeypatch.setitem(app.config, "ASTHRON_WIDGET_LIMIT_WRITES_PER_WORKSPACE", "2 per minute")
    start(client, widget)
    start(client, widget)
    assert call(client, "POST", "/conversations", body={"key": widget["keys"]["a1"]}).status_code == 429
    assert start(client, widget, "b1", origin=B1)["id"]  # another workspace is not affected


def test_limits_are_shared_through_redis_between_processes(make_app, redis_url):
    apps = [make_app(RATELIMIT_STORAGE_URI=redis_url, ASTHRON_WIDGET_LIMIT_READS_PER_IP="3 per minute")
            for _ in range(2)]
    keys = []
    for one in apps:
        with one.app_context():
            from asthron.services import tenancy as svc

            agency = svc.create_agency("Agency")
            keys.append(svc.create_workspace(agency=agency, name="W", origins=[A1]).public_key)
            db.session.commit()
    statuses = [call(one.test_client(), "GET", f"/config?key={key}").status_code
                for one, key in zip(apps * 2, keys * 2)]
    assert statuses == [200, 200, 200, 429]


# --- failures ----------------------------------------------------------------------------------------------------

def test_unexpected_failure_is_a_json_503(client, widget, monkeypatch):
    conversation = start(client, widget)

    def broken(*args, **kwargs):
        raise RuntimeError("database on fire")

    monkeypatch.setattr(service, "list_messages", broken)
    response = call(client, "GET", f"/conversations/{conversation['id']}/messages", token=conversation["token"])
    assert response.status_code == 503 and response.is_json
    assert error_code(response) == "temporarily_unavailable"
    assert "fire" not in response.get_data(as_text=True)


def test_unknown_method_is_json(client, widget):
    response = call(client, "DELETE", "/config")
    assert response.status_code == 400 and error_code(response) == "invalid_request"


# --- the stream ----------------------------------------------------------------------------------------------------

def parse_frames(text):
    """Return the stream's frames as dicts of their fields (comments under ':')."""
    frames = []
    for block in text.split("\n\n"):
        if not block.strip():
            continue
        fields = {}
        for line in block.split("\n"):
            name, _, value = line.partition(":")
            fields[name] = value.removeprefix(" ")
        frames.append(fields)
    return frames


@pytest.fixture
def short_streams(app, monkeypatch):
    monkeypatch.setitem(app.config, "ASTHRON_SSE_MAX_SECONDS", 0.3)
    monkeypatch.setitem(app.config, "ASTHRON_SSE_KEEPALIVE_SECONDS", 0.1)


def stored_conversation(app, client, widget, texts):
    conversation = start(client, widget)
    with app.app_context():
        stored = db.session.get(Conversation, conversation["id"])
        ids = [service.add_message(stored, "visitor", text).id for text in texts]
        db.session.commit()
    return conversation, ids


def test_stream_replays_after_last_event_id(app, client, widget, short_streams):
    conversation, ids = stored_conversation(app, client, widget, ["one", "two", "three"])
    response = call(client, "GET", f"/conversations/{conversation['id']}/stream", token=conversation["token"],
                    headers={"Last-Event-ID": str(ids[0])})
    assert response.status_code == 200 and response.mimetype == "text/event-stream"
    assert response.headers["Access-Control-Allow-Origin"] == A1
    frames = parse_frames(response.get_data(as_text=True))
    messages = [f for f in frames if f.get("event") == "message"]
    assert [int(f["id"]) for f in messages] == ids[1:]
    assert [json.loads(f["data"])["text"] for f in messages] == ["two", "three"]
    assert frames[0] == {"retry": "1000"} and frames[-1] == {"retry": "1000"}
    assert {"": "keepalive"} in frames


def test_stream_takes_the_token_and_last_id_from_the_query(app, client, widget, short_streams):
    conversation, ids = stored_conversation(app, client, widget, ["one", "two"])
    response = call(client, "GET", f"/conversations/{conversation['id']}/stream?token={conversation['token']}"
                                   f"&last_event_id={ids[1]}")
    assert response.status_code == 200
    assert not [f for f in parse_frames(response.get_data(as_text=True)) if f.get("event") == "message"]
    bad = call(client, "GET", f"/conversations/{conversation['id']}/stream?token={conversation['token']}"
                              "&last_event_id=x")
    assert bad.status_code == 400 and "last_event_id" in bad.get_json()["error"]["message"]


def read_live(app, conversation, ids, publish):
    """Open the stream, let `publish` send events once subscribed, and return every frame."""
    client = app.test_client()
    response = call(client, "GET", f"/conversations/{conversation['id']}/stream", token=conversation["token"],
                    headers={"Last-Event-ID": str(ids[0])}, buffered=False)
    chunks = iter(response.response)
    first = next(chunks)  # "retry": the stream has subscribed and read the stored messages
    # Another thread, as another request would: the suspended stream keeps its request context here.
    publisher = threading.Thread(target=publish)
    publisher.start()
    publisher.join(timeout=10)
    text = (first if isinstance(first, str) else first.decode()) + "".join(
        c if isinstance(c, str) else c.decode() for c in chunks)
    response.close()
    return parse_frames(text)


def _publish_live(app, conversation_id, ids):
    with app.app_context():
        streams.publish(conversation_id, {"type": "message", "message": {"id": ids[1], "text": "dup"}})
        streams.publish(conversation_id, {"type": "token", "reply_to": ids[1], "text": "Hel"})
        stored = db.session.get(Conversation, conversation_id)
        service.add_message(stored, "assistant", "Hello!")
        db.session.commit()
        streams.publish(conversation_id, {"type": "state", "owner": "waiting", "needs_human": True})


def test_stream_delivers_live_events_without_duplicates(app, client, widget, short_streams):
    conversation, ids = stored_conversation(app, client, widget, ["one", "two"])
    frames = read_live(app, conversation, ids, lambda: _publish_live(app, conversation["id"], ids))
    events = [(f.get("event"), f.get("id"), json.loads(f["data"])) for f in frames if "event" in f]
    assert [e[0] for e in events] == ["message", "token", "message", "state"]
    assert events[0][1] == str(ids[1]) and events[0][2]["text"] == "two"  # stored, not the "dup" event
    assert events[1] == ("token", None, {"reply_to": ids[1], "text": "Hel"})
    assert events[2][2]["text"] == "Hello!" and int(events[2][1]) > ids[1]
    assert events[3][2] == {"owner": "waiting", "needs_human": True}


def test_stream_sends_a_message_committed_while_it_reads_the_backlog_once(app, client, widget, short_streams,
                                                                           monkeypatch):
    from asthron.widget import sse

    conversation, ids = stored_conversation(app, client, widget, ["one", "two"])
    real_backlog = sse.backlog

    def backlog_after_a_reply(*args):
        # The reply commits (and is published) after the stream subscribed, before it reads the database.
        thread = threading.Thread(target=_publish_live, args=(app, conversation["id"], ids))
        thread.start()
        thread.join(timeout=10)
        return real_backlog(*args)

    monkeypatch.setattr(sse, "backlog", backlog_after_a_reply)
    frames = read_live(app, conversation, ids, lambda: None)
    messages = [json.loads(f["data"])["text"] for f in frames if f.get("event") == "message"]
    assert messages == ["two", "Hello!"]
    assert [f["event"] for f in frames if "event" in f] == ["message", "message", "token", "state"]


def test_stream_over_redis_delivers_live_events(make_app, redis_url):
    app = make_app(REDIS_URL=redis_url, ASTHRON_SSE_MAX_SECONDS=0.5, ASTHRON_SSE_KEEPALIVE_SECONDS=5)
    with app.app_context():
        from asthron.services import tenancy as svc

        agency = svc.create_agency("Agency")
        key = svc.create_workspace(agency=agency, name="W", origins=[A1]).public_key
        db.session.commit()
    client = app.test_client()
    conversation = call(client, "POST", "/conversations", body={"key": key}).get_json()
    with app.app_context():
        stored = db.session.get(Conversation, conversation["id"])
        ids = [service.add_message(stored, "visitor", text).id for text in ("one", "two")]
        db.session.commit()
    published = threading.Event()

    def publish():
        _publish_live(app, conversation["id"], ids)
        published.set()

    frames = read_live(app, conversation, ids, publish)
    assert published.is_set()
    assert [f["event"] for f in frames if "event" in f] == ["message", "token", "message", "state"]


def test_unknown_path_under_the_api_is_json(client, widget):
    response = call(client, "GET", "/nothing-here")
    assert response.status_code == 404 and error_code(response) == "not_found"
