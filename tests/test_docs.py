"""docs/plugins.md documents every hook with exactly the arguments its spec takes (as datasette's tests do)."""
import inspect
import re
from pathlib import Path

import pytest

from asthron import hookspecs

DOC = Path(__file__).resolve().parents[1] / "docs" / "plugins.md"
HEADING = re.compile(r"^### `(\w+)\(([^)]*)\)`[ \t]*$", re.MULTILINE)
ARGUMENT = re.compile(r"^- `(\w+)`:", re.MULTILINE)
# The names other people's plugins rely on: a spec grows by adding arguments, never by renaming.
STABLE_HOOKS = {
    "register_ai_providers", "register_calendar_backends", "register_payment_gateways",
    "register_email_transports", "register_subprocessors", "startup", "register_commands",
    "register_admin_views", "register_blueprints", "export_data_subject", "erase_data_subject", "track_event",
}


def hookspec_arguments():
    """Return {hook name: [argument names]} for every hook spec in asthron.hookspecs."""
    return {name: list(inspect.signature(fn).parameters) for name, fn in vars(hookspecs).items()
            if callable(fn) and hasattr(fn, "asthron_spec")}


def documented_hooks(text):
    """Return {hook name: (heading arguments, described arguments)} from the doc's hook reference."""
    reference = text.split("\n## Hook reference", 1)[1]
    reference = reference.split("\n## ", 1)[0]  # stop at the next top-level section, if any
    parts = HEADING.split(reference)  # [preamble, name, args, body, name, args, body, ...]
    return {name: ([a.strip() for a in args.split(",") if a.strip()], ARGUMENT.findall(body))
            for name, args, body in zip(parts[1::3], parts[2::3], parts[3::3])}


SPECS = hookspec_arguments()
DOCUMENTED = documented_hooks(DOC.read_text(encoding="utf-8"))


def test_hook_names_are_stable():
    assert set(SPECS) == STABLE_HOOKS


@pytest.mark.parametrize("hook", sorted(SPECS))
def test_hook_is_documented(hook):
    assert hook in DOCUMENTED, f"{hook} has no `### `{hook}(...)`` section in docs/plugins.md"


@pytest.mark.parametrize("hook", sorted(SPECS))
def test_documented_arguments_match_the_spec(hook):
    heading, described = DOCUMENTED.get(hook, (None, None))
    assert heading == SPECS[hook], f"docs/plugins.md heading for {hook} drifted from the spec"
    assert described == SPECS[hook], f"docs/plugins.md describes other arguments for {hook} than the spec"


def test_every_documented_hook_exists():
    assert set(DOCUMENTED) <= set(SPECS), f"documented but not specified: {set(DOCUMENTED) - set(SPECS)}"


@pytest.mark.parametrize("hook", sorted(SPECS))
def test_hookspec_docstring_describes_each_argument(hook):
    doc = inspect.getdoc(getattr(hookspecs, hook)) or ""
    assert doc.splitlines()[0].strip(), f"{hook} has no summary line"
    assert re.findall(r":param (\w+):", doc) == SPECS[hook]


def test_the_check_notices_a_hook_whose_documented_arguments_drifted():
    drifted = DOC.read_text(encoding="utf-8").replace("### `track_event(event)`", "### `track_event(evt)`")
    assert documented_hooks(drifted)["track_event"][0] == ["evt"] != SPECS["track_event"]


def test_the_check_notices_an_undocumented_hook():
    text = DOC.read_text(encoding="utf-8")
    start = text.index("### `startup(app)`")
    without = text[:start] + text[text.index("### `register_commands(cli)`"):]
    assert "startup" not in documented_hooks(without)
