"""A workspace's widget settings: one row per workspace, and the rules their values follow."""
import json
import re
from urllib.parse import urlsplit

from sqlalchemy import select

from asthron.extensions import db
from asthron.models.chat import WidgetSettings
from asthron.services import tenancy

# The widget's own texts a workspace may translate or reword (asthron/widget/static/widget.js, `T`).
STRING_KEYS = ("open", "close", "title", "send", "input", "placeholder", "accept", "privacy", "typing",
               "failed", "you", "human", "person", "with", "email", "notify", "away",
               "saved")
FALLBACK_TOOLS = ("capture_lead", "handoff")
MAX_STRING = 300
MAX_QUESTIONS = 20


class SettingsError(ValueError):
    """A widget setting a user entered is not acceptable; the message says why."""


def current(workspace_id):
    """Return a workspace's widget settings, or unsaved defaults when it has none yet."""
    found = db.session.execute(select(WidgetSettings).where(WidgetSettings.workspace_id == workspace_id)).scalar()
    return found or defaults(workspace_id)


def defaults(workspace_id):
    """Return an unsaved settings row with every column default filled in."""
    settings = WidgetSettings(workspace_id=workspace_id)
    for column in WidgetSettings.__table__.columns:
        default = column.default
        if default is None or getattr(settings, column.key) is not None:
            continue
        # Column defaults apply at INSERT only; a transient row fills them in itself.
        setattr(settings, column.key, default.arg(None) if default.is_callable else default.arg)
    return settings


def ensure(workspace_id):
    """Return the workspace's settings row, creating it with the defaults if it has none."""
    found = db.session.execute(select(WidgetSettings).where(WidgetSettings.workspace_id == workspace_id)).scalar()
    if found is None:
        found = WidgetSettings(workspace_id=workspace_id)
        db.session.add(found)
        db.session.flush()
    return found


def ensure_all(workspace_ids):
    """Create default settings for each of the workspaces that has none; return how many were made."""
    return tenancy.ensure_workspace_rows(WidgetSettings, workspace_ids)


def check_colour(value):
    """Return a #rrggbb colour in lower case, or raise SettingsError."""
    if not re.fullmatch(r"#[0-9a-fA-F]{6}", (value or "").strip()):
        raise SettingsError("Use a colour like #2563eb (# and six hexadecimal digits).")
    return value.strip().lower()


def check_url(value):
    """Return an http(s) address, or None for an empty one; raise SettingsError for anything else."""
    value = (value or "").strip()
    if not value:
        return None
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc or any(c.isspace() for c in value):
        raise SettingsError("Use a web address that starts with https:// (or http://).")
    return value


def parse_strings(text):
    """Return the widget texts a JSON object overrides, or raise SettingsError naming the problem."""
    if not (text or "").strip():
        return {}
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise SettingsError(f"This is not valid JSON: {exc.msg} (line {exc.lineno}).") from None
    if not isinstance(value, dict):
        raise SettingsError('Give a JSON object, like {"send": "Envoyer"}.')
    unknown = sorted(set(value) - set(STRING_KEYS))
    if unknown:
        raise SettingsError(f"Unknown text names: {', '.join(unknown)}. Known: {', '.join(STRING_KEYS)}.")
    for key, text_value in value.items():
        if not isinstance(text_value, str) or not text_value.strip() or len(text_value) > MAX_STRING:
            raise SettingsError(f"{key!r} must be a non-empty text of at most {MAX_STRING} characters.")
    return value


def parse_questions(text):
    """Return the qualification questions, one per non-empty line, or raise SettingsError."""
    questions = [line.strip() for line in (text or "").splitlines() if line.strip()]
    if len(questions) > MAX_QUESTIONS:
        raise SettingsError(f"Ask at most {MAX_QUESTIONS} questions.")
    if any(len(q) > MAX_STRING for q in questions):
        raise SettingsError(f"Keep each question under {MAX_STRING} characters.")
    return questions


def known_tools():
    """Return the names of the tools a workspace may enable (the tool registry's, when installed)."""
    from asthron.services import tools

    return sorted(tools.names()) or list(FALLBACK_TOOLS)


def provider_names():
    """Return the names of the installed AI providers ("offline" when none is registered yet)."""
    from asthron.registry import ai_providers

    return ai_providers.names() or ["offline"]
