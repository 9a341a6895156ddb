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

from sqlalchemy import select

from asthron.extensions import db
from asthron.models.chat import ConversationOwner
from asthron.models.leads import Lead, LeadSource
from asthron.providers.ai import Tool
from asthron.services import conversations

log = logging.getLogger(__name__)

HANDOFF_NOTICE = "A person will join shortly."
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
    description="Save the visitor's contact details so the team can follow up. Call it when the visitor "
                "gives an email address or a phone number.",
    parameters={"type": "object", "additionalProperties": False, "properties": {
        "name": {"type": "string", "maxLength": 200, "description": "The visitor's name, if given."},
        "email": {"type": "string", "maxLength": 254, "description": "The visitor's email address."},
        "phone": {"type": "string", "maxLength": 30, "description": "The visitor's phone number."},
        "notes": {"type": "string", "maxLength": 2000, "description": "What the visitor wants, briefly."},
    }},
)


def capture_lead(conversation, arguments):
    """Create or update the conversation's lead from validated details."""
    _only(arguments, ("name", "email", "phone", "notes"))
    name = _text(arguments, "name", limit=200)
    email = valid_email(_text(arguments, "email", limit=254))
    phone = valid_phone(_text(arguments, "phone", limit=30))
    notes = _text(arguments, "notes", limit=2000)
    if not (email or phone):
        raise ToolArgumentError("Give an email address or a phone number.")
    lead = db.session.execute(select(Lead).where(Lead.conversation_id == conversation.id,
                                                 Lead.workspace_id == conversation.workspace_id)
                              .order_by(Lead.id).limit(1)).scalar()
    if lead is None:
        lead = Lead(workspace_id=conversation.workspace_id, conversation_id=conversation.id, source=LeadSource.ai)
        db.session.add(lead)
    for key, value in (("name", name), ("email", email), ("phone", phone), ("notes", notes)):
        if value is not None:  # a later call adds details; it does not erase earlier ones
            setattr(lead, key, value)
    db.session.flush()
    return {"ok": True, "lead_id": lead.id, "saved": [k for k in ("name", "email", "phone", "notes")
                                                      if getattr(lead, k)]}


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
    flag_for_human(conversation, reason)
    conversations.add_message(conversation, "system", HANDOFF_NOTICE)
    return {"ok": True, "owner": conversation.owner.value}


def flag_for_human(conversation, reason):
    """Mark `conversation` as waiting for a person and publish its new state after commit."""
    conversation.owner = ConversationOwner.waiting
    conversation.needs_human = True
    conversation.flag_reason = reason[:200]
    conversations.publish_after_commit(conversation.id, {"type": "state", "owner": conversation.owner.value,
                                                         "needs_human": True})


register(CAPTURE_LEAD, capture_lead)
register(HANDOFF, handoff)
