"""The built-in email templates: handoff requested and new lead (to staff), transcript (to the visitor).

Bodies live in asthron/templates/email/<name>.txt and .html. The HTML is rendered with Jinja
autoescaping on, so a lead named `<img src=x onerror=alert(1)>` is shown as text; the plain-text
part is rendered without escaping, so it reads as typed. Links point into the admin at
ASTHRON_BASE_URL. Each renderer loads its rows by id within the notification's workspace (the
delivery job scopes it), and raises TemplateError when the row is gone.
"""
import os
from datetime import UTC
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from flask import current_app
from jinja2 import Environment, FileSystemLoader, StrictUndefined
from sqlalchemy import select
from werkzeug.routing import BuildError

from asthron.extensions import db
from asthron.models.chat import Conversation, Message, MessageRole
from asthron.models.tenancy import Workspace
from asthron.providers.email import Attachment
from asthron.services.notifications import RenderedEmail, TemplateError, register_template

_FOLDER = os.path.join(os.path.dirname(os.path.dirname(__file__)), "templates")
_html = Environment(loader=FileSystemLoader(_FOLDER), autoescape=True, undefined=StrictUndefined)
_text = Environment(loader=FileSystemLoader(_FOLDER), autoescape=False, undefined=StrictUndefined,
                    keep_trailing_newline=True)
WHO = {MessageRole.visitor: "You", MessageRole.assistant: "Assistant", MessageRole.staff: "Team"}
TRANSCRIPT_LIMIT = 500
SUBJECT_NAME_LIMIT = 60


def render_pair(name, subject, **values):
    """Render asthron/templates/email/<name>.txt and .html with `values` into a RenderedEmail."""
    values = {"subject": subject, "link": None, "link_label": "", **values}
    text = _text.get_template(f"email/{name}.txt").render(**values)
    html = _html.get_template(f"email/{name}.html").render(**values)
    return RenderedEmail(subject=subject, text=text, html=html)


def admin_link(endpoint, **values):
    """Return the admin URL of `endpoint` under ASTHRON_BASE_URL, or None when no such view exists."""
    try:
        path = current_app.url_map.bind("localhost").build(endpoint, values)
    except BuildError:
        return None
    return current_app.config["ASTHRON_BASE_URL"].rstrip("/") + path


def _workspace_name(workspace_id):
    return db.session.execute(select(Workspace.name).where(Workspace.id == workspace_id)).scalar() or ""


def _local(moment, zone):
    """Return `moment` as text in the workspace's time zone (stored times are UTC)."""
    if moment is None:
        return ""
    moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    try:
        tz = ZoneInfo(zone or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        tz = UTC
    return moment.astimezone(tz).strftime("%Y-%m-%d %H:%M %Z")


def _conversation(context):
    conversation = db.session.get(Conversation, str(context.get("conversation_id") or ""))
    if conversation is None or conversation.workspace_id != context["workspace_id"]:
        raise TemplateError("the conversation no longer exists")
    return conversation


def _shorten(text, limit):
    text = " ".join(str(text or "").split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def handoff_requested(context):
    """Tell the team a visitor waits for a person."""
    conversation = _conversation(context)
    last = db.session.execute(select(Message.text).where(
        Message.conversation_id == conversation.id, Message.role == MessageRole.visitor)
        .order_by(Message.id.desc()).limit(1)).scalar()
    workspace_name = _workspace_name(context["workspace_id"])
    return render_pair("handoff_requested", f"A visitor is waiting for a person on {_shorten(workspace_name, 80)}",
                       workspace_name=workspace_name, reason=conversation.flag_reason or "",
                       last_message=_shorten(last, 1000) if last else "",
                       link=admin_link("InboxView.show", conversation_id=conversation.id)
                       or admin_link("ConversationView.show", pk=conversation.id),
                       link_label="Open it in the inbox")


def new_lead(context):
    """Tell the team a lead was captured."""
    from asthron.models.leads import Lead

    lead = db.session.get(Lead, context.get("lead_id"))
    if lead is None or lead.workspace_id != context["workspace_id"]:
        raise TemplateError("the lead no longer exists")
    label = lead.name or lead.email or lead.phone or f"Lead {lead.id}"
    details = [(k, v) for k, v in (("Name", lead.name), ("Email", lead.email), ("Phone", lead.phone),
                                   ("Source", getattr(lead.source, "value", lead.source)), ("Score", lead.score),
                                   ("Notes", lead.notes)) if v not in (None, "")]
    workspace_name = _workspace_name(context["workspace_id"])
    return render_pair("new_lead", f"New lead: {_shorten(label, SUBJECT_NAME_LIMIT)}",
                       workspace_name=workspace_name, lead_label=_shorten(label, 200), details=details,
                       link=admin_link("LeadView.show", pk=lead.id), link_label="Open the lead")


def transcript(context):
    """Send the visitor a copy of their conversation, with a text file attached."""
    conversation = _conversation(context)
    rows = db.session.execute(select(Message).where(
        Message.conversation_id == conversation.id, Message.role.in_(list(WHO)))
        .order_by(Message.id).limit(TRANSCRIPT_LIMIT)).scalars().all()
    zone = db.session.execute(select(Workspace.time_zone).where(Workspace.id == context["workspace_id"])).scalar()
    messages = [{"who": WHO[m.role] if m.role != MessageRole.staff else (m.author or WHO[m.role]),
                 "at": _local(m.created_at, zone), "text": m.text} for m in rows]
    workspace_name = _workspace_name(context["workspace_id"])
    started = _local(conversation.created_at, zone)[:10]
    rendered = render_pair("transcript", f"Your conversation with {_shorten(workspace_name, 80)}",
                           workspace_name=workspace_name, messages=messages, started=started)
    attachment = Attachment(filename=f"conversation-{started or 'transcript'}.txt",
                            content_type="text/plain; charset=utf-8", data=rendered.text.encode("utf-8"))
    return RenderedEmail(subject=rendered.subject, text=rendered.text, html=rendered.html, attachments=(attachment,))


register_template("handoff_requested", label="A visitor asks for a person", render=handoff_requested,
                  audience="staff")
register_template("new_lead", label="A new lead is captured", render=new_lead, audience="staff")
register_template("transcript", label="Conversation transcript (to the visitor)", render=transcript,
                  audience="visitor")
