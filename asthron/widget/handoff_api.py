"""Visitor API routes for handoff: ask for a person, leave an email when nobody is available.

They live on the visitor API's blueprint (asthron/widget/api.py), with its origin, token, scope,
rate-limit and error handling; the logic is in asthron/services/handoff.py and inbox.py.
"""
from flask import jsonify

from asthron.extensions import db
from asthron.services import conversations as service
from asthron.services import handoff, inbox
from asthron.widget import limits
from asthron.widget.api import ApiError, _client_ip, _json_body, bp, visitor_conversation

VISITOR_REASON = "The visitor asked for a person."
MAX_EMAIL = 254


def _write_limits(conversation):
    limits.hit(("ASTHRON_WIDGET_LIMIT_MESSAGES_PER_CONVERSATION", conversation.id),
               ("ASTHRON_WIDGET_LIMIT_MESSAGES_PER_IP", _client_ip()),
               ("ASTHRON_WIDGET_LIMIT_WRITES_PER_WORKSPACE", conversation.workspace_id))


def _optional_body():
    from flask import request

    return _json_body() if request.get_data() else {}


@bp.post("/conversations/<conversation_id>/handoff")
@visitor_conversation()
def request_handoff(conversation, settings):
    """Hand the conversation to the team (idempotent); answer who answers now."""
    _optional_body()  # no fields, but a body that is there must be a JSON object
    _write_limits(conversation)
    if service.consent_pending(conversation, settings):
        raise ApiError("consent_required")
    handoff.request_handoff(conversation, reason=VISITOR_REASON)
    body = inbox.visitor_state(conversation)
    db.session.commit()
    return jsonify(body), 200


@bp.post("/conversations/<conversation_id>/email")
@visitor_conversation()
def leave_email(conversation, settings):
    """Store the address the visitor wants the team's answer sent to."""
    data = _json_body()
    value = data.get("email")
    if value is not None and not isinstance(value, str):
        raise ApiError("invalid_request", "email must be a string.")
    if value is not None and len(value) > MAX_EMAIL:
        raise ApiError("invalid_request", f"email must be at most {MAX_EMAIL} characters.")
    _write_limits(conversation)
    if service.consent_pending(conversation, settings):
        raise ApiError("consent_required")
    try:
        email = inbox.set_visitor_email(conversation, value)
    except inbox.InboxInputError as exc:
        raise ApiError("invalid_request", exc.errors["email"]) from None
    db.session.commit()
    return jsonify(email=email), 200
