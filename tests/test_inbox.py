"""The staff inbox at /inbox/: tabs, actions, roles, CSRF, tenants, text kept as text, the live stream."""
import json
import threading

import pytest
from sqlalchemy import select

from asthron.extensions import db
from asthron.models.chat import Conversation, ConversationOwner, Message, MessageRole
from asthron.models.inbox import CannedReply, InboxSettings, StaffAvailability
from asthron.services import conversations
from tests.conftest import csrf_token

XSS = "<img src=x onerror=alert(1)><script>alert(2)</script>"


@pytest.fixture
def chats(app, tenants):
    """Conversations: A1 waiting (with hostile visitor text), A2 AI-owned, B1 waiting; plus a canned reply."""
    with app.app_context():
        ids = {}
        for key, owner in (("a1", ConversationOwner.waiting), ("a2", ConversationOwner.ai),
                           ("b1", ConversationOwner.waiting)):
            conversation = Conversation(workspace_id=tenants[key], token_hash="0" * 64, owner=owner,
                                        needs_human=owner == ConversationOwner.waiting)
            db.session.add(conversation)
            db.session.flush()
            conversations.add_message(conversation, "visitor", f"Hello from {key} {XSS}")
            ids[f"conv_{key}"] = conversation.id
        db.session.add(CannedReply(workspace_id=tenants["a1"], title="Hours", body="We open at 9 <b>sharp</b>."))
        db.session.commit()
    return {**tenants, **ids}


def _post(client, url, data=None, *, page="/inbox/", as_json=True):
    token = csrf_token(client, page)
    if as_json:
        return client.post(url, json=data or {}, headers={"X-CSRFToken": token, "Accept": "application/json"})
    return client.post(url, data={**(data or {}), "csrf_token": token})


def _conversation(conversation_id):
    db.session.expire_all()
    return db.session.get(Conversation, conversation_id)


def test_tabs_list_the_right_conversations(client, auth, chats):
    auth.login("a1_staff")
    waiting = client.get("/inbox/?tab=waiting").get_data(as_text=True)
    assert chats["conv_a1"] in waiting and chats["conv_b1"] not in waiting
    assert client.get("/inbox/?tab=mine").get_data(as_text=True).count("data-id=\"c_") == 0
    _post(client, f"/inbox/c/{chats['conv_a1']}/take")
    mine = client.get("/inbox/api/list?tab=mine").get_json()
    assert [c["id"] for c in mine["conversations"]] == [chats["conv_a1"]]
    assert mine["counts"]["waiting"] == 0 and mine["counts"]["mine"] == 1
    _post(client, f"/inbox/c/{chats['conv_a1']}/close")
    closed = client.get("/inbox/api/list?tab=closed").get_json()["conversations"]
    assert [c["id"] for c in closed] == [chats["conv_a1"]]


def test_agency_staff_see_all_their_workspaces_and_can_filter_one(client, auth, chats):
    auth.login("a_admin")
    ids = {c["id"] for c in client.get("/inbox/api/list?tab=open").get_json()["conversations"]}
    assert ids == {chats["conv_a1"], chats["conv_a2"]}
    narrowed = client.get(f"/inbox/api/list?tab=open&workspace={chats['a2']}").get_json()["conversations"]
    assert [c["id"] for c in narrowed] == [chats["conv_a2"]]
    assert client.get(f"/inbox/api/list?workspace={chats['b1']}").status_code == 404
    assert client.get(f"/inbox/?workspace={chats['b1']}").status_code == 404


def test_reply_and_note_from_the_inbox(client, auth, chats, ctx):
    auth.login("a1_staff")
    url = f"/inbox/c/{chats['conv_a1']}"
    reply = _post(client, f"{url}/reply", {"text": "  Happy to help!  "}, page=url)
    assert reply.status_code == 200
    assert reply.get_json()["message"] | {"id": 0, "time": None} == {
        "id": 0, "time": None, "role": "staff", "text": "Happy to help!", "author": "a1_staff", "internal": False}
    assert reply.get_json()["conversation"]["owner"] == "human"  # answering takes the conversation
    note = _post(client, f"{url}/note", {"text": "check their order"}, page=url)
    assert note.status_code == 200 and note.get_json()["message"]["internal"] is True
    empty = _post(client, f"{url}/reply", {"text": "   "}, page=url)
    assert empty.status_code == 400 and empty.get_json()["errors"] == {"text": "Write something first."}
    long = _post(client, f"{url}/reply", {"text": "x" * 4001}, page=url)
    assert long.status_code == 400 and "4000" in long.get_json()["errors"]["text"]
    roles = [m.role for m in db.session.scalars(select(Message).where(Message.conversation_id == chats["conv_a1"])
                                                .order_by(Message.id))]
    assert roles == [MessageRole.visitor, MessageRole.system, MessageRole.staff, MessageRole.note]


