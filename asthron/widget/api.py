"""The visitor API under /widget/api/v1: JSON and SSE for the widget on clients' websites.

No request here is signed in: a public key names the workspace, a per-conversation token opens a
conversation, and every query runs inside `tenancy.scoped(...)` for that one workspace. The
contract is in docs/widget.md; domain work is in asthron/services/conversations.py.
"""
import json
import logging
from functools import wraps

from flask import (
    Blueprint,
    Response,
    current_app,
    g,
    jsonify,
    request,
    stream_with_context,
)
from sqlalchemy import String, cast, select
from werkzeug.exceptions import HTTPException

from asthron import tenancy
from asthron.extensions import db
from asthron.models.tenancy import Workspace, WorkspaceStatus
from asthron.services import conversations as service
from asthron.services import widget_settings
from asthron.widget import limits

log = logging.getLogger(__name__)

bp = Blueprint("widget_api", __name__, url_prefix="/widget/api/v1")

MAX_BODY = 16 * 1024
MAX_KEY = 100
MAX_NOTICE_VERSION = 40
ALLOW_METHODS = "GET, POST"
ALLOW_HEADERS = "Content-Type, Authorization, Last-Event-ID, Idempotency-Key"
VISITOR = {"actor_id": None, "actor": "visitor"}
STATUS = {"invalid_request": 400, "unauthorized": 401, "consent_required": 403, "origin_not_allowed": 403,
          "workspace_unavailable": 403, "not_found": 404, "slot_taken": 409, "payload_too_large": 413,
          "idempotency_mismatch": 422, "rate_limited": 429,
          "temporarily_unavailable": 503}
MESSAGES = {
    "unauthorized": "Send the conversation's token as 'Authorization: Bearer <token>'.",
    "consent_required": "Accept the notice before sending a message.",
    "origin_not_allowed": "This website is not allowed to use this chat.",
    "workspace_unavailable": "This chat is not available right now.",
    "not_found": "There is no such chat or conversation.",
    "payload_too_large": f"The request body is larger than {MAX_BODY // 1024} KB.",
    "rate_limited": "Too many requests in a short time. Wait a moment, then try again.",
    "temporarily_unavailable": "The chat is temporarily unavailable. Please try again in a moment.",
}
HTTP_CODES = {400: "invalid_request", 401: "unauthorized", 403: "origin_not_allowed", 404: "not_found",
              405: "invalid_request", 413: "payload_too_large", 429: "rate_limited"}


class ApiError(Exception):
    """A visitor request that cannot be served, with its contract code and a sentence for people."""

    def __init__(self, code, message=None, *, retry_after=None):
        super().__init__(message or MESSAGES.get(code, code))
        self.code, self.message, self.retry_after = code, message or MESSAGES.get(code, code), retry_after


def error_response(code, message=None, retry_after=None):
    """Return the contract's JSON error for `code`."""
    response = jsonify(error={"code": code, "message": message or MESSAGES.get(code, code)})
    response.status_code = STATUS[code]
    if retry_after:
        response.headers["Retry-After"] = str(retry_after)
    return response


@bp.errorhandler(ApiError)
def _api_error(exc):
    return error_response(exc.code, exc.message, exc.retry_after)


@bp.errorhandler(limits.RateLimited)
def _rate_limited(exc):
    return error_response("rate_limited", retry_after=exc.retry_after)


@bp.errorhandler(HTTPException)
def _http_error(exc):
    code = HTTP_CODES.get(exc.code, "temporarily_unavailable" if exc.code >= 500 else "invalid_request")
    return error_response(code, None if code != "invalid_request" else "The request could not be understood.")


def outside_routes_error(exc):
    """Answer an unknown path or method under the API's prefix in JSON too (no blueprint matched it)."""
    from asthron.websecurity import handle_http_error

    if request.path.startswith(bp.url_prefix + "/"):
        return _http_error(exc)
    return handle_http_error(exc)


@bp.errorhandler(Exception)
def _unexpected(exc):
    # The widget must never see a 500 or an HTML page: log the cause, answer a polite JSON 503.
    log.exception("visitor API request failed: %s %s", request.method, request.path)
    db.session.rollback()
    return error_response("temporarily_unavailable")


# --- Request guards: body size, preflight, CORS -----------------------------------------------------

@bp.before_request
def _guard():
    g.audit_actor = VISITOR
    request.max_content_length = MAX_BODY
    if request.content_length is not None and request.content_length > MAX_BODY:
        raise ApiError("payload_too_large")
    if request.method == "OPTIONS":
        return _preflight()
    return None


@bp.after_request
def _cors(response):
    response.vary.add("Origin")
    origin = g.get("cors_origin")
    if origin:
        response.headers["Access-Control-Allow-Origin"] = origin
    response.headers.setdefault("Cache-Control", "no-store")
    return response


