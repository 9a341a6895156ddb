"""The widget's lead form (GET lead-form, POST lead) and the AI's capture_lead tool through the real reply path."""
import pytest
from sqlalchemy import func, select

from asthron.default_plugins import offline_ai
from asthron.extensions import db
from asthron.hookspecs import hookimpl
from asthron.models.chat import WidgetSettings
from asthron.models.leads import FieldKind, Lead, LeadField, LeadSource
from asthron.models.tenancy import Workspace
from asthron.providers.ai import AIProvider, Reply, ToolCall, Usage
from asthron.services import conversations, prompts, streams
from asthron.widget import limits
from tests.test_widget_api import call, start

A1, A2 = "https://a1.example", "https://a2.example"


@pytest.fixture
def widget(app, tenants):
    """A1 with a required select and a question field; A2 requires consent to notice "3"."""
    limits.reset(app)
    with app.app_context():
        db.session.add(WidgetSettings(workspace_id=tenants["a1"], lead_form="after_reply"))
        db.session.add(WidgetSettings(workspace_id=tenants["a2"], consent_required=True, notice_version="3"))
        db.session.add(LeadField(workspace_id=tenants["a1"], key="plan", label="Plan", kind=FieldKind.select,
                                 options=["Basic", "Pro"], required=True, position=5,
                                 question="Which plan are you interested in?"))
        db.session.add(LeadField(workspace_id=tenants["a1"], key="team_size", label="Team size",
                                 kind=FieldKind.number, position=6, help_text="People who will use it"))
        keys = {name: db.session.get(Workspace, tenants[name]).public_key for name in ("a1", "a2", "b1")}
        db.session.commit()
    return {**tenants, "keys": keys}


def lead_count(app):
    with app.app_context():
        return db.session.scalar(select(func.count(Lead.id)))


def test_the_form_lists_the_workspace_fields_in_order(client, widget):
    conv = start(client, widget)
    response = call(client, "GET", f"/conversations/{conv['id']}/lead-form", token=conv["token"])
    assert response.status_code == 200
    body = response.get_json()
    assert [f["key"] for f in body["fields"]] == ["name", "email", "phone", "plan", "team_size"]
    plan = body["fields"][3]
    assert plan == {"key": "plan", "label": "Plan", "kind": "select", "required": True, "help_text": None,
                    "options": ["Basic", "Pro"], "question": "Which plan are you interested in?"}
    assert body["show"] == "after_reply" and body["captured"] is False
    config = call(client, "GET", f"/config?key={widget['keys']['a1']}").get_json()
    assert config["lead_form"] == "after_reply"


def test_valid_answers_make_a_lead_of_the_conversation(client, widget, app):
    conv = start(client, widget)
    response = call(client, "POST", f"/conversations/{conv['id']}/lead", token=conv["token"],
                    body={"fields": {"name": "Ada", "email": "Ada@Example.com", "plan": "Pro", "team_size": "4"}})
    assert response.status_code == 201, response.get_json()
    with app.app_context():
        lead = db.session.get(Lead, response.get_json()["lead"]["id"])
        assert (lead.email, lead.values, lead.source, lead.conversation_id) == (
            "ada@example.com", {"plan": "Pro", "team_size": 4}, LeadSource.widget, conv["id"])
    form = call(client, "GET", f"/conversations/{conv['id']}/lead-form", token=conv["token"]).get_json()
    assert form["captured"] is True


def test_bad_answers_get_a_400_naming_each_field_and_write_nothing(client, widget, app):
    conv = start(client, widget)
    response = call(client, "POST", f"/conversations/{conv['id']}/lead", token=conv["token"],
                    body={"fields": {"email": "ada@", "phone": "12", "team_size": "lots", "colour": "red"}})
    assert response.status_code == 400
    error = response.get_json()["error"]
    assert error["code"] == "invalid_request" and error["message"]
    assert set(error["fields"]) == {"email", "phone", "team_size", "colour", "plan"}
    assert error["fields"]["plan"] == "This field is required."
    assert lead_count(app) == 0


