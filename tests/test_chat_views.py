"""Admin views for conversations, leads and the knowledge base: text stays text, tenants stay apart."""
import pytest
from sqlalchemy import select

from asthron.extensions import db
from asthron.models.chat import Conversation, ConversationOwner, KnowledgeEntry
from asthron.models.leads import Lead
from asthron.services import conversations
from asthron.tenancy import scope_for_user, scoped
from tests.conftest import csrf_token

XSS = "<img src=x onerror=alert(1)>"
ESCAPED = "&lt;img src=x onerror=alert(1)&gt;"


@pytest.fixture
def chats(app, tenants):
    """A conversation in A1 with a hostile message and a lead, and one in B1; return their ids."""
    with app.app_context():
        ids = {}
        for key, ws in (("a1", tenants["a1"]), ("b1", tenants["b1"])):
            conversation = Conversation(workspace_id=ws, token_hash="0" * 64, owner=ConversationOwner.waiting,
                                        needs_human=True, flag_reason=f"flag-of-{key}")
            db.session.add(conversation)
            db.session.flush()
            conversations.add_message(conversation, "visitor", f"Hello from {key} {XSS}")
            conversations.add_message(conversation, "assistant", f"Answer for {key} <script>x()</script>",
                                      author=f"Bot <b>{key}</b>")
            db.session.add(Lead(workspace_id=ws, conversation_id=conversation.id, source="ai",
                                email=f"lead-{key}@example.com", name=f"Lead {key} {XSS}"))
            ids[key] = conversation.id
        db.session.commit()
        return {**tenants, **{f"conv_{k}": v for k, v in ids.items()}}


def test_transcript_shows_messages_as_text(client, auth, chats):
    auth.login("a1_staff")
    response = client.get(f"/conversationview/show/{chats['conv_a1']}")
    body = response.get_data(as_text=True)
    assert response.status_code == 200
    assert f"Hello from a1 {ESCAPED}" in body
    assert "Answer for a1 &lt;script&gt;x()&lt;/script&gt;" in body and "Bot &lt;b&gt;a1&lt;/b&gt;" in body
    assert XSS not in body and "<script>x()" not in body
    assert body.index("Hello from a1") < body.index("Answer for a1")  # oldest first


def test_message_and_lead_lists_escape_text(client, auth, chats):
    auth.login("a1_staff")
    for url in ("/messageview/list/", "/leadview/list/"):
        body = client.get(url).get_data(as_text=True)
        assert ESCAPED in body and XSS not in body, url


def test_conversation_list_is_scoped_to_the_workspace(client, auth, chats):
    auth.login("a1_staff")
    body = client.get("/conversationview/list/").get_data(as_text=True)
    assert "flag-of-a1" in body and "flag-of-b1" not in body
    auth.logout()
    auth.login("b1_staff")
    body = client.get("/conversationview/list/").get_data(as_text=True)
    assert "flag-of-b1" in body and "flag-of-a1" not in body


def test_another_tenant_gets_404_for_a_conversation_message_or_lead(client, auth, chats, ctx):
    auth.login("b1_staff")
    assert client.get(f"/conversationview/show/{chats['conv_a1']}").status_code == 404
    lead_id = db.session.execute(select(Lead.id).where(Lead.workspace_id == chats["a1"])).scalar()
    assert client.get(f"/leadview/show/{lead_id}").status_code == 404
    for url in ("/messageview/list/", "/leadview/list/"):
        body = client.get(url).get_data(as_text=True)
        assert "from a1" not in body and "lead-a1@" not in body and "Lead a1" not in body, url


def test_operator_sees_no_conversations(client, auth, chats, ctx):
    auth.login("operator")
    for url in ("/conversationview/list/", f"/conversationview/show/{chats['conv_a1']}", "/messageview/list/",
                "/leadview/list/"):
        response = client.get(url)
        body = response.get_data(as_text=True)
        assert response.status_code != 200 or ("flag-of" not in body and "Hello from" not in body), url
        assert "flag-of-a1" not in body and "Hello from" not in body and "lead-a1@" not in body, url
    # Even a query outside the views finds nothing: operators have no data scope.
    with scoped(scope_for_user(chats["operator"])):
        assert db.session.execute(select(Conversation)).scalars().all() == []
        assert db.session.execute(select(Lead)).scalars().all() == []


def test_client_reads_conversations_but_cannot_change_knowledge(client, auth, chats):
    auth.login("a1_client")
    assert client.get(f"/conversationview/show/{chats['conv_a1']}").status_code == 200
    assert client.get("/knowledgeentryview/add").status_code in (302, 403)


def _add_entry(client, **fields):
    token = csrf_token(client, "/knowledgeentryview/add")
    return client.post("/knowledgeentryview/add", data={"csrf_token": token, **fields})


def test_admin_adds_and_edits_knowledge(client, auth, chats, ctx):
    auth.login("a1_admin")
    response = _add_entry(client, workspace=chats["a1"], kind="faq", title="Parking",
                          body="Park behind the building.")
    assert response.status_code == 302
    entry = db.session.execute(select(KnowledgeEntry)).scalar_one()
    assert (entry.workspace_id, entry.kind, entry.title) == (chats["a1"], "faq", "Parking")
    token = csrf_token(client, f"/knowledgeentryview/edit/{entry.id}")
    response = client.post(f"/knowledgeentryview/edit/{entry.id}",
                           data={"csrf_token": token, "kind": "document", "title": "Parking",
                                 "body": "Park in the garage."})
    assert response.status_code == 302
    db.session.expire_all()
    assert (entry.kind, entry.body) == ("document", "Park in the garage.")


@pytest.mark.parametrize("fields", [
    {"kind": "faq", "title": "", "body": "x"},
    {"kind": "faq", "title": "x" * 301, "body": "x"},
    {"kind": "faq", "title": "Parking", "body": ""},
    {"kind": "poem", "title": "Parking", "body": "x"},
])
def test_invalid_knowledge_is_refused(client, auth, chats, ctx, fields):
    auth.login("a1_admin")
    assert _add_entry(client, workspace=chats["a1"], **fields).status_code == 400
    assert db.session.query(KnowledgeEntry).count() == 0


def test_knowledge_cannot_be_added_to_another_workspace(client, auth, chats, ctx):
    auth.login("a1_admin")
    form = client.get("/knowledgeentryview/add").get_data(as_text=True)
    assert "A One" in form and "B One" not in form and "A Two" not in form
    response = _add_entry(client, workspace=chats["b1"], kind="faq", title="Hijack", body="x")
    assert response.status_code in (400, 404)
    assert db.session.query(KnowledgeEntry).count() == 0