def test_a_plain_form_post_works_without_javascript(client, auth, chats):
    auth.login("a1_staff")
    url = f"/inbox/c/{chats['conv_a1']}"
    response = _post(client, f"{url}/reply", {"text": "Sent without scripts"}, page=url, as_json=False)
    assert response.status_code == 302 and response.headers["Location"].endswith(url)
    assert "Sent without scripts" in client.get(url).get_data(as_text=True)


def test_the_second_taker_gets_409_naming_who_has_it(client, app, auth, chats, ctx):
    auth.login("a1_admin")
    assert _post(client, f"/inbox/c/{chats['conv_a1']}/take").status_code == 200
    auth.logout()
    auth.login("a1_staff")
    response = _post(client, f"/inbox/c/{chats['conv_a1']}/take")
    assert response.status_code == 409
    assert response.get_json() == {"error": "a1_admin has already taken this conversation.", "taken_by": "a1_admin"}
    assert _conversation(chats["conv_a1"]).assignee_id == chats["a1_admin"]


def test_assign_hand_back_and_reopen_through_the_inbox(client, auth, chats):
    auth.login("a1_admin")
    url = f"/inbox/c/{chats['conv_a1']}"
    assigned = _post(client, f"{url}/assign", {"user_id": chats["a1_staff"]})
    assert assigned.status_code == 200 and assigned.get_json()["conversation"]["assignee"] == "a1_staff"
    outsider = _post(client, f"{url}/assign", {"user_id": chats["b1_staff"]})
    assert outsider.status_code == 403
    assert _post(client, f"{url}/assign", {"user_id": "x"}).status_code == 400
    assert _post(client, f"{url}/hand-back").get_json()["conversation"]["owner"] == "ai"
    assert _post(client, f"{url}/reopen").status_code == 409  # not closed
    assert _post(client, f"{url}/close").get_json()["conversation"]["owner"] == "closed"
    assert _post(client, f"{url}/reopen").get_json()["conversation"]["owner"] == "human"


def test_posts_without_a_csrf_token_are_refused(client, auth, chats):
    auth.login("a1_staff")
    response = client.post(f"/inbox/c/{chats['conv_a1']}/take", json={}, headers={"Accept": "application/json"})
    assert response.status_code == 400
    assert client.post(f"/inbox/c/{chats['conv_a1']}/reply", data={"text": "hi"}).status_code == 400
    with client.application.app_context():
        assert _conversation(chats["conv_a1"]).owner == ConversationOwner.waiting


def test_a_client_reads_the_inbox_but_cannot_answer(client, auth, chats, ctx):
    auth.login("a1_client")
    page = client.get(f"/inbox/c/{chats['conv_a1']}")
    assert page.status_code == 200 and "Hello from a1" in page.get_data(as_text=True)
    assert "inbox-reply" not in page.get_data(as_text=True)
    for action, data in (("take", {}), ("reply", {"text": "hi"}), ("note", {"text": "hi"}), ("close", {})):
        response = _post(client, f"/inbox/c/{chats['conv_a1']}/{action}", data)
        assert response.status_code == 403, action
    response = _post(client, "/inbox/availability", {"workspace_id": chats["a1"], "available": True})
    assert response.status_code == 403
    assert _conversation(chats["conv_a1"]).owner == ConversationOwner.waiting
    assert db.session.query(StaffAvailability).count() == 0


def test_the_operator_has_no_inbox(client, auth, chats):
    auth.login("operator")
    assert client.get("/inbox/").status_code in (302, 403)
    assert client.get(f"/inbox/api/c/{chats['conv_a1']}").status_code in (302, 403)


