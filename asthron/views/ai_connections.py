"""Operator-managed AI connections: an AI provider plugin, a server's base URL and where its key lives.

The key itself never reaches the database or the page: the form takes the name of an environment
variable and stores `{"$env": "VAR"}` in `api_key_ref`; something that looks like a key is refused.
"""
import os
import re

from flask_appbuilder import ModelView
from flask_appbuilder.models.sqla.interface import SQLAInterface
from wtforms import BooleanField, SelectField, StringField
from wtforms.validators import URL, DataRequired, Length, Optional, Regexp, ValidationError

from asthron import audit
from asthron.models.chat import AIConnection
from asthron.providers import secrets
from asthron.views.base import RejectedFormIs400

FIELDS = ["name", "provider", "base_url", "api_key_variable", "default_model", "enabled"]
# Conventional variable names: upper case, digits and underscores. Keys are mixed case or start with sk-.
VARIABLE = re.compile(r"[A-Z_][A-Z0-9_]{0,99}")
KEY_PREFIXES = ("sk-", "sk_", "sk-proj", "key-", "bearer ")
NOT_A_VARIABLE = ("Give the name of the environment variable that holds the key (like OPENAI_API_KEY), "
                  "not the key itself: upper-case letters, digits and underscores.")

# Who created, changed or removed a connection matters: it decides where visitors' messages go.
audit.track(AIConnection)


def provider_choices():
    """Return (name, label) of each installed AI provider."""
    from asthron.registry import ai_providers

    return [(entry.name, getattr(entry.value, "label", "") or entry.name) for entry in
            sorted(ai_providers.entries(), key=lambda e: e.name)]


def key_reference(value):
    """Return the `{"$env": VAR}` reference for a variable name (None when empty); raise ValueError for a key."""
    value = (value or "").strip()
    if not value:
        return None
    if value.lower().startswith(KEY_PREFIXES) or not VARIABLE.fullmatch(value):
        # Run the platform's own check so the message is the one the docs describe.
        try:
            secrets.check_no_literal_secrets({"api_key": value})
        except secrets.SecretError as exc:
            raise ValueError(f"{NOT_A_VARIABLE} ({exc})") from None
        raise ValueError(NOT_A_VARIABLE)
    reference = {secrets.ENV_KEY: value}
    secrets.check_no_literal_secrets({"api_key": reference})
    return reference


def _check_variable(form, field):
    try:
        key_reference(field.data)
    except ValueError as exc:
        field.data = ""  # never echo what may be a key back into the page
        raise ValidationError(str(exc)) from None


def _variable_of(reference):
    return reference.get(secrets.ENV_KEY) if secrets.is_reference(reference) else None


def _describe_reference(reference):
    name = _variable_of(reference)
    if not name:
        return "no key"
    return f"${name} ({'set' if name in os.environ else 'not set'} in this process)"


class AIConnectionView(RejectedFormIs400, ModelView):
    """Connections to OpenAI or an OpenAI-compatible server (Ollama, vLLM, LM Studio) that workspaces pick."""

    datamodel = SQLAInterface(AIConnection)
    base_permissions = ["can_list", "can_show", "can_add", "can_edit", "can_delete"]
    list_title = show_title = "AI connections"
    add_title, edit_title = "Add an AI connection", "Edit AI connection"
    list_columns = ["name", "provider", "base_url", "api_key_ref", "default_model", "enabled"]
    show_columns = ["name", "provider", "base_url", "api_key_ref", "default_model", "enabled", "created_at",
                    "updated_at"]
    add_columns = edit_columns = FIELDS
    search_columns = ["name", "provider", "enabled"]
    base_order = ("name", "asc")
    label_columns = {"base_url": "Base URL", "api_key_ref": "API key", "api_key_variable": "API key variable",
                     "default_model": "Default model"}
    formatters_columns = {"api_key_ref": _describe_reference}
    description_columns = {
        "base_url": "Empty for OpenAI; http://localhost:11434/v1 for Ollama, http://HOST:8000/v1 for vLLM, "
                    "http://localhost:1234/v1 for LM Studio.",
        "default_model": "Used when a workspace picks this connection without naming a model.",
    }
    add_form_extra_fields = edit_form_extra_fields = {
        "provider": SelectField("Provider", choices=provider_choices, validators=[DataRequired()]),
        "api_key_variable": StringField(
            "API key variable", validators=[Optional(), Length(max=100), _check_variable],
            description="The name of the environment variable holding the key, e.g. OPENAI_API_KEY. "
                        "Leave empty for servers that need no key."),
        # FAB would make a non-null boolean "required", which refuses an unticked box: no way to disable.
        "enabled": BooleanField("Enabled", default=True, description="Workspaces can pick enabled connections."),
    }
    validators_columns = {
        "name": [DataRequired(), Length(max=100)],
        "base_url": [Optional(), Length(max=500), Regexp(r"^https?://", message="Use an http:// or https:// URL."),
                     URL(require_tld=False, message="Use an http:// or https:// URL.")],
        "default_model": [Length(max=200)],
    }

    def prefill_form(self, form, pk):
        item = self.datamodel.get(pk)
        form.api_key_variable.data = _variable_of(item.api_key_ref) if item else None

    def pre_add(self, item):
        self._store_reference(item)

    def pre_update(self, item):
        self._store_reference(item)

    @staticmethod
    def _store_reference(item):
        item.api_key_ref = key_reference(getattr(item, "api_key_variable", None))
        item.base_url = (item.base_url or "").strip() or None
