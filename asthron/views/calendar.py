"""Admin views for calendar sync: each resource's calendar, private feed and Google connection; failed syncs.

CalendarView (Bookings -> Calendars) lists the resources in the caller's scope and, per resource, sets
the backend and its settings, makes or retires the private ICS feed (its address is shown once), runs
the OAuth connection of OAuth backends (Connect -> provider -> /calendar/oauth/callback) and reads busy
times on demand. BookingSyncView (Bookings -> Calendar sync) lists bookings whose calendar event is
not written yet or failed, with a retry. Rows load through the ORM, so the tenant guard applies: a
row of another tenant is a 404 (and an audited denial); writes need an admin (calendars) or working
(retries) role in the row's workspace.
"""
import json
import secrets

from flask import abort, flash, redirect, request, session, url_for
from flask_appbuilder import BaseView, expose, has_access
from flask_appbuilder.actions import action
from flask_appbuilder.models.sqla.filters import FilterNotEqual
from flask_appbuilder.security.decorators import permission_name
from sqlalchemy import select

from asthron.extensions import db
from asthron.models.booking import Booking, Resource
from asthron.providers.calendar import CalendarError, OAuthCalendarBackend
from asthron.providers.secrets import SecretError, check_no_literal_secrets
from asthron.roles import ADMIN_ROLES
from asthron.services import calendar_feed, calendar_sync
from asthron.tenancy import current_scope
from asthron.views.base import FilterInScope, TenantInterface, TenantModelView, action_rows, audit_denial

OAUTH_SESSION_KEY = "calendar_oauth"
FEED_SESSION_KEY = "calendar_feed_made"


def _backends():
    from asthron.registry import calendar_backends

    return {entry.name: entry.value for entry in calendar_backends.entries()}


class CalendarView(BaseView):
    """Each resource's calendar: backend and settings, private feed, OAuth connection, busy-time reads."""

    route_base = "/calendar"
    default_view = "list"
    base_permissions = ["can_list", "can_show", "can_edit"]

    @expose("/")
    @has_access
    def list(self):
        """List the resources in scope with the state of their calendars."""
        resources = db.session.scalars(select(Resource).order_by(Resource.name, Resource.id)).all()
        return self.render_template("calendar/list.html", resources=resources, backends=_backends(),
                                    title="Calendars")

    @expose("/resource/<int:pk>")
    @has_access
    def show(self, pk):
        """Show one resource's calendar set-up (and, once, a feed address just made)."""
        resource = self._resource(pk)
        made = session.pop(FEED_SESSION_KEY, None) or {}
        return self._page(resource, feed_url=made.get("url") if made.get("resource_id") == resource.id else None)

    @expose("/resource/<int:pk>/settings", methods=["POST"])
    @has_access
    @permission_name("edit")
    def settings(self, pk):
        """Save the backend and its settings; 400 with a message per field when they do not fit."""
        resource = self._resource(pk, admin=True)
        backend_name = (request.form.get("backend") or "").strip()
        errors, settings = {}, _parse_settings(request.form.get("settings"))
        if backend_name not in _backends():
            errors["backend"] = "Choose one of the installed calendar backends."
        if isinstance(settings, str):
            errors["settings"], settings = settings, None
        if errors:
            return self._page(resource, errors=errors, form=request.form, status=400)
        calendar_sync.configure(resource, backend_name=backend_name, settings=settings)
        db.session.commit()
        flash("The calendar settings are saved; busy times are read again now.", "info")
        return redirect(url_for(".show", pk=pk))

    @expose("/resource/<int:pk>/feed", methods=["POST"])
    @has_access
    @permission_name("edit")
    def feed(self, pk):
        """Make a new private feed address (shown once; the old one stops working), or turn the feed off."""
        resource = self._resource(pk, admin=True)
        if request.form.get("action") == "off":
            calendar_feed.revoke_feed(resource)
            db.session.commit()
            flash("The private feed is off; its address no longer works.", "info")
            return redirect(url_for(".show", pk=pk))
        token = calendar_feed.new_feed_token(resource)
        db.session.commit()
        # Shown once, on the page this redirects to (so reloading it cannot make yet another address).
        session[FEED_SESSION_KEY] = {"resource_id": resource.id,
                                     "url": url_for("calendar_feed.feed", token=token, _external=True)}
        return redirect(url_for(".show", pk=pk))

    # A GET link, not a form: the admin's CSP (`form-action 'self'`) stops a form whose answer redirects to
    # another site. Starting a connection changes nothing; the callback only accepts this session's state.
    @expose("/resource/<int:pk>/connect")
    @has_access
    @permission_name("edit")
    def connect(self, pk):
        """Send the admin to the OAuth provider's consent page for this resource's calendar."""
        resource = self._resource(pk, admin=True)
        backend = _backends().get(resource.calendar_backend)
        if not isinstance(backend, OAuthCalendarBackend):
            return self._page(resource, errors={"connect": "This calendar backend is not connected with OAuth."},
                              status=409)
        state, verifier = secrets.token_urlsafe(32), secrets.token_urlsafe(64)
        try:
            target = backend.authorization_url(settings=resource.calendar_settings or {}, state=state,
                                               redirect_uri=_callback_url(), code_verifier=verifier)
        except CalendarError as exc:
            return self._page(resource, errors={"connect": str(exc)}, status=409)
        session[OAUTH_SESSION_KEY] = {"state": state, "verifier": verifier, "resource_id": resource.id,
                                      "backend": backend.name}
        return redirect(target)

    @expose("/oauth/callback")
    @has_access
    @permission_name("edit")
    def callback(self):
        """Finish an OAuth connection: check the state, exchange the code, store the token encrypted."""
        pending = session.pop(OAUTH_SESSION_KEY, None) or {}
        state = request.args.get("state") or ""
        if not pending or not secrets.compare_digest(state.encode(), pending.get("state", "").encode()):
            abort(404)  # no connection of this browser is waiting for that answer
        resource = self._resource(pending["resource_id"], admin=True)
        backend = _backends().get(resource.calendar_backend)
        if request.args.get("error") or not request.args.get("code") or backend is None \
                or backend.name != pending["backend"]:
            flash("The calendar was not connected: access was not granted.", "warning")
            return redirect(url_for(".show", pk=resource.id))
        try:
            token = backend.fetch_token(settings=resource.calendar_settings or {}, code=request.args["code"],
                                        redirect_uri=_callback_url(), code_verifier=pending["verifier"])
        except CalendarError as exc:
            return self._page(resource, errors={"connect": str(exc)}, status=503 if exc.retryable else 400)
        calendar_sync.connected(resource, token)
        db.session.commit()
        flash(f"{backend.label or backend.name} is connected; busy times are read now.", "info")
        return redirect(url_for(".show", pk=resource.id))

    @expose("/resource/<int:pk>/disconnect", methods=["POST"])
    @has_access
    @permission_name("edit")
    def disconnect(self, pk):
        """Forget the resource's stored OAuth token."""
        resource = self._resource(pk, admin=True)
        resource.calendar_token_encrypted = None
        db.session.commit()
        flash("The calendar is disconnected; its stored authorisation is deleted.", "info")
        return redirect(url_for(".show", pk=pk))

    @expose("/resource/<int:pk>/refresh", methods=["POST"])
    @has_access
    @permission_name("edit")
    def refresh(self, pk):
        """Read the resource's busy times now."""
        resource = self._resource(pk, admin=True)
        calendar_sync.request_refresh(resource)
        db.session.commit()
        flash("Busy times are being read from the calendar.", "info")
        return redirect(url_for(".show", pk=pk))

    def _resource(self, pk, *, admin=False):
        """Load a resource through the tenant guard: 404 (audited) outside the caller's scope."""
        resource = db.session.get(Resource, pk)
        if resource is None:
            _audit_if_foreign(pk)
            abort(404)
        if admin and current_scope().role_in(resource.workspace_id) not in ADMIN_ROLES:
            abort(403)
        return resource

    def _page(self, resource, *, errors=None, form=None, feed_url=None, status=200):
        backends = _backends()
        backend = backends.get(resource.calendar_backend)
        settings_text = (form or {}).get("settings") or json.dumps(resource.calendar_settings or {}, indent=2)
        failed = db.session.scalar(select(db.func.count()).select_from(Booking).where(
            Booking.resource_id == resource.id, Booking.sync_status == calendar_sync.FAILED))
        body = self.render_template(
            "calendar/resource.html", title=f"Calendar of {resource.name}", resource=resource, backends=backends,
            backend=backend, is_oauth=isinstance(backend, OAuthCalendarBackend), errors=errors or {},
            chosen=(form or {}).get("backend") or resource.calendar_backend, settings_text=settings_text,
            feed_url=feed_url, failed=failed, can_edit=current_scope().role_in(resource.workspace_id) in ADMIN_ROLES)
        return body, status


