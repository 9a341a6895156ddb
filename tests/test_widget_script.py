"""The widget script route, the widget settings admin, and the demo's sample client websites."""
import gzip
import re

import pytest
from sqlalchemy import func, select

from asthron.extensions import db
from asthron.models.chat import KnowledgeEntry, WidgetSettings
from asthron.models.tenancy import Workspace
from asthron.widget.loader import SCRIPT
from tests.conftest import csrf_token


def _script_text():
    with open(SCRIPT, encoding="utf-8") as fh:
        return fh.read()


# The script route ---------------------------------------------------------------------------------

def test_widget_js_is_served_as_cacheable_javascript_without_an_origin(client):
    response = client.get("/widget.js")
    assert response.status_code == 200
    assert response.mimetype == "application/javascript"
    assert response.cache_control.public and response.cache_control.max_age == 300
    assert response.headers["ETag"]
    assert response.get_data(as_text=True) == _script_text()


def test_widget_js_revalidates_by_etag(client):
    etag = client.get("/widget.js").headers["ETag"]
    again = client.get("/widget.js", headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.get_data() == b""


def test_script_never_writes_markup():
    source = _script_text()
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function"):
        assert sink not in source, f"widget.js uses {sink}"
    assert "textContent" in source


def test_script_requests_nothing_from_third_parties():
    urls = set(re.findall(r"https?://[^\s\"'`)]+", _script_text()))
    assert urls <= {"http://www.w3.org/2000/svg", "https://HOST/widget.js"}, urls


def test_script_stays_well_under_the_download_budget():
    assert len(gzip.compress(_script_text().encode(), 9)) < 10 * 1024


# Widget settings admin ----------------------------------------------------------------------------

def _settings_id(app, workspace_id):
    with app.app_context():
        return db.session.execute(select(WidgetSettings.id).where(WidgetSettings.workspace_id == workspace_id)).scalar()


def _settings(app, workspace_id):
    with app.app_context():
        row = db.session.execute(select(WidgetSettings).where(WidgetSettings.workspace_id == workspace_id)).scalar()
        db.session.expunge(row)
        return row


def _form(**changes):
    form = {"colour": "#0F766E", "position": "left", "assistant_name": "Ada", "greeting": "Hello there",
            "language": "fr", "strings_json": '{"send": "Envoyer"}', "consent_required": "y",
            "consent_notice": "We keep this chat.", "notice_version": "2", "privacy_url": "https://a1.example/privacy",
            "ai_provider": "offline", "model": "", "instructions": "Be brief.", "tools": ["handoff"],
            "questions": "What is your name?\n\nWhen would you like to come?", "max_reply_tokens": "300",
            "monthly_token_budget": ""}
    form.update(changes)
    return {k: v for k, v in form.items() if v is not None}


def _edit(client, pk, **changes):
    url = f"/widgetsettingsview/edit/{pk}"
    return client.post(url, data={**_form(**changes), "csrf_token": csrf_token(client, url)})


@pytest.fixture
def a1_settings(app, client, auth, tenants):
    """Sign in a1's admin and open the settings list, which creates the rows; return a1's row id."""
    auth.login("a1_admin")
    assert client.get("/widgetsettingsview/list/").status_code == 200
    return _settings_id(app, tenants["a1"])


def test_opening_the_list_creates_settings_for_the_callers_workspaces_only(app, a1_settings, tenants):
    assert a1_settings is not None
    assert _settings_id(app, tenants["a2"]) is None and _settings_id(app, tenants["b1"]) is None


def test_admin_saves_valid_settings(app, client, a1_settings, tenants):
    response = _edit(client, a1_settings)
    assert response.status_code == 302
    saved = _settings(app, tenants["a1"])
    assert (saved.colour, saved.position, saved.assistant_name) == ("#0f766e", "left", "Ada")
    assert saved.strings == {"send": "Envoyer"} and saved.enabled_tools == ["handoff"]
    assert saved.qualification_questions == ["What is your name?", "When would you like to come?"]
    assert saved.consent_required and saved.privacy_url == "https://a1.example/privacy"
    assert (saved.max_reply_tokens, saved.monthly_token_budget) == (300, None)


@pytest.mark.parametrize("field, value, message", [
    ("colour", "blue", "#2563eb"),
    ("colour", "#12345g", "#2563eb"),
    ("position", "top", "Not a valid choice"),
    ("privacy_url", "javascript:alert(1)", "https://"),
    ("strings_json", "{not json", "not valid JSON"),
    ("strings_json", '{"sned": "x"}', "Unknown text names: sned"),
    ("strings_json", '["send"]', "JSON object"),
    ("max_reply_tokens", "0", "between 1 and 4000"),
    ("max_reply_tokens", "4001", "between 1 and 4000"),
    ("monthly_token_budget", "-5", "at least 0"),
    ("tools", ["delete_everything"], "Not a valid choice"),
    ("ai_provider", "nonexistent", "Not a valid choice"),
    ("consent_notice", "", "Write the notice"),
])
def test_invalid_settings_are_refused_with_a_field_error(app, client, a1_settings, tenants, field, value, message):
    response = _edit(client, a1_settings, **{field: value})
    assert response.status_code == 400
    assert message.lower() in response.get_data(as_text=True).lower()
    assert _settings(app, tenants["a1"]).assistant_name == "Assistant"


def test_budget_accepts_a_number(app, client, a1_settings, tenants):
    assert _edit(client, a1_settings, monthly_token_budget="200000").status_code == 302
    assert _settings(app, tenants["a1"]).monthly_token_budget == 200000


def test_another_agency_cannot_see_or_change_the_settings(app, client, auth, a1_settings, tenants):
    auth.logout()
    auth.login("b_admin")
    for path in ("show", "edit", "preview"):
        assert client.get(f"/widgetsettingsview/{path}/{a1_settings}").status_code == 404
    url = f"/widgetsettingsview/edit/{a1_settings}"
    token = csrf_token(client, "/widgetsettingsview/list/")
    assert client.post(url, data={**_form(), "csrf_token": token}).status_code == 404
    assert _settings(app, tenants["a1"]).assistant_name == "Assistant"
    assert "A One" not in client.get("/widgetsettingsview/list/").get_data(as_text=True)


def test_client_role_can_preview_but_not_edit(app, client, auth, a1_settings, tenants):
    auth.logout()
    auth.login("a1_client")
    assert client.get(f"/widgetsettingsview/preview/{a1_settings}").status_code == 200
    token = csrf_token(client, "/widgetsettingsview/list/")
    client.post(f"/widgetsettingsview/edit/{a1_settings}", data={**_form(), "csrf_token": token})
    assert _settings(app, tenants["a1"]).assistant_name == "Assistant"


def test_show_page_links_the_preview(client, a1_settings):
    html = client.get(f"/widgetsettingsview/show/{a1_settings}").get_data(as_text=True)
    assert f'href="/widgetsettingsview/preview/{a1_settings}"' in html


def test_preview_shows_the_snippet_escaped_and_embeds_the_real_script(app, client, a1_settings, tenants):
    with app.app_context():
        workspace = db.session.get(Workspace, tenants["a1"])
        workspace.name = "<img src=x onerror=alert(1)>"
        key = workspace.public_key
        db.session.commit()
    html = client.get(f"/widgetsettingsview/preview/{a1_settings}").get_data(as_text=True)
    assert (f"&lt;script src=&#34;http://localhost/widget.js&#34; data-key=&#34;{key}&#34; async&gt;"
            f"&lt;/script&gt;") in html
    assert re.search(rf'<script src="/widget.js" data-key="{key}" async nonce="[^"]+"></script>', html)
    assert "<img src=x" not in html and "&lt;img src=x onerror=alert(1)&gt;" in html


# Demo sample websites and seeding ------------------------------------------------------------------

def test_demo_seeding_is_idempotent_and_adds_settings_and_knowledge(ctx):
    from asthron.services import demo

    first = demo.seed()
    second = demo.seed()
    assert first["workspaces"] == second["workspaces"]
    rows = db.session.scalars(select(WidgetSettings).join(Workspace).order_by(Workspace.id)).all()
    assert [s.workspace.name for s in rows] == ["Bluebell Dental", "Harbour Yoga", "Copperleaf Law"]
    assert [s.consent_required for s in rows] == [True, False, False]
    assert rows[0].consent_notice and rows[0].privacy_url.startswith("https://")
    assert len({s.colour for s in rows}) == 3
    counts = dict(db.session.execute(select(KnowledgeEntry.workspace_id, func.count())
                                     .group_by(KnowledgeEntry.workspace_id)).all())
    assert sorted(counts.values()) == [3, 3, 3]
    for workspace in db.session.scalars(select(Workspace)):
        assert {"http://127.0.0.1:5000", "http://localhost:5000", "http://localhost:8000"} <= set(
            workspace.allowed_origins)
        titles = " ".join(db.session.scalars(select(KnowledgeEntry.title)
                                             .where(KnowledgeEntry.workspace_id == workspace.id))).lower()
        assert "opening hours" in titles and "price" in titles and "address" in titles


def test_demo_site_embeds_the_widget_for_a_demo_workspace(app, client):
    from asthron.services import demo

    with app.app_context():
        key = next(w["key"] for w in demo.seed()["workspaces"] if w["slug"] == "bluebell-dental")
    response = client.get("/demo/site/bluebell-dental")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert "Bluebell Dental" in html
    assert re.search(rf'<script src="/widget.js" data-key="{key}" async nonce="[^"]+"></script>', html)


def test_demo_site_is_not_served_for_other_workspaces(app, client, tenants):
    from asthron.services import tenancy as svc

    with app.app_context():
        # Same name as a demo workspace, but in a customer's agency: its key is not published here.
        lookalike = svc.create_workspace(agency=db.session.get(Workspace, tenants["a1"]).agency,
                                         name="Bluebell Dental")
        db.session.commit()
        slug, key = lookalike.slug, lookalike.public_key
    for path in (f"/demo/site/{slug}", "/demo/site/a-one", "/demo/site/nothing-here"):
        response = client.get(path)
        assert response.status_code == 404
        assert key not in response.get_data(as_text=True)


def test_demo_command_prints_the_sample_websites(runner):
    result = runner.invoke(args=["asthron", "demo"])
    assert result.exit_code == 0, result.output
    for slug in ("bluebell-dental", "harbour-yoga", "copperleaf-law"):
        assert f"http://127.0.0.1:5000/demo/site/{slug}" in result.output


def test_dashboard_links_the_demo_sites(app, client, auth):
    from asthron.services import demo

    with app.app_context():
        password = demo.seed()["users"][0]["password"]
    auth.login("agency.admin", password)
    html = client.get("/").get_data(as_text=True)
    assert 'href="/demo/site/bluebell-dental"' in html and 'href="/demo/site/copperleaf-law"' not in html
