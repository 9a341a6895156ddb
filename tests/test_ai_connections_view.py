"""Operators manage AI connections; the key is an environment variable's name, never the key itself."""
import pytest
from sqlalchemy import select

from asthron.extensions import db
from asthron.models.audit import AuditEntry
from asthron.models.chat import AIConnection
from tests.conftest import csrf_token

LITERAL_KEY = "sk-proj-Zq81lmTT4aa9YkeyNeverStored"
FORM = {"name": "Local Ollama", "provider": "openai", "base_url": "http://localhost:11434/v1",
        "api_key_variable": "OLLAMA_KEY", "default_model": "llama3.2", "enabled": "y"}


def post_form(client, path, data, token_path="/aiconnectionview/add"):
    return client.post(path, data=dict(data, csrf_token=csrf_token(client, token_path)))


def connections():
    db.session.expire_all()
    return db.session.scalars(select(AIConnection)).all()


def add_connection(**overrides):
    values = {"name": "OpenAI", "provider": "openai", "base_url": None, "api_key_ref": {"$env": "OPENAI_API_KEY"},
              "default_model": "gpt-4o-mini", "enabled": True}
    row = AIConnection(**dict(values, **overrides))
    db.session.add(row)
    db.session.commit()
    return row


def test_operator_adds_a_connection_stored_with_an_env_reference(openai_plugin, client, auth, tenants, ctx):
    auth.login("operator")
    response = post_form(client, "/aiconnectionview/add", FORM)
    assert response.status_code == 302
    [row] = connections()
    assert (row.name, row.provider, row.base_url, row.default_model, row.enabled) == \
        ("Local Ollama", "openai", "http://localhost:11434/v1", "llama3.2", True)
    assert row.api_key_ref == {"$env": "OLLAMA_KEY"}


def test_connection_without_a_key_variable_stores_no_reference(openai_plugin, client, auth, tenants, ctx):
    auth.login("operator")
    assert post_form(client, "/aiconnectionview/add", dict(FORM, api_key_variable="")).status_code == 302
    assert connections()[0].api_key_ref is None


@pytest.mark.parametrize("value", [LITERAL_KEY, "sk_live_abcdef123456", "my key", "lowercase_name"])
def test_literal_key_is_refused_and_never_shown_again(openai_plugin, client, auth, tenants, ctx, value):
    auth.login("operator")
    response = post_form(client, "/aiconnectionview/add", dict(FORM, api_key_variable=value))
    html = response.get_data(as_text=True)
    assert response.status_code == 400
    assert "not the key itself" in html
    assert value not in html
    assert connections() == []
    assert not [e for e in db.session.scalars(select(AuditEntry)) if value in str(e.details)]


@pytest.mark.parametrize("url", ["ftp://models.example/v1", "javascript:alert(1)", "localhost:11434"])
def test_base_url_must_be_http_or_https(openai_plugin, client, auth, tenants, ctx, url):
    auth.login("operator")
    response = post_form(client, "/aiconnectionview/add", dict(FORM, base_url=url))
    assert response.status_code == 400 and connections() == []


def test_provider_must_be_an_installed_one(openai_plugin, client, auth, tenants, ctx):
    auth.login("operator")
    response = post_form(client, "/aiconnectionview/add", dict(FORM, provider="acme-not-installed"))
    assert response.status_code == 400 and connections() == []
    assert 'value="openai"' in client.get("/aiconnectionview/add").get_data(as_text=True)


def test_edit_form_shows_the_variable_and_saving_keeps_the_reference(openai_plugin, client, auth, tenants, ctx):
    row_id = add_connection().id
    auth.login("operator")
    page = client.get(f"/aiconnectionview/edit/{row_id}").get_data(as_text=True)
    assert 'value="OPENAI_API_KEY"' in page
    form = dict(FORM, name="OpenAI", base_url="", api_key_variable="OPENAI_API_KEY", default_model="gpt-4o")
    assert post_form(client, f"/aiconnectionview/edit/{row_id}", form,
                     f"/aiconnectionview/edit/{row_id}").status_code == 302
    [row] = connections()
    assert row.api_key_ref == {"$env": "OPENAI_API_KEY"} and row.base_url is None and row.default_model == "gpt-4o"


def test_list_shows_the_variable_name_never_its_value(openai_plugin, client, auth, tenants, ctx, monkeypatch):
    monkeypatch.setenv("H8_VIEW_KEY", LITERAL_KEY)
    add_connection(api_key_ref={"$env": "H8_VIEW_KEY"})
    auth.login("operator")
    html = client.get("/aiconnectionview/list/").get_data(as_text=True)
    assert "$H8_VIEW_KEY (set in this process)" in html
    assert LITERAL_KEY not in html


def test_changes_are_audited_without_the_reference(openai_plugin, client, auth, tenants, ctx):
    auth.login("operator")
    post_form(client, "/aiconnectionview/add", FORM)
    entry = db.session.scalars(select(AuditEntry).where(AuditEntry.action == "ai_connection.create")).one()
    assert entry.actor == "operator"
    assert entry.details["api_key_ref"] == "[redacted]"
    assert "OLLAMA_KEY" not in str(entry.details)


def test_operator_deletes_a_connection(client, auth, tenants, ctx):
    row_id = add_connection().id
    auth.login("operator")
    token = csrf_token(client, "/aiconnectionview/list/")
    assert client.post(f"/aiconnectionview/delete/{row_id}", data={"csrf_token": token}).status_code == 302
    assert connections() == []


@pytest.mark.parametrize("username", ["a_admin", "a1_admin", "a1_staff", "a1_client", "b1_staff"])
def test_customers_get_no_access(openai_plugin, client, auth, tenants, ctx, username):
    row_id = add_connection().id
    auth.login(username)
    assert client.get("/aiconnectionview/list/").status_code == 403
    assert client.get(f"/aiconnectionview/show/{row_id}").status_code == 403
    # A valid token from a form they may use, so the refusal comes from the permission check.
    response = post_form(client, "/aiconnectionview/add", FORM, "/resetmypassword/form")
    assert response.status_code == 403
    assert [c.name for c in connections()] == ["OpenAI"]


def test_anonymous_visitor_is_sent_to_sign_in(client):
    response = client.get("/aiconnectionview/list/")
    assert response.status_code == 302 and "/login/" in response.headers["Location"]