@pytest.mark.parametrize("body", [{}, {"fields": ["ada@example.com"]}, {"fields": "x"}])
def test_a_body_without_a_fields_object_is_a_400(client, widget, body):
    conv = start(client, widget)
    response = call(client, "POST", f"/conversations/{conv['id']}/lead", token=conv["token"], body=body)
    assert response.status_code == 400 and "fields" in response.get_json()["error"]["message"]


def test_consent_comes_from_the_conversation_and_is_required_first(client, widget, app):
    conv = start(client, widget, "a2", origin=A2)
    path = f"/conversations/{conv['id']}/lead"
    answer = {"fields": {"email": "bo@example.com"}}
    assert call(client, "POST", path, origin=A2, token=conv["token"], body=answer).status_code == 403
    accepted = call(client, "POST", f"/conversations/{conv['id']}/consent", origin=A2, token=conv["token"],
                    body={"notice_version": "3"})
    assert accepted.status_code == 201
    response = call(client, "POST", path, origin=A2, token=conv["token"], body=answer)
    assert response.status_code == 201
    with app.app_context():
        lead = db.session.get(Lead, response.get_json()["lead"]["id"])
        assert lead.consent_version == "3" and lead.consented_at is not None


def test_without_a_token_the_form_is_401(client, widget):
    conv = start(client, widget)
    assert call(client, "GET", f"/conversations/{conv['id']}/lead-form").status_code == 401
    assert call(client, "POST", f"/conversations/{conv['id']}/lead", body={"fields": {}}).status_code == 401


def test_another_conversations_token_is_404_and_writes_nothing(client, widget, app):
    mine, other = start(client, widget), start(client, widget)
    assert call(client, "GET", f"/conversations/{mine['id']}/lead-form", token=other["token"]).status_code == 404
    response = call(client, "POST", f"/conversations/{mine['id']}/lead", token=other["token"],
                    body={"fields": {"email": "x@example.com", "plan": "Pro"}})
    assert response.status_code == 404 and lead_count(app) == 0


def test_a_foreign_workspaces_origin_is_refused(client, widget, app):
    conv = start(client, widget)
    response = call(client, "POST", f"/conversations/{conv['id']}/lead", origin="https://b1.example",
                    token=conv["token"], body={"fields": {"email": "x@example.com", "plan": "Pro"}})
    assert response.status_code == 403 and lead_count(app) == 0


def test_a_token_of_another_workspace_is_404(client, widget, app):
    mine, foreign = start(client, widget), start(client, widget, "b1", origin="https://b1.example")
    for origin in (A1, "https://b1.example"):
        assert call(client, "GET", f"/conversations/{mine['id']}/lead-form", origin=origin,
                    token=foreign["token"]).status_code == 404
        assert call(client, "POST", f"/conversations/{mine['id']}/lead", origin=origin, token=foreign["token"],
                    body={"fields": {"email": "x@example.com", "plan": "Pro"}}).status_code == 404
    assert lead_count(app) == 0


# ---- the AI's capture_lead tool, through the reply job -------------------------------------------------------

class ScriptedProvider(AIProvider):
    """Proposes the scripted tool calls once, then answers "Noted."; keeps the system prompts it saw."""

    name = "lead-scripted"

    def __init__(self):
        self.proposals, self.systems, self.tool_results = (), [], []

    def reply(self, *, messages, model, settings, tools=(), timeout=30.0):
        self.systems.append(messages[0].content)
        if messages[-1].role == "tool":
            self.tool_results.extend(m.content for m in messages if m.role == "tool")
            return Reply(text="Noted.", usage=Usage(10, 2))
        proposals, self.proposals = self.proposals, ()
        return Reply(text="", tool_calls=proposals, usage=Usage(10, 2))


class Provides:
    def __init__(self, provider):
        self.provider = provider

    @hookimpl
    def register_ai_providers(self, register):
        register(self.provider)


@pytest.fixture
def scripted(register_plugin):
    provider = ScriptedProvider()
    register_plugin(Provides(provider), "lead-scripted-plugin")
    return provider


