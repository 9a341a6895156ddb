"""The visitor lead form on the widget blueprint: the fields to render, and the visitor's answers.

The form is built from the workspace's lead fields; answers are validated by the same service as
every other lead (asthron/services/leads.py), and the conversation's accepted notice is the
lead's consent. Bad answers get a 400 naming each field.
"""
from flask import jsonify

from asthron.extensions import db
from asthron.services import conversations as conversation_service
from asthron.services import lead_fields, leads
from asthron.widget import limits
from asthron.widget.api import ApiError, _client_ip, _json_body, bp, visitor_conversation

FORM_MESSAGE = "Some answers need another look."


@bp.errorhandler(leads.LeadValidationError)
def _invalid_lead(exc):
    db.session.rollback()
    return jsonify(error={"code": "invalid_request", "message": FORM_MESSAGE, "fields": exc.errors}), 400


@bp.get("/conversations/<conversation_id>/lead-form")
@visitor_conversation()
def lead_form(conversation, settings):
    """Return the fields of the workspace's lead form, when to show it, and whether this visitor filled it."""
    limits.hit(("ASTHRON_WIDGET_LIMIT_READS_PER_IP", _client_ip()))
    return jsonify(fields=[lead_fields.field_json(f) for f in leads.fields(conversation.workspace_id)],
                   show=settings.lead_form or "off",
                   captured=leads.lead_for_conversation(conversation) is not None)


@bp.post("/conversations/<conversation_id>/lead")
@visitor_conversation()
def submit_lead(conversation, settings):
    """Save the visitor's answers to the lead form as the conversation's lead."""
    values = _json_body().get("fields")
    if not isinstance(values, dict):
        raise ApiError("invalid_request", "fields must be an object of field key: value.")
    limits.hit(("ASTHRON_WIDGET_LIMIT_MESSAGES_PER_CONVERSATION", conversation.id),
               ("ASTHRON_WIDGET_LIMIT_MESSAGES_PER_IP", _client_ip()),
               ("ASTHRON_WIDGET_LIMIT_WRITES_PER_WORKSPACE", conversation.workspace_id))
    if conversation_service.consent_pending(conversation, settings):
        raise ApiError("consent_required", "Accept the notice before sending your details.")
    lead = leads.capture(conversation.workspace_id, source="widget", values=values, conversation_id=conversation.id,
                         consent_version=conversation.consent_version, consented_at=conversation.consented_at)
    body = {"lead": {"id": lead.id}}
    db.session.commit()
    return jsonify(body), 201
