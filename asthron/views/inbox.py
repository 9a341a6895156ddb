"""The staff inbox at /inbox/: tabs, transcript, replies, notes, handoff actions and a live stream.

Thin: reads and changes go through asthron/services/inbox.py and handoff.py, under the query
guard, so another tenant's conversation is simply not found (404, audited). Permissions: `can_read`
(staff, admins, clients) and `can_work` (staff and admins); a client of a workspace is refused work
there even with `can_work` from another membership (the service checks the membership). Every POST
passes Flask-WTF's CSRF check (form field or `X-CSRFToken` header); JSON callers get JSON answers.
"""
import os
import time

from flask import Response, abort, current_app, jsonify, redirect, request, stream_with_context, url_for
from flask_appbuilder import BaseView, expose, has_access
from flask_login import current_user
from sqlalchemy import select

from asthron.extensions import db
from asthron.models.chat import Conversation, Message
from asthron.services import conversations as conversation_service
from asthron.services import handoff, inbox, streams
from asthron.tenancy import current_scope, unrestricted
from asthron.views.base import audit_denial
from asthron.widget.sse import RETRY, frame

STATIC = os.path.join(os.path.dirname(os.path.dirname(__file__)), "static")
READ, WORK = "read", "work"
ERROR_STATUS = {handoff.NotFound: 404, handoff.NotAllowed: 403, handoff.AlreadyTaken: 409,
                handoff.InvalidTransition: 409, inbox.InboxInputError: 400}


def _wants_json():
    return request.is_json or request.accept_mimetypes.best == "application/json"


def _user_id():
    return current_user.id


def _workspace_filter():
    """Return the workspace id the list is narrowed to, or None; 404 for a workspace outside the caller's scope."""
    raw = request.args.get("workspace") or request.form.get("workspace") or ""
    if not raw:
        return None
    if not raw.isdigit() or not current_scope().can_read_data(int(raw)):
        abort(404)
    return int(raw)


def _conversation(conversation_id):
    """Return the conversation in the caller's scope; 404 otherwise (audited when it belongs to another tenant)."""
    try:
        return handoff.get(conversation_id)
    except handoff.NotFound:
        with unrestricted():
            owner = db.session.scalar(select(Conversation.workspace_id).where(Conversation.id == conversation_id[:40]))
        if owner is not None:
            audit_denial(Conversation, conversation_id[:40], owner)
        abort(404)