def test_another_tenant_gets_404_for_every_inbox_route_and_nothing_changes(client, auth, chats, ctx):
    auth.login("b1_staff")
    conversation = chats["conv_a1"]
    for url in (f"/inbox/c/{conversation}", f"/inbox/api/c/{conversation}"):
        response = client.get(url)
        assert response.status_code == 404 and "Hello from a1" not in response.get_data(as_text=True), url
    for action, data in (("take", {}), ("assign", {"user_id": chats["b1_staff"]}), ("hand-back", {}),
                         ("close", {}), ("reopen", {}), ("reply", {"text": "hijack"}), ("note", {"text": "x"})):
        assert _post(client, f"/inbox/c/{conversation}/{action}", data).status_code == 404, action
    assert _post(client, "/inbox/availability", {"workspace_id": chats["a1"], "available": True}).status_code == 404
    listed = client.get("/inbox/api/list?tab=open").get_json()["conversations"]
    assert [c["id"] for c in listed] == [chats["conv_b1"]]
    stored = _conversation(conversation)
    assert (stored.owner, stored.assignee_id) == (ConversationOwner.waiting, None)
    assert [m.role for m in stored.messages] == [MessageRole.visitor]
    assert db.session.query(StaffAvailability).count() == 0
    from asthron.models.audit import AuditEntry

    denials = db.session.scalars(select(AuditEntry).where(AuditEntry.action == "tenant.denied")).all()
    assert denials and all(d.target_id == conversation for d in denials)


def test_visitor_and_staff_text_is_inert_in_the_inbox(client, auth, chats, ctx):
    auth.login("a1_staff")
    url = f"/inbox/c/{chats['conv_a1']}"
    _post(client, f"{url}/note", {"text": f"note {XSS}"}, page=url)
    body = client.get(url).get_data(as_text=True)
    for raw in (XSS, "<b>sharp</b>"):
        assert raw not in body
    assert "&lt;img src=x onerror=alert(1)&gt;&lt;script&gt;alert(2)&lt;/script&gt;" in body
    data = client.get(f"/inbox/api/c/{chats['conv_a1']}")
    assert data.mimetype == "application/json"
    assert [m["text"] for m in data.get_json()["messages"]][-1] == f"note {XSS}"


def test_availability_toggle_and_round_robin(client, auth, chats, ctx):
    auth.login("a1_staff")
    assert _post(client, "/inbox/availability", {"workspace_id": chats["a1"], "available": True}).status_code == 200
    row = db.session.scalars(select(StaffAvailability)).one()
    assert (row.user_id, row.workspace_id, row.available) == (chats["a1_staff"], chats["a1"], True)
    form = _post(client, "/inbox/availability", {"workspace_id": str(chats["a1"]), "available": "0"}, as_json=False)
    assert form.status_code == 302
    db.session.expire_all()
    assert db.session.scalars(select(StaffAvailability)).one().available is False


def test_canned_replies_and_inbox_settings_are_managed_by_admins(client, auth, chats, ctx):
    auth.login("a1_admin")
    token = csrf_token(client, "/cannedreplyview/add")
    response = client.post("/cannedreplyview/add", data={"csrf_token": token, "workspace": str(chats["a1"]),
                                                         "title": "Prices", "body": "See our price list."})
    assert response.status_code == 302
    assert db.session.scalars(select(CannedReply.title).order_by(CannedReply.title)).all() == ["Hours", "Prices"]
    page = client.get(f"/inbox/c/{chats['conv_a1']}").get_data(as_text=True)
    assert 'data-body="See our price list."' in page and 'data-body="We open at 9 &lt;b&gt;sharp&lt;/b&gt;."' in page
    assert client.get("/inboxsettingsview/list/").status_code == 200
    pk = db.session.scalar(select(InboxSettings.id).where(InboxSettings.workspace_id == chats["a1"]))
    token = csrf_token(client, f"/inboxsettingsview/edit/{pk}")
    response = client.post(f"/inboxsettingsview/edit/{pk}", data={
        "csrf_token": token, "auto_assign": "y", "expected_reply": "Within 10 minutes.",
        "ask_email_when_away": "y", "handoff_score_threshold": "-5"})
    assert response.status_code == 400
    response = client.post(f"/inboxsettingsview/edit/{pk}", data={
        "csrf_token": token, "expected_reply": "Within 10 minutes.", "handoff_score_threshold": "40"})
    assert response.status_code == 302
    db.session.expire_all()
    saved = db.session.get(InboxSettings, pk)
    assert (saved.auto_assign, saved.expected_reply, saved.handoff_score_threshold) == (False, "Within 10 minutes.", 40)
    auth.logout()
    auth.login("a1_staff")
    assert client.get("/inboxsettingsview/list/").status_code in (302, 403)
    assert client.get("/cannedreplyview/add").status_code in (302, 403)


# --- The live stream ------------------------------------------------------------------------------------------

