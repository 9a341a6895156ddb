"""The public Sub-processors page: plugin declarations plus operator entries, managed by operators only,
readable by anyone, with a `last_changed` date that moves exactly when the list does."""
import json
from datetime import UTC, datetime

import pytest
from sqlalchemy import select, update

from asthron.extensions import db
from asthron.hookspecs import hookimpl
from asthron.models.audit import AuditEntry
from asthron.models.integrations import Subprocessor as SubprocessorRow
from asthron.models.integrations import SubprocessorListChange
from asthron.providers.subprocessors import Subprocessor
from asthron.services import subprocessors
from tests.conftest import csrf_token
from tests.plugin_fixtures import TINY_SUBPROCESSOR

HOSTING = {"name": "Hetzner Online GmbH", "purpose": "Hosting", "data_categories": "chat messages,\nlead details",
           "location": "Germany", "dpa_url": "https://www.hetzner.com/legal/dpa"}
LONG_AGO = datetime(2020, 1, 2, 12, tzinfo=UTC)


def today():
    return datetime.now(UTC).date().isoformat()


def add_row(**overrides):
    row = SubprocessorRow(**dict(HOSTING, **overrides))
    db.session.add(row)
    db.session.commit()
    return row


def backdate_versions():
    """Pretend every recorded version of the list was first published long ago."""
    db.session.execute(update(SubprocessorListChange).values(changed_at=LONG_AGO))
    db.session.commit()


def post_form(client, path, data, token_path):
    return client.post(path, data=dict(data, csrf_token=csrf_token(client, token_path)))


class DeclaresSubprocessor:
    @hookimpl
    def register_subprocessors(self, register):
        register(Subprocessor(name="Acme AI Inc.", purpose="Generates chat replies",
                              data_categories=("chat messages",), location="United States",
                              dpa_url="https://acme.example/dpa"))


# --- the public pages ---------------------------------------------------------------------------

def test_public_json_needs_no_sign_in_and_has_the_documented_shape(client, ctx):
    add_row()
    response = client.get("/legal/sub-processors.json")
    assert response.status_code == 200
    assert response.json == {"subprocessors": [{
        "name": "Hetzner Online GmbH", "purpose": "Hosting", "data_categories": ["chat messages", "lead details"],
        "location": "Germany", "dpa_url": "https://www.hetzner.com/legal/dpa", "source": "operator"}],
        "last_changed": today()}


def test_public_page_needs_no_sign_in_and_lists_each_entry(client, ctx):
    add_row()
    response = client.get("/legal/sub-processors")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert "Hetzner Online GmbH" in html and "lead details" in html and "Germany" in html
    assert 'href="https://www.hetzner.com/legal/dpa"' in html
    assert f"Last changed: <time datetime=\"{today()}\">" in html


def test_disabled_operator_entry_is_not_published(client, ctx):
    add_row(enabled=False)
    assert client.get("/legal/sub-processors.json").json["subprocessors"] == []


def test_installed_plugin_subprocessor_is_published(tiny_plugin, client):
    listing = client.get("/legal/sub-processors.json").json["subprocessors"]
    assert dict(TINY_SUBPROCESSOR, source="plugin:tiny") in listing
    html = client.get("/legal/sub-processors").get_data(as_text=True)
    assert TINY_SUBPROCESSOR["name"] in html and "Iceland" in html


def test_unloaded_plugin_subprocessor_is_withdrawn(register_plugin, client):
    from asthron import plugins

    register_plugin(DeclaresSubprocessor(), "acme")
    assert "Acme AI Inc." in [e["name"] for e in client.get("/legal/sub-processors.json").json["subprocessors"]]
    plugins.unregister("acme")
    assert "Acme AI Inc." not in [e["name"] for e in client.get("/legal/sub-processors.json").json["subprocessors"]]


