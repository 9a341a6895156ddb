"""Plugin fixtures: a tiny plugin distribution really built and installed, and registration undone after.

conftest.py imports these so every test module can use them.
"""
import subprocess
import sys

import pytest

from asthron.hookspecs import hookimpl

TINY_SUBPROCESSOR = {
    "name": "Tiny Cloud ehf.",
    "purpose": "Stores tiny backups of chat transcripts",
    "data_categories": ["chat messages", "visitor email addresses"],
    "location": "Iceland",
    "dpa_url": "https://tiny.example/dpa",
}

SETUP_CFG = """\
[metadata]
name = asthron-tiny
version = 0.3.1

[options]
py_modules = tiny_plugin

[options.entry_points]
asthron =
    tiny = tiny_plugin
"""

PYPROJECT = """\
[build-system]
requires = ["setuptools"]
build-backend = "setuptools.build_meta"
"""

MODULE = f'''\
from asthron.hookspecs import hookimpl
from asthron.providers.subprocessors import Subprocessor


@hookimpl
def register_subprocessors(register):
    register(Subprocessor(**{TINY_SUBPROCESSOR!r}))
'''


@pytest.fixture(scope="session")
def tiny_distribution(tmp_path_factory):
    """Build and install the `asthron-tiny` distribution into a directory of its own; return it."""
    src = tmp_path_factory.mktemp("tiny-src")
    (src / "setup.cfg").write_text(SETUP_CFG)
    (src / "pyproject.toml").write_text(PYPROJECT)
    (src / "tiny_plugin.py").write_text(MODULE)
    target = tmp_path_factory.mktemp("tiny-site")
    # No build isolation and no index: the build must work offline with the venv's setuptools and wheel.
    done = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                           "--no-index", "--target", str(target), str(src)],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, f"building the tiny plugin failed:\n{done.stdout}\n{done.stderr}"
    return target


@pytest.fixture
def tiny_plugin(tiny_distribution, monkeypatch):
    """Put the installed tiny distribution on sys.path and load entry points; unregister it after."""
    from asthron import plugins

    monkeypatch.syspath_prepend(str(tiny_distribution))
    assert "tiny" in plugins.load_entry_points(), "the tiny distribution's entry point was not found"
    yield plugins.pm.get_plugin("tiny")
    plugins.unregister("tiny")
    sys.modules.pop("tiny_plugin", None)


@pytest.fixture
def register_plugin():
    """Register plugin objects on the shared manager for one test; unregister them after."""
    from asthron import plugins

    names = []

    def register(plugin, name):
        plugins.pm.register(plugin, name=name)
        names.append(name)
        return plugin

    yield register
    for name in names:
        plugins.unregister(name)


class EventRecorder:
    """A plugin that keeps every domain event it is handed."""

    def __init__(self):
        self.seen = []

    @hookimpl
    def track_event(self, event):
        self.seen.append(event)

    def names(self):
        return [e.name for e in self.seen]


@pytest.fixture
def recorder(register_plugin):
    """Register an EventRecorder for one test and return it."""
    return register_plugin(EventRecorder(), "event-recorder")
