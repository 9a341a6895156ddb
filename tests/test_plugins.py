"""The plugin host: discovery (entry points, the plugins folder, built-ins), the allow-list, listings,
lifecycle hooks, typed registries, event fan-out, `$env` secrets and the provider contracts."""
import json
import logging
import subprocess
import sys
import textwrap
from datetime import UTC, datetime

import pytest
from pluggy import PluginValidationError

from asthron import plugins, registry
from asthron.hookspecs import hookimpl
from asthron.providers import ai, calendar, events, payments, secrets
from asthron.providers.subprocessors import Subprocessor

REPO = __file__.rsplit("/tests/", 1)[0]


def write_folder_plugin(folder, name, body, *, package=False):
    """Write a plugin module (or package) into a plugins folder."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name / "__init__.py" if package else folder / f"{name}.py"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(body))
    return path


SUBPROCESSOR_PLUGIN = '''
    from asthron.hookspecs import hookimpl
    from asthron.providers.subprocessors import Subprocessor

    __version__ = "1.2"

    @hookimpl
    def register_subprocessors(register):
        register(Subprocessor(name="{name}", purpose="Testing", data_categories=["chat messages"],
                              location="EU", dpa_url="https://example.com/dpa"))
'''


@pytest.fixture
def plugin_log(caplog, monkeypatch):
    """Capture the plugin host's warnings, even after Alembic's fileConfig disabled existing loggers."""
    monkeypatch.setattr(plugins.log, "disabled", False)
    caplog.set_level(logging.WARNING, logger=plugins.log.name)
    return caplog


@pytest.fixture
def folder_cleanup():
    """Unregister whatever a test loads from a plugins folder."""
    loaded = []
    yield loaded
    for name in loaded:
        plugins.unregister(name)
        sys.modules.pop(f"{plugins.FOLDER_PACKAGE}.{name}", None)


# --- an installed distribution, discovered through its entry point ------------------------------

def test_installed_distribution_is_discovered_through_its_entry_point(tiny_plugin):
    [tiny] = [p for p in plugins.get_plugins() if p["name"] == "tiny"]
    assert tiny == {"name": "tiny", "version": "0.3.1", "source": "distribution asthron-tiny",
                    "hooks": ["register_subprocessors"]}


def test_cli_lists_the_installed_plugin_as_json_only(tiny_plugin, runner):
    result = runner.invoke(args=["asthron", "plugins", "--json"])
    assert result.exit_code == 0, result.output
    listed = json.loads(result.stdout)
    assert {"name": "tiny", "version": "0.3.1", "source": "distribution asthron-tiny",
            "hooks": ["register_subprocessors"]} in listed


def test_cli_lists_the_installed_plugin_for_people(tiny_plugin, runner):
    result = runner.invoke(args=["asthron", "plugins"])
    assert result.exit_code == 0, result.output
    assert "tiny 0.3.1 (distribution asthron-tiny)" in result.stdout
    assert "hooks: register_subprocessors" in result.stdout


def test_plugins_page_shows_the_installed_plugin_to_an_operator(tiny_plugin, client, auth, tenants):
    auth.login("operator")
    response = client.get("/plugins/")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert "tiny" in html and "0.3.1" in html and "register_subprocessors" in html


def test_plugins_page_is_refused_to_a_customer_admin(tiny_plugin, client, auth, tenants):
    auth.login("a_admin")
    assert client.get("/plugins/").status_code == 403


def test_plugins_page_sends_anonymous_visitors_to_sign_in(client):
    response = client.get("/plugins/")
    assert response.status_code == 302 and "/login/" in response.headers["Location"]


def test_health_reports_loaded_plugins(tiny_plugin, client):
    report = client.get("/health").json["plugins"]
    assert "tiny" in report["names"]
    assert report["count"] == len(report["names"])


def test_allow_list_that_omits_a_distribution_keeps_it_unloaded(tiny_distribution, monkeypatch):
    monkeypatch.syspath_prepend(str(tiny_distribution))
    assert plugins.load_entry_points(allow=plugins.allowed_names("something-else")) == []
    assert not plugins.pm.has_plugin("tiny")


def test_allow_list_matches_a_distribution_by_its_name(tiny_distribution, monkeypatch):
    monkeypatch.syspath_prepend(str(tiny_distribution))
    try:
        assert "tiny" in plugins.load_entry_points(allow=plugins.allowed_names("Asthron_Tiny"))
        assert plugins.pm.has_plugin("tiny")
    finally:
        plugins.unregister("tiny")
        sys.modules.pop("tiny_plugin", None)


# --- the plugins folder --------------------------------------------------------------------------

def test_folder_module_and_package_are_loaded_by_path(tmp_path, folder_cleanup):
    folder = tmp_path / "plugins"
    write_folder_plugin(folder, "folder_one", SUBPROCESSOR_PLUGIN.format(name="Folder One Ltd"))
    write_folder_plugin(folder, "folder_pkg", "from .entry import register_subprocessors  # noqa\n", package=True)
    (folder / "folder_pkg" / "entry.py").write_text(textwrap.dedent(SUBPROCESSOR_PLUGIN.format(name="Pkg Ltd")))
    write_folder_plugin(folder, "_private", SUBPROCESSOR_PLUGIN.format(name="Never"))
    folder_cleanup.extend(plugins.load_folder(str(folder)))
    assert folder_cleanup == ["folder_one", "folder_pkg"]
    listed = {p["name"]: p for p in plugins.get_plugins()}
    assert listed["folder_one"]["source"] == f"folder {folder}"
    assert listed["folder_one"]["version"] == "1.2"
    assert {e.value.name for e in registry.subprocessors.entries()} >= {"Folder One Ltd", "Pkg Ltd"}


def test_folder_plugin_does_not_shadow_the_library_of_the_same_name(tmp_path, folder_cleanup):
    write_folder_plugin(tmp_path, "json", "import json\nDUMPED = json.dumps([1])\n")
    folder_cleanup.extend(plugins.load_folder(str(tmp_path)))
    assert plugins.pm.get_plugin("json").DUMPED == "[1]"
    assert sys.modules["json"].__file__ != str(tmp_path / "json.py")


def test_allow_list_limits_folder_plugins(tmp_path, folder_cleanup):
    write_folder_plugin(tmp_path, "wanted", SUBPROCESSOR_PLUGIN.format(name="Wanted"))
    write_folder_plugin(tmp_path, "unwanted", SUBPROCESSOR_PLUGIN.format(name="Unwanted"))
    folder_cleanup.extend(plugins.load_folder(str(tmp_path), allow=plugins.allowed_names(" wanted, ")))
    assert folder_cleanup == ["wanted"]
    assert not plugins.pm.has_plugin("unwanted")


def test_folder_plugin_that_fails_to_import_stops_loading_naming_it(tmp_path, folder_cleanup):
    write_folder_plugin(tmp_path, "broken", "raise ImportError('needs acme-sdk')\n")
    expected = r"plugin 'broken' from .*broken.py failed to import: needs acme-sdk"
    with pytest.raises(plugins.PluginLoadError, match=expected):
        plugins.load_folder(str(tmp_path))
    assert not plugins.pm.has_plugin("broken")


def test_app_honours_plugins_dir_and_allow_list_from_its_config(tmp_path):
    folder = tmp_path / "plugins"
    write_folder_plugin(folder, "wanted", SUBPROCESSOR_PLUGIN.format(name="Wanted"))
    write_folder_plugin(folder, "unwanted", SUBPROCESSOR_PLUGIN.format(name="Unwanted"))
    env = {"PATH": "/usr/bin:/bin", "ASTHRON_INSTANCE_DIR": str(tmp_path / "instance"),
           "DATABASE_URL": f"sqlite:///{tmp_path}/db.sqlite", "ASTHRON_PLUGINS_DIR": str(folder),
           "ASTHRON_PLUGINS": "wanted"}
    done = subprocess.run([sys.executable, "-m", "flask", "--app", "wsgi", "asthron", "plugins", "--json"],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    names = [p["name"] for p in json.loads(done.stdout)]
    assert "wanted" in names and "unwanted" not in names


# --- loading as a whole: built-ins, check_pending, once per process ------------------------------

@pytest.fixture
def fresh_load(monkeypatch):
    """Let `load_plugins` run again in this process, and undo what it registers."""
    before = {name for name, _ in plugins.pm.list_name_plugin()}
    monkeypatch.setattr(plugins, "_loaded_with", None)
    yield
    for name, _ in plugins.pm.list_name_plugin():
        if name not in before:
            plugins.unregister(name)


def test_built_ins_load_whatever_the_allow_list_says(tmp_path, monkeypatch, fresh_load):
    (tmp_path / "asthron_test_builtin.py").write_text("from asthron.hookspecs import hookimpl\n\n"
                                                      "@hookimpl\ndef startup(app):\n    pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(plugins, "DEFAULT_PLUGINS", ("asthron_test_builtin",))
    plugins.load_plugins(allow=plugins.allowed_names("something-else"))
    [builtin] = [p for p in plugins.get_plugins() if p["name"] == "asthron_test_builtin"]
    assert builtin["source"] == "built-in" and builtin["hooks"] == ["startup"]


def test_plugin_implementing_an_unknown_hook_stops_loading(tmp_path, fresh_load):
    write_folder_plugin(tmp_path, "typo", "from asthron.hookspecs import hookimpl\n\n"
                                          "@hookimpl\ndef register_ai_provider(register):\n    pass\n")
    with pytest.raises(PluginValidationError, match="register_ai_provider"):
        plugins.load_plugins(folder=str(tmp_path))


def test_plugins_load_once_per_process(tmp_path, fresh_load, plugin_log):
    plugins.load_plugins(folder=None)
    write_folder_plugin(tmp_path, "late", SUBPROCESSOR_PLUGIN.format(name="Late"))
    plugins.load_plugins(folder=str(tmp_path))
    assert not plugins.pm.has_plugin("late")
    assert "loaded once per process" in plugin_log.text


def test_allow_list_name_that_matches_nothing_is_reported(tmp_path, fresh_load, plugin_log):
    plugins.load_plugins(allow=plugins.allowed_names("opnai"), folder=str(tmp_path))
    assert "ASTHRON_PLUGINS names 'opnai'" in plugin_log.text


# --- lifecycle hooks run for every app -----------------------------------------------------------

class LifecyclePlugin:
    """Records the apps it starts on and adds a page, a command and nothing else."""

    def __init__(self):
        from flask import Blueprint

        self.started, self.builders = [], []
        self.blueprint = Blueprint("lifecycle_plugin", __name__, url_prefix="/hooks/lifecycle")
        self.blueprint.add_url_rule("/ping", "ping", lambda: "pong")

    @hookimpl
    def register_blueprints(self, app):
        app.register_blueprint(self.blueprint)

    @hookimpl
    def register_admin_views(self, appbuilder):
        self.builders.append(appbuilder)

    @hookimpl
    def register_commands(self, cli):
        import click

        @cli.command("lifecycle-hello")
        def hello():
            click.echo("hello from a plugin")

    @hookimpl
    def startup(self, app):
        self.started.append((app, app.appbuilder))


def _new_app(tmp_path):
    from asthron.app import create_app
    from tests.conftest import _base_config

    tmp_path.mkdir()
    return create_app(_base_config(f"sqlite:///{tmp_path}/other.db"))


def test_lifecycle_hooks_run_for_each_new_app(tmp_path, register_plugin, monkeypatch):
    from asthron.cli import asthron

    monkeypatch.setattr(asthron, "commands", dict(asthron.commands))  # drop the plugin's command after
    plugin = register_plugin(LifecyclePlugin(), "lifecycle")
    first, second = _new_app(tmp_path / "one"), _new_app(tmp_path / "two")
    assert [app for app, _ in plugin.started] == [first, second]
    assert [builder for _, builder in plugin.started] == [first.appbuilder, second.appbuilder]
    assert plugin.builders == [first.appbuilder, second.appbuilder]
    assert second.test_client().get("/hooks/lifecycle/ping").get_data(as_text=True) == "pong"
    result = second.test_cli_runner().invoke(args=["asthron", "lifecycle-hello"])
    assert result.stdout == "hello from a plugin\n"


# --- typed registries ------------------------------------------------------------------------------

class EchoProvider(ai.AIProvider):
    name = "echo"

    def reply(self, *, messages, model, settings, tools=(), timeout=30.0):
        return ai.Reply(text=messages[-1].content, usage=ai.Usage(3, 2), model=model)


class RegistersProvider:
    def __init__(self, *objects):
        self.objects = objects

    @hookimpl
    def register_ai_providers(self, register):
        for obj in self.objects:
            register(obj)


def test_registry_returns_what_a_plugin_registered_and_who_registered_it(register_plugin):
    provider = EchoProvider()
    register_plugin(RegistersProvider(provider), "echo_plugin")
    assert registry.ai_providers.get("echo") is provider
    assert ("echo", "echo_plugin") in [(e.name, e.plugin) for e in registry.ai_providers.entries()]
    # Built-ins register first, as plugins like any other.
    assert ("offline", "asthron.default_plugins.offline_ai") in [(e.name, e.plugin)
                                                                 for e in registry.ai_providers.entries()]


def test_registry_forgets_an_unregistered_plugin(register_plugin):
    register_plugin(RegistersProvider(EchoProvider()), "echo_plugin")
    assert "echo" in registry.ai_providers.names()
    plugins.unregister("echo_plugin")
    assert "echo" not in registry.ai_providers.names()


def test_registering_the_wrong_kind_of_object_names_the_plugin(register_plugin):
    register_plugin(RegistersProvider("not a provider"), "confused")
    with pytest.raises(registry.RegistryError, match=r"plugin 'confused' passed str to register_ai_providers"):
        registry.ai_providers.entries()


def test_two_plugins_registering_the_same_name_is_an_error_naming_both(register_plugin):
    register_plugin(RegistersProvider(EchoProvider()), "first")
    register_plugin(RegistersProvider(EchoProvider()), "second")
    with pytest.raises(registry.RegistryError, match="'echo' is registered by both plugin '.+' and plugin '.+'"):
        registry.ai_providers.entries()


def test_asking_for_a_missing_provider_lists_what_is_installed(register_plugin):
    register_plugin(RegistersProvider(EchoProvider()), "echo_plugin")
    with pytest.raises(LookupError, match=r"no AIProvider named 'gpt' is installed \(available: echo, offline\)"):
        registry.ai_providers.get("gpt")


# --- events ------------------------------------------------------------------------------------------

class Listener:
    def __init__(self, fail=False):
        self.fail, self.seen = fail, []

    @hookimpl
    def track_event(self, event):
        if self.fail:
            raise RuntimeError("listener down")
        self.seen.append(event)


def test_event_reaches_every_plugin_even_when_one_fails(register_plugin, plugin_log):
    good = register_plugin(Listener(), "good")
    register_plugin(Listener(fail=True), "bad")
    event = events.LeadCreated(workspace_id=7, lead_id=42)
    plugins.track_event(event)
    assert good.seen == [event]
    assert "plugin 'bad' failed to handle event LeadCreated" in plugin_log.text


def test_event_serialises_with_its_name():
    when = datetime(2026, 1, 2, 3, 4, tzinfo=UTC)
    data = events.BookingCreated(workspace_id=1, booking_id=9, starts_at=when, occurred_at=when).to_dict()
    assert data == {"name": "booking.created", "workspace_id": 1, "booking_id": 9,
                    "starts_at": when.isoformat(), "occurred_at": when.isoformat()}


# --- `$env` secrets ---------------------------------------------------------------------------------

def test_env_reference_resolves_from_the_environment(monkeypatch):
    monkeypatch.setenv("ACME_API_KEY", "sk-live-123")
    settings = {"base_url": "https://acme.example", "auth": {"api_key": {"$env": "ACME_API_KEY"}}}
    assert secrets.resolve(settings) == {"base_url": "https://acme.example", "auth": {"api_key": "sk-live-123"}}
    assert settings["auth"]["api_key"] == {"$env": "ACME_API_KEY"}


def test_missing_environment_variable_is_a_clear_error(monkeypatch):
    monkeypatch.delenv("ACME_API_KEY", raising=False)
    with pytest.raises(secrets.SecretError,
                       match="setting 'auth.api_key' refers to environment variable ACME_API_KEY, which is not set"):
        secrets.resolve({"auth": {"api_key": {"$env": "ACME_API_KEY"}}})


@pytest.mark.parametrize("settings", [{"api_key": "sk-live-123"}, {"smtp": {"password": "sk-live-123"}},
                                      {"client_secret": "sk-live-123"}, {"api_keys": ["sk-live-123"]}])
def test_literal_secret_is_refused_without_echoing_it(settings):
    with pytest.raises(secrets.SecretError, match="holds a literal secret") as refused:
        secrets.resolve(settings)
    assert "sk-live-123" not in str(refused.value)


def test_settings_that_only_look_secret_are_kept_as_written():
    settings = {"token_url": "https://auth.example/token", "client_id": "abc", "public_key": "pk_1",
                "host": "smtp.example", "password": ""}
    assert secrets.resolve(settings, environ={}) == settings


# --- provider contracts --------------------------------------------------------------------------

def test_default_stream_yields_the_reply_which_collect_reassembles():
    provider = EchoProvider()
    chunks = list(provider.stream(messages=[ai.Message("user", "hi")], model="m", settings={}))
    assert ai.collect(chunks, model="m") == ai.Reply(text="hi", usage=ai.Usage(3, 2), model="m")


def test_value_objects_refuse_what_the_core_cannot_use():
    naive = datetime(2026, 1, 1, 9)
    with pytest.raises(ValueError, match="timezone-aware"):
        calendar.BusyPeriod(naive, naive)
    with pytest.raises(ValueError, match="ISO 4217"):
        payments.Money(100, "eur")
    with pytest.raises(ValueError, match="http"):
        Subprocessor("X", "Y", ("chat messages",), "EU", "javascript:alert(1)")
    with pytest.raises(ValueError, match="tool_call_id"):
        ai.Message("tool", "result")


def test_abstract_contract_cannot_be_instantiated_half_done():
    class NoReply(ai.AIProvider):
        name = "half"

    with pytest.raises(TypeError):
        NoReply()