def test_capture_lead_saves_custom_answers_and_asks_the_widget_for_the_rest(ctx, widget, scripted, app):
    db.session.scalars(select(WidgetSettings).where(WidgetSettings.workspace_id == widget["a1"])).one() \
        .ai_provider = "lead-scripted"
    db.session.commit()
    scripted.proposals = (ToolCall("c1", "capture_lead", {"email": "cy@example.com", "fields": {"team_size": 3}}),)
    workspace = db.session.get(Workspace, widget["a1"])
    conversation, _token = conversations.start_conversation(workspace)
    db.session.commit()
    with streams.subscribe(conversation.id) as get:
        settings = db.session.scalars(select(WidgetSettings).where(WidgetSettings.workspace_id == widget["a1"])).one()
        conversations.post_visitor_message(conversation, settings, "cy@example.com, we are three")
        db.session.commit()  # the inline job runner answers right after this commit
        seen = []
        while (event := get(0)) is not None:
            seen.append(event)
    lead = db.session.scalars(select(Lead)).one()
    assert (lead.email, lead.values, lead.source) == ("cy@example.com", {"team_size": 3}, LeadSource.ai)
    assert {"type": "lead_form", "missing": ["plan"]} in seen
    assert '"missing": ["plan"]' in scripted.tool_results[0]
    assert 'Which plan are you interested in? (capture_lead field "plan")' in scripted.systems[0]


def test_capture_lead_reports_invalid_custom_answers_to_the_model(ctx, widget, scripted):
    db.session.scalars(select(WidgetSettings).where(WidgetSettings.workspace_id == widget["a1"])).one() \
        .ai_provider = "lead-scripted"
    db.session.commit()
    scripted.proposals = (ToolCall("c1", "capture_lead", {"email": "cy@example.com", "fields": {"plan": "Gold"}}),)
    workspace = db.session.get(Workspace, widget["a1"])
    conversation, _token = conversations.start_conversation(workspace)
    settings = db.session.scalars(select(WidgetSettings).where(WidgetSettings.workspace_id == widget["a1"])).one()
    conversations.post_visitor_message(conversation, settings, "gold plan please")
    db.session.commit()
    assert db.session.scalar(select(func.count(Lead.id))) == 0
    assert '"ok": false' in scripted.tool_results[0] and "plan: Choose one of: Basic, Pro." in scripted.tool_results[0]


def test_the_offline_assistant_still_captures_contact_details(ctx, widget):
    workspace = db.session.get(Workspace, widget["a1"])
    conversation, _token = conversations.start_conversation(workspace)
    settings = db.session.scalars(select(WidgetSettings).where(WidgetSettings.workspace_id == widget["a1"])).one()
    conversations.post_visitor_message(conversation, settings, "I am Dee, dee@example.com")
    db.session.commit()
    lead = db.session.scalars(select(Lead)).one()
    assert lead.email == "dee@example.com" and lead.conversation_id == conversation.id
    assert offline_ai.LEAD_SAVED in [m.text for m in conversations.list_messages(conversation.id)]


def test_prompt_questions_merge_settings_and_fields(ctx, widget):
    settings = db.session.scalars(select(WidgetSettings).where(WidgetSettings.workspace_id == widget["a1"])).one()
    settings.qualification_questions = ["When would you like to start?"]
    db.session.commit()
    workspace = db.session.get(Workspace, widget["a1"])
    conversation, _token = conversations.start_conversation(workspace)
    message = conversations.add_message(conversation, "visitor", "hello")
    prompt = prompts.build(conversation, message, settings)
    assert prompt.qualification_questions == ["When would you like to start?", "Which plan are you interested in?"]


def test_the_stream_passes_the_lead_form_request_with_keys_only():
    from asthron.widget.sse import live_frame

    frame, last = live_frame({"type": "lead_form", "missing": ["plan", 3, "budget"], "extra": "x"}, 7)
    assert frame == 'event: lead_form\ndata: {"missing":["plan","budget"]}\n\n' and last == 7