def _preflight():
    origin = _request_origin()
    if not _preflight_allowed(origin):
        raise ApiError("origin_not_allowed")
    g.cors_origin = origin
    response = current_app.response_class(status=204)
    response.headers.update({"Access-Control-Allow-Methods": ALLOW_METHODS,
                             "Access-Control-Allow-Headers": ALLOW_HEADERS, "Access-Control-Max-Age": "600"})
    return response


def _preflight_allowed(origin):
    # A preflight carries no body and no token: judge by what the URL names.
    if origin == _own_origin():
        return True
    with tenancy.unrestricted():
        conversation_id = (request.view_args or {}).get("conversation_id")
        if conversation_id:
            conversation = db.session.get(service.Conversation, conversation_id[:40])
            return conversation is not None and origin in (conversation.workspace.allowed_origins or [])
        key = request.args.get("key")
        if key:
            workspace = service.workspace_for_key(key[:MAX_KEY])
            return workspace is not None and origin in (workspace.allowed_origins or [])
        # POST /conversations names its workspace in the body only: any workspace's origin may ask.
        quoted = json.dumps(origin)
        return db.session.execute(select(Workspace.id).where(
            cast(Workspace.allowed_origins, String).contains(quoted, autoescape=True)).limit(1)).first() is not None


def _request_origin():
    origin = (request.headers.get("Origin") or "").strip().rstrip("/").lower()
    if not origin and request.headers.get("Sec-Fetch-Site") == "same-origin":
        # Browsers send no Origin on a same-origin GET (admin preview, demo sites, EventSource); they
        # set Sec-Fetch-Site themselves and no page script can forge it.
        return _own_origin()
    if not origin or origin == "null":
        raise ApiError("origin_not_allowed")
    return origin


def _own_origin():
    return request.host_url.rstrip("/").lower()


def _admit(workspace, origin):
    """Accept `origin` for `workspace` (CORS from here on), then refuse a workspace that is not active."""
    if origin != _own_origin() and origin not in (workspace.allowed_origins or []):
        raise ApiError("origin_not_allowed")
    g.cors_origin = origin
    if workspace.status != WorkspaceStatus.active:
        raise ApiError("workspace_unavailable")


def _scope(workspace):
    return tenancy.Scope(agency_ids=frozenset({workspace.agency_id}), workspace_ids=frozenset({workspace.id}),
                         data_workspace_ids=frozenset({workspace.id}))


def _client_ip():
    return request.remote_addr or "unknown"


# --- Input --------------------------------------------------------------------------------------------

def _json_body():
    data = request.get_json(force=True, silent=True)
    if not isinstance(data, dict):
        raise ApiError("invalid_request", "The body must be a JSON object.")
    return data


def _string(data, name, *, max_length, strip=False):
    value = data.get(name)
    if value is None:
        raise ApiError("invalid_request", f"{name} is required.")
    if not isinstance(value, str):
        raise ApiError("invalid_request", f"{name} must be a string.")
    value = value.strip() if strip else value
    if not value:
        raise ApiError("invalid_request", f"{name} must not be empty.")
    if len(value) > max_length:
        raise ApiError("invalid_request", f"{name} must be at most {max_length} characters.")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ApiError("invalid_request", f"{name} must be valid Unicode text.") from None
    if "\x00" in value:
        raise ApiError("invalid_request", f"{name} must not contain NUL characters.")
    return value


def _message_id(value, name):
    if value in (None, ""):
        return 0
    if not value.isdigit() or len(value) > 18:
        raise ApiError("invalid_request", f"{name} must be a message id (a whole number).")
    return int(value)


def _keyed_workspace(key, origin):
    workspace = service.workspace_for_key(key) if key else None
    if workspace is None:
        limits.hit(("ASTHRON_WIDGET_LIMIT_READS_PER_IP", _client_ip()))  # slows guessing keys
        raise ApiError("not_found")
    _admit(workspace, origin)
    return workspace


def visitor_conversation(allow_query_token=False):
    """Resolve the token's conversation, admit the origin, and run the view in its workspace's scope."""
    def decorate(view):
        @wraps(view)
        def wrapper(conversation_id):
            origin = _request_origin()
            token = _bearer_token() or (request.args.get("token") if allow_query_token else None)
            if not token:
                raise ApiError("unauthorized")
            opened = service.open_conversation(conversation_id, token)
            if opened is None:
                raise ApiError("not_found")
            conversation, settings = opened
            _admit(conversation.workspace, origin)
            with tenancy.scoped(_scope(conversation.workspace)):
                return view(conversation, settings)
        return wrapper
    return decorate


def _bearer_token():
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" else None


# --- Routes -------------------------------------------------------------------------------------------