class InboxView(BaseView):
    """Conversations waiting for a person, mine, all open and closed, with the tools to answer them."""

    route_base = "/inbox"
    default_view = "index"
    class_permission_name = "InboxView"
    base_permissions = ["can_read", "can_work"]
    method_permission_name = {name: READ for name in ("index", "show", "list_json", "show_json", "stream")}
    method_permission_name.update({name: WORK for name in ("take", "assign", "hand_back", "close", "reopen",
                                                          "reply", "note", "availability")})

    def create_blueprint(self, appbuilder, endpoint=None, static_folder=None):
        # The inbox's script is a static file: the CSP allows scripts from this origin, not inline ones.
        return super().create_blueprint(appbuilder, endpoint=endpoint, static_folder=STATIC)

    # --- pages -------------------------------------------------------------------------------------

    @expose("/")
    @has_access
    def index(self):
        """Show the inbox list of the chosen tab."""
        return self._page(None)

    @expose("/c/<conversation_id>")
    @has_access
    def show(self, conversation_id):
        """Show the inbox with one conversation open."""
        return self._page(_conversation(conversation_id))

    def _page(self, conversation):
        tab = request.args.get("tab") if request.args.get("tab") in inbox.TABS else "open"
        workspace_id = _workspace_filter()
        user_id = _user_id()
        scope = current_scope()
        workspace_ids = sorted(scope.data_workspace_ids or ())
        names = inbox.workspace_names(workspace_ids)
        context = {"tab": tab, "tabs": inbox.TABS, "workspace_id": workspace_id, "workspaces": names,
                   "rows": inbox.conversations_for(tab, user_id=user_id, workspace_id=workspace_id),
                   "counts": inbox.counts(user_id=user_id, workspace_id=workspace_id),
                   "working": {ws: handoff.can_work(user_id, ws) for ws in workspace_ids},
                   "available": {ws: inbox.availability(user_id, ws) for ws in workspace_ids},
                   "conversation": conversation, "messages": [], "workers": [], "canned": [], "header": None}
        if conversation is not None:
            context.update(messages=inbox.transcript(conversation.id), header=inbox.conversation_json(conversation),
                           workers=inbox.workers(conversation.workspace_id),
                           canned=inbox.canned_replies([conversation.workspace_id]),
                           can_work=context["working"].get(conversation.workspace_id, False))
        return self.render_template("inbox/index.html", title="Inbox", **context)

    # --- JSON for the live page ------------------------------------------------------------------------

    @expose("/api/list")
    @has_access
    def list_json(self):
        """Return one tab's conversations and every tab's count as JSON."""
        tab = request.args.get("tab") if request.args.get("tab") in inbox.TABS else "open"
        workspace_id, user_id = _workspace_filter(), _user_id()
        rows = inbox.conversations_for(tab, user_id=user_id, workspace_id=workspace_id)
        return jsonify(counts=inbox.counts(user_id=user_id, workspace_id=workspace_id), conversations=[
            {**inbox.conversation_json(row.conversation), "workspace": row.workspace_name,
             "preview": row.preview, "url": url_for("InboxView.show", conversation_id=row.conversation.id)}
            for row in rows])

    @expose("/api/c/<conversation_id>")
    @has_access
    def show_json(self, conversation_id):
        """Return a conversation's header and its messages after `after`, notes included."""
        conversation = _conversation(conversation_id)
        after = request.args.get("after", "0")
        if not after.isdigit():
            abort(400, description="after must be a message id (a whole number).")
        return jsonify(conversation=inbox.conversation_json(conversation),
                       messages=[inbox.staff_message_json(m) for m in inbox.transcript(conversation.id,
                                                                                       after=int(after))])

    @expose("/stream")
    @has_access
    def stream(self):
        """Stream the staff events of the caller's workspaces (or the chosen one) as server-sent events."""
        workspace_id = _workspace_filter()
        ids = [workspace_id] if workspace_id else sorted(current_scope().data_workspace_ids or ())
        keys = [conversation_service.staff_channel(ws) for ws in ids]
        body = _staff_events(current_app._get_current_object(), keys)
        return Response(stream_with_context(body), mimetype="text/event-stream",
                        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})

    # --- actions ------------------------------------------------------------------------------------------

    @expose("/c/<conversation_id>/take", methods=["POST"])
    @has_access
    def take(self, conversation_id):
        """Take the conversation (atomic: one of two staff wins, the other hears who has it)."""
        return self._act(conversation_id, lambda c: handoff.take(c.id, user_id=_user_id()))

    @expose("/c/<conversation_id>/assign", methods=["POST"])
    @has_access
    def assign(self, conversation_id):
        """Assign or reassign the conversation to a staff member of its workspace."""
        raw = str(_field("user_id") or "")
        if not raw.isdigit():
            return _failure(inbox.InboxInputError({"user_id": "Choose a staff member."}), conversation_id)
        return self._act(conversation_id, lambda c: handoff.assign(c.id, user_id=int(raw), by_user_id=_user_id()))

    @expose("/c/<conversation_id>/hand-back", methods=["POST"])
    @has_access
    def hand_back(self, conversation_id):
        """Hand the conversation back to the AI."""
        return self._act(conversation_id, lambda c: handoff.hand_back(c.id, user_id=_user_id()))

    @expose("/c/<conversation_id>/close", methods=["POST"])
    @has_access
    def close(self, conversation_id):
        """Close the conversation."""
        return self._act(conversation_id, lambda c: handoff.close(c.id, user_id=_user_id()))

    @expose("/c/<conversation_id>/reopen", methods=["POST"])
    @has_access
    def reopen(self, conversation_id):
        """Reopen a closed conversation, owned by the caller."""
        return self._act(conversation_id, lambda c: handoff.reopen(c.id, user_id=_user_id()))

    @expose("/c/<conversation_id>/reply", methods=["POST"])
    @has_access
    def reply(self, conversation_id):
        """Send a reply to the visitor (taking the conversation if nobody has it)."""
        return self._act(conversation_id, lambda c: inbox.reply(c.id, user_id=_user_id(), text=_field("text")))

    @expose("/c/<conversation_id>/note", methods=["POST"])
    @has_access
    def note(self, conversation_id):
        """Add an internal note, shown to staff only."""
        return self._act(conversation_id, lambda c: inbox.add_note(c.id, user_id=_user_id(), text=_field("text")))

    @expose("/availability", methods=["POST"])
    @has_access
    def availability(self):
        """Mark the caller available or away for new handoffs in one workspace."""
        raw = str(_field("workspace_id") or "")
        if not raw.isdigit() or not current_scope().can_read_data(int(raw)):
            abort(404)
        available = str(_field("available") or "").lower() in ("1", "true", "on", "yes")
        try:
            inbox.set_available(_user_id(), int(raw), available)
        except handoff.HandoffError as exc:
            db.session.rollback()
            return _failure(exc, None)
        db.session.commit()
        if _wants_json():
            return jsonify(workspace_id=int(raw), available=available)
        return redirect(request.referrer if _same_site(request.referrer) else url_for("InboxView.index"))

    def _act(self, conversation_id, change):
        conversation = _conversation(conversation_id)
        try:
            result = change(conversation)
        except (handoff.HandoffError, inbox.InboxInputError) as exc:
            db.session.rollback()
            return _failure(exc, conversation_id)
        body = {"conversation": inbox.conversation_json(conversation)}
        if isinstance(result, Message):
            body["message"] = inbox.staff_message_json(result)
        db.session.commit()
        if _wants_json():
            return jsonify(body)
        return redirect(url_for("InboxView.show", conversation_id=conversation.id))