def _parse_settings(text):
    """Return the settings dict, or a message saying what is wrong with it."""
    try:
        value = json.loads(text or "{}")
    except ValueError:
        return "Write the settings as a JSON object, e.g. {\"calendar_id\": \"primary\"}."
    if not isinstance(value, dict):
        return "Write the settings as a JSON object, e.g. {\"calendar_id\": \"primary\"}."
    try:
        check_no_literal_secrets(value)
    except SecretError as exc:
        return str(exc)
    return value


def _callback_url():
    return url_for("CalendarView.callback", _external=True)


def _audit_if_foreign(pk):
    from asthron.tenancy import unrestricted

    with unrestricted():
        owner = db.session.scalar(select(Resource.workspace_id).where(Resource.id == pk))
    if owner is not None:
        audit_denial(Resource, pk, owner)


class BookingSyncView(TenantModelView):
    """Bookings whose calendar event is not written yet, or failed; staff retry them."""

    datamodel = TenantInterface(Booking)
    base_permissions = ["can_list", "can_show", "can_retry_sync"]
    # Without this FAB names an action's permission "retry_sync" (no "can_" prefix) and roles would miss it.
    method_permission_name = {"retry_sync": "retry_sync"}
    base_filters = [["id", FilterInScope, lambda: None], ["sync_status", FilterNotEqual, calendar_sync.SYNCED]]
    list_title = "Calendar sync"
    list_columns = ["start_at", "reference", "service", "resource", "status", "sync_status", "sync_error",
                    "workspace"]
    show_columns = list_columns + ["external_event_id", "updated_at"]
    search_columns = ["sync_status", "resource", "workspace"]
    base_order = ("start_at", "asc")
    label_columns = {"start_at": "Starts (UTC)", "sync_status": "Sync", "sync_error": "Problem",
                     "resource": "Calendar of"}
    formatters_columns = {"status": lambda value: getattr(value, "value", value) or ""}

    @action("retry_sync", "Retry calendar sync", "Write these bookings to their calendars again?", "fa-refresh")
    def retry_sync(self, items):
        """Queue the calendar sync of the chosen bookings again."""
        items = action_rows(items, working=True)
        for booking in items:
            calendar_sync.retry(booking)
        db.session.commit()
        flash(f"Calendar sync queued again for {len(items)} booking(s).", "info")
        return redirect(url_for(".list"))