def test_cli_prints_the_list_as_json_only(runner, ctx):
    add_row()
    result = runner.invoke(args=["asthron", "subprocessors", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == subprocessors.publish()


# --- last_changed --------------------------------------------------------------------------------

def test_last_changed_stays_while_the_list_is_unchanged(ctx):
    add_row()
    subprocessors.publish()
    backdate_versions()
    assert subprocessors.publish()["last_changed"] == "2020-01-02"


def test_last_changed_moves_when_an_operator_entry_is_added(ctx):
    add_row()
    subprocessors.publish()
    backdate_versions()
    add_row(name="Zendesk, Inc.", purpose="Support desk", location="United States")
    assert subprocessors.publish()["last_changed"] == today()


def test_last_changed_moves_when_a_plugin_declaring_a_subprocessor_loads(register_plugin, ctx):
    subprocessors.publish()
    backdate_versions()
    register_plugin(DeclaresSubprocessor(), "acme")
    assert subprocessors.publish()["last_changed"] == today()


def test_last_changed_moves_when_the_list_returns_to_an_earlier_version(ctx):
    row = add_row()
    subprocessors.publish()
    row.enabled = False
    db.session.commit()
    subprocessors.publish()
    backdate_versions()
    row.enabled = True
    db.session.commit()
    assert subprocessors.publish()["last_changed"] == today()


def test_each_version_of_the_list_is_kept_with_its_content(ctx):
    subprocessors.publish()
    add_row()
    subprocessors.publish()
    versions = db.session.scalars(select(SubprocessorListChange).order_by(SubprocessorListChange.id)).all()
    assert [len(v.entries) for v in versions] == [0, 1]
    assert versions[1].fingerprint == subprocessors.fingerprint(subprocessors.current_entries())


# --- operator-managed entries --------------------------------------------------------------------

def test_operator_adds_an_entry_that_is_published_and_dated_at_once(client, auth, tenants, ctx):
    auth.login("operator")
    response = post_form(client, "/subprocessorview/add", dict(HOSTING, enabled="y"), "/subprocessorview/add")
    assert response.status_code == 302
    [row] = db.session.scalars(select(SubprocessorRow)).all()
    assert row.name == HOSTING["name"] and row.enabled
    latest = subprocessors.latest_version()
    assert latest is not None and [e["name"] for e in latest.entries] == [HOSTING["name"]]


def test_operator_edits_and_disables_an_entry(client, auth, tenants, ctx):
    row_id = add_row().id
    auth.login("operator")
    form = dict(HOSTING, purpose="Hosting and backups")  # no "enabled": the checkbox is cleared
    response = post_form(client, f"/subprocessorview/edit/{row_id}", form, f"/subprocessorview/edit/{row_id}")
    assert response.status_code == 302
    db.session.expire_all()
    row = db.session.get(SubprocessorRow, row_id)
    assert row.purpose == "Hosting and backups" and row.enabled is False
    assert client.get("/legal/sub-processors.json").json["subprocessors"] == []


def test_operator_deletes_an_entry(client, auth, tenants, ctx):
    row_id = add_row().id
    auth.login("operator")
    token = csrf_token(client, "/subprocessorview/list/")
    assert client.post(f"/subprocessorview/delete/{row_id}", data={"csrf_token": token}).status_code == 302
    db.session.expire_all()
    assert db.session.get(SubprocessorRow, row_id) is None


def test_operator_changes_are_audited(client, auth, tenants, ctx):
    auth.login("operator")
    post_form(client, "/subprocessorview/add", dict(HOSTING, enabled="y"), "/subprocessorview/add")
    entry = db.session.scalars(select(AuditEntry).where(AuditEntry.action == "subprocessor.create")).one()
    assert entry.actor == "operator"


@pytest.mark.parametrize("link", ["javascript:alert(1)", "ftp://files.example/dpa", "not a link"])
def test_entry_without_an_http_dpa_link_is_refused(client, auth, tenants, ctx, link):
    auth.login("operator")
    response = post_form(client, "/subprocessorview/add", dict(HOSTING, dpa_url=link, enabled="y"),
                         "/subprocessorview/add")
    assert response.status_code == 200  # the form again, with the error
    assert db.session.scalars(select(SubprocessorRow)).all() == []


@pytest.mark.parametrize("username", ["a_admin", "a1_admin", "b1_staff"])
def test_customer_cannot_manage_subprocessors(client, auth, tenants, ctx, username):
    auth.login(username)
    assert client.get("/subprocessorview/list/").status_code == 403
    # A valid token from a form they may use, so the refusal comes from the permission check.
    response = post_form(client, "/subprocessorview/add", dict(HOSTING, enabled="y"), "/resetmypassword/form")
    assert response.status_code == 403
    assert db.session.scalars(select(SubprocessorRow)).all() == []


def test_anonymous_visitor_is_sent_to_sign_in_from_the_admin_view(client):
    response = client.get("/subprocessorview/list/")
    assert response.status_code == 302 and "/login/" in response.headers["Location"]
