"""Each workspace's sender identity and email transport, with the defaults from config.py.

An agency sends as each client: a workspace's email settings name the From name and address, a
Reply-To, and the transport (a plugin registered with `register_email_transports`) and its
settings, whose secrets are `{"$env": "VAR"}` references. A workspace without settings sends as
"<workspace name> <ASTHRON_EMAIL_FROM_ADDRESS>" through ASTHRON_EMAIL_TRANSPORT.
"""
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from email.utils import formataddr

from flask import current_app
from sqlalchemy import select

from asthron import registry
from asthron.extensions import db
from asthron.models.notifications import EmailSettings
from asthron.models.tenancy import Workspace
from asthron.providers.secrets import (
    ENV_KEY, SECRET_WORDS, SecretError, check_no_literal_secrets, is_reference, is_secret_name,
)
from asthron.tenancy import unrestricted

MAX_NAME = 120


class SettingsError(ValueError):
    """Email settings that cannot be stored; `errors` maps each field to its message."""

    def __init__(self, errors):
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))
        self.errors = errors


@dataclass(frozen=True)
class Sender:
    """Who a workspace's email comes from and how it leaves."""

    name: str
    address: str
    reply_to: str | None
    transport: str
    transport_settings: Mapping = field(default_factory=dict)  # unresolved: `$env` references kept

    @property
    def from_header(self):
        """Return the From header value, e.g. '"Acme Dental" <hello@acme.example>'."""
        return formataddr((self.name, self.address))


def sender_for(workspace_id):
    """Return the sender identity and transport of a workspace (its settings, else the defaults)."""
    with unrestricted():  # system work: jobs and widget requests both send as the workspace
        workspace_name = db.session.execute(select(Workspace.name).where(Workspace.id == workspace_id)).scalar()
        row = db.session.execute(select(EmailSettings).where(EmailSettings.workspace_id == workspace_id)).scalar()
    config = current_app.config
    name = (row.from_name if row and row.from_name else workspace_name) or config.get("APP_NAME", "Asthron")
    address = (row.from_address if row and row.from_address else None) or config["ASTHRON_EMAIL_FROM_ADDRESS"]
    if row and row.transport:
        transport, settings = row.transport, dict(row.transport_settings or {})
    else:
        transport, settings = config["ASTHRON_EMAIL_TRANSPORT"], default_transport_settings()
    return Sender(name=_one_line(name)[:MAX_NAME], address=address, reply_to=row.reply_to if row else None,
                  transport=transport, transport_settings=settings)


def sender_address(workspace_id):
    """Return the address a workspace's email comes from (its own, else ASTHRON_EMAIL_FROM_ADDRESS)."""
    with unrestricted():
        address = db.session.execute(select(EmailSettings.from_address)
                                     .where(EmailSettings.workspace_id == workspace_id)).scalar()
    return address or current_app.config["ASTHRON_EMAIL_FROM_ADDRESS"]


def default_transport_settings():
    """Return ASTHRON_EMAIL_TRANSPORT_SETTINGS as a dict (an invalid value is a configuration error)."""
    raw = current_app.config.get("ASTHRON_EMAIL_TRANSPORT_SETTINGS") or "{}"
    try:
        value = json.loads(raw) if isinstance(raw, str) else raw
    except ValueError:
        value = None  # the message must not quote the value: it may hold a literal secret
    if not isinstance(value, Mapping):
        raise ValueError("ASTHRON_EMAIL_TRANSPORT_SETTINGS must be a JSON object")
    return dict(value)


def clean(*, from_name, from_address, reply_to, transport, transport_settings):
    """Return the settings checked and normalised; raise SettingsError with a message per field."""
    from asthron.services.notifications import NotificationError, check_address

    errors, cleaned = {}, {}
    cleaned["from_name"] = _one_line(from_name or "").strip() or None
    if cleaned["from_name"] and len(cleaned["from_name"]) > MAX_NAME:
        errors["from_name"] = f"At most {MAX_NAME} characters."
    for key, value in (("from_address", from_address), ("reply_to", reply_to)):
        try:
            cleaned[key] = check_address(value) if (value or "").strip() else None
        except NotificationError:
            errors[key] = "Enter one email address, like hello@example.com."
    cleaned["transport"] = (transport or "").strip() or None
    settings, problem = _parse_settings(transport_settings)
    if problem:
        errors["transport_settings"] = problem
    elif cleaned["transport"]:
        problem = _check_transport(cleaned["transport"], settings)
        if problem:
            errors["transport" if problem.startswith("Unknown") else "transport_settings"] = problem
    cleaned["transport_settings"] = settings
    if errors:
        raise SettingsError(errors)
    return cleaned


def _parse_settings(value):
    if value is None or (isinstance(value, str) and not value.strip()):
        return {}, None
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return {}, 'Write the settings as a JSON object, e.g. {"host": "smtp.example.com"}.'
    if not isinstance(value, Mapping):
        return {}, "The settings must be a JSON object."
    try:
        check_no_literal_secrets(value)
    except SecretError as exc:
        return {}, str(exc)
    return dict(value), None


def _check_transport(name, settings):
    try:
        transport = registry.email_transports.get(name)
    except LookupError:
        return f"Unknown transport {name!r}; installed: {', '.join(registry.email_transports.names())}."
    try:
        transport.check_settings(settings)
    except ValueError as exc:
        return str(exc)
    return None


def without_literal_secrets(text):
    """Return settings JSON with literal values under secret-looking names blanked (for showing a form again)."""
    try:
        value = json.loads(text or "{}")
    except ValueError:
        # Unreadable: it may hold a secret we cannot find, so it is not shown again at all.
        return "" if any(word in (text or "").lower() for word in SECRET_WORDS) else text
    return json.dumps(_blank_secrets(value), indent=2)


def _blank_secrets(value, secret=False):
    if is_reference(value):
        return value
    if isinstance(value, Mapping):
        return {k: _blank_secrets(v, secret or is_secret_name(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [_blank_secrets(v, secret) for v in value]
    return "" if secret and value not in (None, "") else value


def transport_choices():
    """Return (name, label) of the installed transports, for a form's select."""
    return [(t.name, t.label or t.name) for t in sorted(registry.email_transports.all(), key=lambda t: t.name)]


def missing_variables(settings):
    """Return the names of `$env` variables the settings refer to that this process does not have."""
    found = []

    def walk(value):
        if is_reference(value):
            if value[ENV_KEY] not in os.environ:
                found.append(value[ENV_KEY])
        elif isinstance(value, Mapping):
            for item in value.values():
                walk(item)
        elif isinstance(value, (list, tuple)):
            for item in value:
                walk(item)

    walk(settings or {})
    return found


def _one_line(text):
    return " ".join(str(text).split())