def _field(name):
    if request.is_json:
        data = request.get_json(silent=True)
        return data.get(name) if isinstance(data, dict) else None
    return request.form.get(name)


def _same_site(url):
    return bool(url) and url.startswith(request.host_url)


def _failure(exc, conversation_id):
    status = next((code for kind, code in ERROR_STATUS.items() if isinstance(exc, kind)), 400)
    if _wants_json():
        body = {"error": str(exc)}
        if isinstance(exc, inbox.InboxInputError):
            body["errors"] = exc.errors
        if isinstance(exc, handoff.AlreadyTaken):
            body["taken_by"] = exc.name
        return jsonify(body), status
    abort(status, description=str(exc))


def _staff_events(app, keys):
    """Yield SSE frames for the staff channels `keys` until ASTHRON_SSE_MAX_SECONDS, with keepalives."""
    max_seconds = app.config.get("ASTHRON_SSE_MAX_SECONDS", 25)
    keepalive = app.config.get("ASTHRON_SSE_KEEPALIVE_SECONDS", 15)
    deadline = time.monotonic() + max_seconds
    with streams.subscribe_many(keys, app=app) as get:
        db.session.remove()  # the live part needs no database connection: give it back
        yield RETRY
        next_keepalive = time.monotonic() + keepalive
        while (now := time.monotonic()) < deadline:
            event = get(max(0.0, min(deadline, next_keepalive) - now))
            if event is None:
                if time.monotonic() >= next_keepalive:
                    yield ": keepalive\n\n"
                    next_keepalive = time.monotonic() + keepalive
                continue
            kind = event.get("type")
            if kind in ("message", "conversation"):
                yield frame(kind, {k: v for k, v in event.items() if k != "type"})
        yield RETRY