@bp.get("/config")
def config():
    """Return a workspace's widget appearance and consent notice."""
    workspace = _keyed_workspace(request.args.get("key", "")[:MAX_KEY], _request_origin())
    limits.hit(("ASTHRON_WIDGET_LIMIT_READS_PER_IP", _client_ip()))
    with tenancy.scoped(_scope(workspace)):
        settings = widget_settings.current(workspace.id)
        return jsonify(
            workspace={"name": workspace.name},
            appearance={"colour": settings.colour, "position": settings.position,
                        "assistant_name": settings.assistant_name, "greeting": settings.greeting,
                        "language": settings.language, "strings": settings.strings or {}},
            lead_form=settings.lead_form or "off",  # when the widget shows the lead form: off, start, after_reply
            consent={"required": bool(settings.consent_required), "notice": settings.consent_notice or "",
                     "version": settings.notice_version, "privacy_url": settings.privacy_url or None})


@bp.post("/conversations")
def create_conversation():
    """Start a conversation for a visitor and return its id and secret token."""
    origin = _request_origin()
    key = _string(_json_body(), "key", max_length=MAX_KEY)
    workspace = _keyed_workspace(key, origin)
    limits.hit(("ASTHRON_WIDGET_LIMIT_CONVERSATIONS_PER_IP", _client_ip()),
               ("ASTHRON_WIDGET_LIMIT_WRITES_PER_WORKSPACE", workspace.id))
    with tenancy.scoped(_scope(workspace)):
        settings = widget_settings.current(workspace.id)
        conversation, token = service.start_conversation(workspace, origin=origin)
        body = {"id": conversation.id, "token": token, "owner": conversation.owner.value,
                "consent_required": bool(settings.consent_required)}
        db.session.commit()
    return jsonify(body), 201


@bp.get("/conversations/<conversation_id>")
@visitor_conversation()
def show_conversation(conversation, settings):
    """Return who answers the conversation and the state of the visitor's consent."""
    limits.hit(("ASTHRON_WIDGET_LIMIT_READS_PER_IP", _client_ip()))
    from asthron.services import inbox

    return jsonify(id=conversation.id, needs_human=conversation.needs_human,
                   consent={"required": bool(settings.consent_required),
                            "accepted_version": conversation.consent_version},
                   **inbox.visitor_state(conversation))  # owner, staff, away, expected_reply, ask_email


@bp.post("/conversations/<conversation_id>/consent")
@visitor_conversation()
def accept_consent(conversation, settings):
    """Record the visitor's acceptance of the workspace's current notice."""
    version = _string(_json_body(), "notice_version", max_length=MAX_NOTICE_VERSION)
    limits.hit(("ASTHRON_WIDGET_LIMIT_MESSAGES_PER_IP", _client_ip()),
               ("ASTHRON_WIDGET_LIMIT_WRITES_PER_WORKSPACE", conversation.workspace_id))
    try:
        record = service.record_consent(conversation, settings, version)
    except service.WrongNoticeVersion as exc:
        raise ApiError("invalid_request", str(exc)) from None
    body = {"consent": {"notice_version": record.notice_version, "accepted_at": record.accepted_at.isoformat()}}
    db.session.commit()
    return jsonify(body), 201


@bp.post("/conversations/<conversation_id>/messages")
@visitor_conversation()
def post_message(conversation, settings):
    """Store the visitor's message; the AI's reply follows on the stream."""
    text = _string(_json_body(), "text", max_length=service.MAX_TEXT, strip=True)
    limits.hit(("ASTHRON_WIDGET_LIMIT_MESSAGES_PER_CONVERSATION", conversation.id),
               ("ASTHRON_WIDGET_LIMIT_MESSAGES_PER_IP", _client_ip()),
               ("ASTHRON_WIDGET_LIMIT_WRITES_PER_WORKSPACE", conversation.workspace_id))
    try:
        message = service.post_visitor_message(conversation, settings, text)
    except service.ConsentRequired:
        raise ApiError("consent_required") from None
    body = {"message": service.message_json(message)}
    db.session.commit()
    return jsonify(body), 201


@bp.get("/conversations/<conversation_id>/messages")
@visitor_conversation()
def list_messages(conversation, settings):
    """Return up to 100 messages after `after`, oldest first (the widget's polling fallback)."""
    after = _message_id(request.args.get("after"), "after")
    limits.hit(("ASTHRON_WIDGET_LIMIT_READS_PER_IP", _client_ip()))
    return jsonify(messages=[service.message_json(m) for m in service.list_messages(conversation.id, after=after)])


@bp.get("/conversations/<conversation_id>/stream")
@visitor_conversation(allow_query_token=True)
def stream(conversation, settings):
    """Stream stored messages after Last-Event-ID, then live events, as server-sent events."""
    header = request.headers.get("Last-Event-ID")
    last_id = _message_id(header if header is not None else request.args.get("last_event_id"), "last_event_id")
    limits.hit(("ASTHRON_WIDGET_LIMIT_READS_PER_IP", _client_ip()))
    from asthron.widget.sse import events

    body = events(current_app._get_current_object(), conversation.id, _scope(conversation.workspace), last_id)
    return Response(stream_with_context(body), mimetype="text/event-stream",
                    headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})


# Handoff routes (ask for a person, leave an email) live in their own module on this blueprint.
from asthron.widget import handoff_api  # noqa: E402,F401