def _parse(text):
    frames = []
    for block in text.split("\n\n"):
        fields = dict(line.partition(": ")[::2] for line in block.split("\n") if line and not line.startswith(":"))
        if "event" in fields:
            frames.append((fields["event"], json.loads(fields["data"])))
    return frames


def _read_stream(app, client, url, act):
    response = client.get(url, buffered=False)
    assert response.status_code == 200 and response.mimetype == "text/event-stream"
    chunks = iter(response.response)
    first = next(chunks)  # subscribed: what is published from now on arrives
    worker = threading.Thread(target=act)
    worker.start()
    worker.join(timeout=20)
    text = (first if isinstance(first, str) else first.decode()) + "".join(
        c if isinstance(c, str) else c.decode() for c in chunks)
    response.close()
    return _parse(text)


def _visitor_writes_and_staff_take(app, chats):
    with app.app_context():
        from asthron.services import handoff
        from asthron.tenancy import scope_for_user, scoped

        for key in ("a1", "b1"):
            conversation = db.session.get(Conversation, chats[f"conv_{key}"])
            conversations.add_message(conversation, "visitor", f"Anyone there? {key}")
        db.session.commit()
        with scoped(scope_for_user(chats["a1_admin"])):
            handoff.take(chats["conv_a1"], user_id=chats["a1_admin"])
            db.session.commit()
        db.session.remove()


@pytest.mark.parametrize("use_redis", [False, True], ids=["embedded", "redis"])
def test_staff_see_new_messages_and_owner_changes_live(app, client, auth, chats, monkeypatch, request, use_redis):
    if use_redis:
        monkeypatch.setitem(app.config, "REDIS_URL", request.getfixturevalue("redis_url"))
    monkeypatch.setitem(app.config, "ASTHRON_SSE_MAX_SECONDS", 1.0)
    monkeypatch.setitem(app.config, "ASTHRON_SSE_KEEPALIVE_SECONDS", 0.2)
    auth.login("a1_staff")
    frames = _read_stream(app, client, "/inbox/stream", lambda: _visitor_writes_and_staff_take(app, chats))
    texts = [data["message"]["text"] for kind, data in frames if kind == "message"]
    assert "Anyone there? a1" in texts and not any("b1" in text for text in texts)
    changes = [data for kind, data in frames if kind == "conversation"]
    assert [(c["conversation_id"], c["owner"], c["assignee"]) for c in changes] == \
        [(chats["conv_a1"], "human", "a1_admin")]


# --- The demo ----------------------------------------------------------------------------------------------

def test_the_demo_seeds_available_staff_canned_replies_and_each_state_once(ctx, monkeypatch):
    from flask_appbuilder.security.sqla.models import User

    from asthron.services import demo

    monkeypatch.setenv("ASTHRON_DEMO_PASSWORD", "demo password long enough")
    demo.seed()
    demo.seed()
    staff = db.session.scalar(select(User.id).where(User.username == "staff"))
    bluebell = db.session.scalar(select(StaffAvailability.workspace_id).where(StaffAvailability.user_id == staff))
    owners = sorted(o.value for o in db.session.scalars(select(Conversation.owner).where(
        Conversation.workspace_id == bluebell)))
    assert owners == ["ai", "closed", "human", "waiting"]
    mine = db.session.scalars(select(Conversation).where(Conversation.owner == ConversationOwner.human,
                                                         Conversation.workspace_id == bluebell)).one()
    assert mine.assignee_id == staff
    assert db.session.query(Conversation).count() == 12  # four per demo workspace, not eight
    assert db.session.query(CannedReply).count() == 9 and db.session.query(InboxSettings).count() == 3
    available = db.session.scalars(select(StaffAvailability).where(StaffAvailability.available.is_(True))).all()
    assert {a.user_id for a in available} >= {staff}


def test_staff_elsewhere_is_still_read_only_where_they_are_a_client(client, auth, chats, ctx):
    from flask_appbuilder.security.sqla.models import User

    from asthron.models.tenancy import Role, Workspace
    from asthron.services import tenancy as svc

    client_user = db.session.get(User, chats["a1_client"])
    svc.add_member(user=client_user, role=Role.staff, workspace=db.session.get(Workspace, chats["a2"]))
    db.session.commit()
    auth.login("a1_client")
    assert _post(client, f"/inbox/c/{chats['conv_a1']}/reply", {"text": "hi"}).status_code == 403
    assert _post(client, f"/inbox/c/{chats['conv_a2']}/take").status_code == 200
    assert _conversation(chats["conv_a1"]).owner == ConversationOwner.waiting
