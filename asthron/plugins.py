"""The plugin manager: built-ins, installed distributions and the plugins/ folder, loaded once per process.

Built-ins (`asthron.default_plugins.PLUGINS`) always load. Distributions declaring an entry point
in the `asthron` group and modules or packages in ASTHRON_PLUGINS_DIR load too, limited to the
names in ASTHRON_PLUGINS when it is set. See docs/plugins.md.
"""
import importlib
import importlib.util
import logging
import os
import sys
import types
from importlib import metadata

import pluggy

from asthron import hookspecs
from asthron.default_plugins import PLUGINS as DEFAULT_PLUGINS

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "asthron"
FOLDER_PACKAGE = "asthron_folder_plugins"  # folder plugins import as asthron_folder_plugins.<name>

pm = pluggy.PluginManager("asthron")
pm.add_hookspecs(hookspecs)

_info = {}  # plugin name -> {"source": ..., "version": ...}
_loaded_with = None  # (allow, folder) of the one load this process did


class PluginLoadError(RuntimeError):
    """A plugin failed to import; the message names it and where it came from."""


def allowed_names(value):
    """Parse ASTHRON_PLUGINS ("a, b") into a set of normalised names; empty means all."""
    return frozenset(_norm(n) for n in (value or "").split(",") if n.strip())


def _norm(name):
    return name.strip().lower().replace("-", "_").replace(".", "_")


def _allowed(allow, *names):
    return not allow or any(_norm(n) in allow for n in names if n)


def _register(plugin, name, *, source, version=None):
    pm.register(plugin, name=name)
    _info[name] = {"source": source, "version": version}


def load_plugins(*, allow=frozenset(), folder=None):
    """Register built-ins, then the allowed installed and folder plugins, once per process."""
    global _loaded_with
    if _loaded_with is not None:
        if _loaded_with != (allow, folder):
            log.warning("plugins are loaded once per process; this app's ASTHRON_PLUGINS and "
                        "ASTHRON_PLUGINS_DIR differ from the first app's and are ignored")
        return
    for module_name in DEFAULT_PLUGINS:
        if not pm.has_plugin(module_name):
            _register(importlib.import_module(module_name), module_name, source="built-in")
    found = load_entry_points(allow=allow) + load_folder(folder, allow=allow)
    for name in sorted(allow - {_norm(n) for n in found}):
        log.warning("ASTHRON_PLUGINS names %r, but no installed or folder plugin has that name", name)
    pm.check_pending()
    _loaded_with = (allow, folder)


def load_entry_points(*, allow=frozenset()):
    """Register the allowed plugins that installed distributions declare in the `asthron` group."""
    found = []
    for dist in metadata.distributions():
        for ep in dist.entry_points.select(group=ENTRY_POINT_GROUP):
            dist_name = dist.metadata["Name"]
            if not _allowed(allow, ep.name, dist_name):
                continue
            if pm.has_plugin(ep.name):
                if _info.get(ep.name, {}).get("source") != f"distribution {dist_name}":
                    log.warning("skipping entry point %r of %s: a plugin of that name is already loaded",
                                ep.name, dist_name)
                continue
            try:
                plugin = ep.load()
            except Exception as exc:
                raise PluginLoadError(f"plugin {ep.name!r} from distribution {dist_name!r} "
                                      f"failed to import: {exc}") from exc
            _register(plugin, ep.name, source=f"distribution {dist_name}", version=dist.version)
            found += [ep.name, dist_name]
    return found


def load_folder(folder, *, allow=frozenset()):
    """Register every allowed `*.py` module and package in `folder`, imported by path."""
    if not folder or not os.path.isdir(folder):
        return []
    found = []
    for entry in sorted(os.listdir(folder)):
        name, init = _folder_plugin(folder, entry)
        if name is None or not _allowed(allow, name):
            continue
        if pm.has_plugin(name):
            log.warning("skipping %s: a plugin named %r is already loaded", os.path.join(folder, entry), name)
            continue
        module = _import_path(name, init, package=init.endswith("__init__.py"))
        _register(module, name, source=f"folder {folder}", version=getattr(module, "__version__", None))
        found.append(name)
    return found


def _folder_plugin(folder, entry):
    path = os.path.join(folder, entry)
    if entry.startswith(("_", ".")):
        return None, None
    if entry.endswith(".py") and os.path.isfile(path):
        return entry[:-3], path
    if os.path.isfile(os.path.join(path, "__init__.py")):
        return entry, os.path.join(path, "__init__.py")
    return None, None


def _import_path(name, path, *, package):
    # A private parent package keeps plugins/openai.py from shadowing the `openai` library it imports.
    sys.modules.setdefault(FOLDER_PACKAGE, types.ModuleType(FOLDER_PACKAGE))
    full = f"{FOLDER_PACKAGE}.{name}"
    locations = [os.path.dirname(path)] if package else None
    spec = importlib.util.spec_from_file_location(full, path, submodule_search_locations=locations)
    module = importlib.util.module_from_spec(spec)
    sys.modules[full] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        sys.modules.pop(full, None)
        raise PluginLoadError(f"plugin {name!r} from {path} failed to import: {exc}") from exc
    return module


def get_plugins():
    """Return name, version, source and implemented hooks of every registered plugin, by name."""
    plugins = []
    for name, plugin in pm.list_name_plugin():
        if plugin is None:  # blocked
            continue
        info = _info.get(name, {})
        plugins.append({"name": name, "version": info.get("version") or getattr(plugin, "__version__", None),
                        "source": info.get("source", "registered"),
                        "hooks": sorted(caller.name for caller in pm.get_hookcallers(plugin) or ())})
    return sorted(plugins, key=lambda p: p["name"])


def implementations(hook_name):
    """Return (plugin name, call) for each implementation of a hook, in pluggy's calling order."""
    impls = [i for i in getattr(pm.hook, hook_name).get_hookimpls() if not (i.wrapper or i.hookwrapper)]
    return [(impl.plugin_name, _caller(impl)) for impl in reversed(impls)]


def _caller(impl):
    # An implementation may accept a subset of the spec's arguments, as pluggy allows.
    return lambda **kwargs: impl.function(**{k: kwargs[k] for k in impl.argnames})


def track_event(event):
    """Hand a domain event to every plugin; one plugin failing neither stops the others nor the caller."""
    for plugin_name, call in implementations("track_event"):
        try:
            call(event=event)
        except Exception:
            log.exception("plugin %r failed to handle event %s", plugin_name, type(event).__name__)


def init_app(app):
    """Load the plugins (once per process) and let them register blueprints on this app."""
    load_plugins(allow=allowed_names(app.config.get("ASTHRON_PLUGINS")),
                 folder=app.config.get("ASTHRON_PLUGINS_DIR"))
    pm.hook.register_blueprints(app=app)


def startup(app):
    """Tell plugins this app is fully built."""
    pm.hook.startup(app=app)


def register_admin_views(appbuilder):
    """Let plugins add views to this app's admin panel."""
    pm.hook.register_admin_views(appbuilder=appbuilder)


def register_commands(cli):
    """Let plugins add commands to the `flask asthron` group."""
    pm.hook.register_commands(cli=cli)


def unregister(name):
    """Unregister a plugin by name and forget where it came from (tests undo registrations with this)."""
    _info.pop(name, None)
    return pm.unregister(name=name)
