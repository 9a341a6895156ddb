"""Tools the AI may propose: a registry of name -> (schema, handler), run by the server, never by the model.

A handler takes the conversation and the proposed arguments and returns a result dict that goes
back to the model: `{"ok": True, ...}` or `{"ok": False, "error": "a sentence"}`. Invalid arguments
are an error result, never an exception. A tool runs only if the workspace enabled it, and acts only
on the conversation's own workspace. Later capabilities add theirs with `register(...)` (booking).
"""
import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from asthron.models.chat import ConversationOwner
from asthron.models.leads import LeadSource
from asthron.providers.ai import Tool
from asthron.services import handoff as handoff_service

log = logging.getLogger(__name__)

HANDOFF_NOTICE = handoff_service.HANDOFF_NOTICE
EMAIL = re.compile(r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
                   r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$")
PHONE_CHARS = re.compile(r"^\+?[0-9 ().\-/]{6,30}$")


class ToolArgumentError(ValueError):
    """The model proposed arguments the server will not act on; the message goes back to the model."""


@dataclass(frozen=True)
class RegisteredTool:
    """A tool's schema (what the model sees) and its handler (what the server runs)."""

    tool: Tool
    handler: Callable


_tools: dict[str, RegisteredTool] = {}


def register(tool, handler):
    """Add `tool` with `handler(conversation, arguments) -> dict`; a name registers once per process."""
    existing = _tools.get(tool.name)
    if existing is not None and existing.handler is not handler:
        raise ValueError(f"a tool named {tool.name!r} is already registered")
    _tools[tool.name] = RegisteredTool(tool, handler)


def names():
    """Return the names of all registered tools, sorted."""
    return sorted(_tools)


def enabled(widget_settings):
    """Return the schemas of the registered tools the workspace enabled, in registry order."""
    wanted = set(widget_settings.enabled_tools or ())
    return tuple(entry.tool for name, entry in _tools.items() if name in wanted)


def run(conversation, widget_settings, call):
    """Run a proposed ToolCall for `conversation` and return its result dict (never raises for bad input)."""
    entry = _tools.get(call.name)
    if entry is None or call.name not in set(widget_settings.enabled_tools or ()):
        return {"ok": False, "error": f"There is no tool named {call.name!r} here."}
    if not isinstance(call.arguments, Mapping):
        return {"ok": False, "error": "The arguments must be a JSON object."}
    try:
        return entry.handler(conversation, dict(call.arguments))
    except ToolArgumentError as exc:
        return {"ok": False, "error": str(exc)}


def _text(arguments, key, *, limit, required=False):
    value = arguments.get(key)
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise ToolArgumentError(f"{key} is required.")
        return None
    if not isinstance(value, str):
        raise ToolArgumentError(f"{key} must be text.")
    value = value.strip()
    if len(value) > limit:
        raise ToolArgumentError(f"{key} must be at most {limit} characters.")
    return value


def _only(arguments, allowed):
    unknown = sorted(set(arguments) - set(allowed))
    if unknown:
        raise ToolArgumentError(f"Unknown argument(s): {', '.join(unknown)}.")


def valid_email(value):
    """Return `value` as an email address, or raise ToolArgumentError."""
    if value is None:
        return None
    if len(value) > 254 or not EMAIL.match(value):
        raise ToolArgumentError("email is not a valid email address.")
    return value


def valid_phone(value):
    """Return `value` as a phone number (+ and digits kept), or raise ToolArgumentError."""
    if value is None:
        return None
    digits = re.sub(r"\D", "", value)
    if not PHONE_CHARS.match(value) or not 6 <= len(digits) <= 15:
        raise ToolArgumentError("phone must be a phone number of 6 to 15 digits.")
    return ("+" if value.startswith("+") else "") + digits


CAPTURE_LEAD = Tool(
    name="capture_lead",
    description="Save the visitor's contact details and answers so the team can follow up. Call it when the "
                "visitor gives an email address, a phone number or an answer to one of the questions.",
    parameters={"type": "object", "additionalProperties": False, "properties": {
        "name": {"type": "string", "maxLength": 200, "description": "The visitor's name, if given."},
        "email": {"type": "string", "maxLength": 254, "description": "The visitor's email address."},
        "phone": {"type": "string", "maxLength": 40,
                  "description": "The visitor's phone number, with its country code if they gave one."},
        "notes": {"type": "string", "maxLength": 500, "description": "What the visitor wants, briefly."},
        "fields": {"type": "object", "description": "Answers to the questions, by the field key named beside "
                                                    "each question, e.g. {\"budget\": 5000}."},
    }},
)


def capture_lead(conversation, arguments):
    """Create or update the visitor's lead, validated like every lead; ask the widget for the form if fields lack."""
    from asthron.services import conversations, leads

    _only(arguments, ("name", "email", "phone", "notes", "fields"))
    core = {key: _text(arguments, key, limit=limit) for key, limit in (("name", 200), ("email", 254), ("phone", 40))}
    notes = _text(arguments, "notes", limit=500)
    extra = arguments.get("fields") or {}
    if not isinstance(extra, Mapping):
        raise ToolArgumentError("fields must be an object of field key: value.")
    values = {**extra, **{key: value for key, value in core.items() if value is not None}}
    try:
        lead = leads.capture(conversation.workspace_id, source=LeadSource.ai, values=values,
                             conversation_id=conversation.id, consent_version=conversation.consent_version,
                             consented_at=conversation.consented_at, require_all=False, note=notes)
    except leads.LeadValidationError as exc:
        raise ToolArgumentError(" ".join(f"{key}: {message}" for key, message in exc.errors.items())) from None
    missing = leads.missing_required(lead)
    if missing:  # the widget shows its lead form for what the visitor has not said yet
        conversations.publish_after_commit(conversation.id, {"type": "lead_form", "missing": missing})
    return {"ok": True, "lead_id": lead.id, "saved": sorted(values), "missing": missing}


HANDOFF = Tool(
    name="handoff",
    description="Hand the conversation to a person from the team. Call it when the visitor asks for a "
                "human, or when you cannot help.",
    parameters={"type": "object", "additionalProperties": False, "properties": {
        "reason": {"type": "string", "maxLength": 200, "description": "Why a person is needed, briefly."},
    }},
)


def handoff(conversation, arguments):
    """Give the conversation to the team: waiting for a human, flagged, with a notice to the visitor."""
    _only(arguments, ("reason",))
    reason = _text(arguments, "reason", limit=200) or "The visitor asked for a person."
    if conversation.owner in (ConversationOwner.human, ConversationOwner.closed):
        return {"ok": True, "owner": conversation.owner.value}
    handoff_service.request_handoff(conversation, reason=reason)  # notifies the visitor and the team
    return {"ok": True, "owner": conversation.owner.value}


def flag_for_human(conversation, reason):
    """Hand `conversation` to the team (the AI failed or its budget is spent); the caller tells the visitor."""
    handoff_service.request_handoff(conversation, reason=reason, announce=False)


register(CAPTURE_LEAD, capture_lead)
register(HANDOFF, handoff)
