"""Admin views for booking: services, resources with their hours and date overrides, bookings (list and week).

Admins configure services and resources; staff see and cancel bookings; clients read. Every row
goes through the tenant guard (TenantModelView, ORM queries in the week view); times in forms are
local to the resource, times in lists and the week view are shown in the workspace's zone.
"""
from datetime import date, datetime, time, timedelta

from flask import abort, flash, redirect, request, url_for
from flask_appbuilder import BaseView, expose, has_access
from flask_appbuilder.actions import action
from sqlalchemy import select
from wtforms import SelectField, StringField, TimeField
from wtforms.validators import DataRequired, InputRequired, NumberRange, Optional, ValidationError

from asthron.extensions import db
from asthron.models.booking import (
    Booking, BookingSettings, BookingStatus, DateOverride, OverrideKind, Resource, Service, WorkingHours,
)
from asthron.models.tenancy import Workspace
from asthron.services import availability, booking as booking_service
from asthron.tenancy import current_scope
from asthron.views.base import FilterInScope, TenantInterface, TenantModelView, action_rows, audit_denial

WEEKDAYS = [(str(i), d) for i, d in enumerate("Monday Tuesday Wednesday Thursday Friday Saturday Sunday".split())]
IN_SCOPE = [["id", FilterInScope, lambda: None]]


def _enum_value(value):
    return getattr(value, "value", value) or ""


def _check_zone(form, field):
    try:
        availability.zone(field.data)
    except ValueError as exc:
        raise ValidationError(str(exc)) from None


def _check_order(form, field):
    start = form.start_time.data
    if start is not None and field.data is not None and field.data <= start and field.data != time(0):
        raise ValidationError("The end must be after the start (00:00 means midnight at the end of the day).")


def _same_workspace(item, related):
    # A form sets the relationship; the id follows only at flush.
    own = item.workspace_id if item.workspace_id is not None else getattr(item.workspace, "id", None)
    for other in related:
        if other is not None and other.workspace_id != own:
            raise ValueError(f"{other} belongs to another workspace.")


class ServiceView(TenantModelView):
    """What visitors can book, per workspace, and who delivers it."""

    datamodel = TenantInterface(Service)
    list_title = "Services"
    list_columns = ["name", "workspace", "duration_minutes", "price_text", "active"]
    show_columns = ["name", "workspace", "description", "duration_minutes", "buffer_before_minutes",
                    "buffer_after_minutes", "min_notice_minutes", "max_days_ahead", "slot_step_minutes",
                    "price_text", "location_text", "resources", "active"]
    add_columns = show_columns
    edit_columns = [c for c in show_columns if c != "workspace"]
    add_form_query_rel_fields = {"workspace": IN_SCOPE, "resources": IN_SCOPE}
    edit_form_query_rel_fields = add_form_query_rel_fields
    search_columns = ["name", "workspace", "active"]
    base_order = ("name", "asc")
    label_columns = {"duration_minutes": "Duration (minutes)", "buffer_before_minutes": "Buffer before (minutes)",
                     "buffer_after_minutes": "Buffer after (minutes)", "min_notice_minutes": "Minimum notice (minutes)",
                     "max_days_ahead": "Bookable days ahead", "slot_step_minutes": "Offer a start every (minutes)",
                     "price_text": "Price", "location_text": "Location or meeting link",
                     "resources": "Delivered by"}
    validators_columns = {
        "name": [DataRequired()],
        "duration_minutes": [InputRequired(), NumberRange(5, 24 * 60)],
        "buffer_before_minutes": [InputRequired(), NumberRange(0, 12 * 60)],
        "buffer_after_minutes": [InputRequired(), NumberRange(0, 12 * 60)],
        "min_notice_minutes": [InputRequired(), NumberRange(0, 90 * 24 * 60)],
        "max_days_ahead": [InputRequired(), NumberRange(1, 730)],
        "slot_step_minutes": [InputRequired(), NumberRange(5, 24 * 60)],
    }

    def pre_add(self, item):
        _same_workspace(item, item.resources)

    def pre_update(self, item):
        _same_workspace(item, item.resources)


class WorkingHoursView(TenantModelView):
    """Weekly working windows of a resource, in the resource's own time zone."""

    datamodel = TenantInterface(WorkingHours)
    list_title = "Working hours"
    list_columns = ["resource", "weekday", "start_time", "end_time"]
    add_columns = edit_columns = show_columns = ["resource", "weekday", "start_time", "end_time"]
    add_form_query_rel_fields = {"resource": IN_SCOPE}
    edit_form_query_rel_fields = add_form_query_rel_fields
    add_form_extra_fields = edit_form_extra_fields = {
        "weekday": SelectField("Weekday", choices=WEEKDAYS, coerce=int),
        "start_time": TimeField("Start (local time)", validators=[InputRequired()]),
        "end_time": TimeField("End (local time; 00:00 is midnight)", validators=[InputRequired(), _check_order]),
    }
    formatters_columns = {"weekday": lambda d: dict(WEEKDAYS).get(str(d), d)}
    search_columns = ["resource", "weekday"]
    base_order = ("resource_id", "asc")

    def pre_add(self, item):
        item.workspace_id = item.resource.workspace_id

    pre_update = pre_add


class DateOverrideView(TenantModelView):
    """Closed days, closed windows, extra hours and holidays of a resource."""

    datamodel = TenantInterface(DateOverride)
    list_title = "Date overrides"
    list_columns = ["resource", "date", "kind", "start_time", "end_time", "label"]
    add_columns = edit_columns = show_columns = ["resource", "date", "kind", "start_time", "end_time", "label"]
    add_form_query_rel_fields = {"resource": IN_SCOPE}
    edit_form_query_rel_fields = add_form_query_rel_fields
    add_form_extra_fields = edit_form_extra_fields = {
        "kind": SelectField("Kind", choices=[(k.name, k.value) for k in OverrideKind],
                            coerce=lambda v: OverrideKind(getattr(v, "value", v))),
        "start_time": TimeField("From (local; empty: all day)", validators=[Optional()]),
        "end_time": TimeField("Until (local)", validators=[Optional(), _check_order]),
    }
    formatters_columns = {"kind": _enum_value}
    search_columns = ["resource", "date", "label"]
    base_order = ("date", "desc")

    def pre_add(self, item):
        item.workspace_id = item.resource.workspace_id
        if item.kind == OverrideKind.extra and (item.start_time is None or item.end_time is None):
            raise ValueError("Extra hours need a start and an end time.")

    pre_update = pre_add


class ResourceView(TenantModelView):
    """Bookable staff members and resources, each with its time zone, hours and overrides."""

    datamodel = TenantInterface(Resource)
    list_title = "Staff and resources"
    list_columns = ["name", "workspace", "time_zone", "calendar_backend", "active"]
    show_columns = ["name", "workspace", "user", "email", "time_zone", "calendar_backend", "services", "active"]
    add_columns = ["name", "workspace", "user", "email", "time_zone", "active"]
    edit_columns = ["name", "user", "email", "time_zone", "active"]
    add_form_query_rel_fields = {"workspace": IN_SCOPE}
    edit_form_query_rel_fields = add_form_query_rel_fields
    add_form_extra_fields = edit_form_extra_fields = {
        "time_zone": StringField("Time zone (IANA, e.g. Europe/Berlin)", validators=[DataRequired(), _check_zone],
                                 default="UTC"),
    }
    related_views = [WorkingHoursView, DateOverrideView]
    search_columns = ["name", "workspace", "active"]
    base_order = ("name", "asc")


class BookingSettingsView(TenantModelView):
    """When a workspace's reminders go out."""

    datamodel = TenantInterface(BookingSettings)
    list_title = "Booking settings"
    list_columns = add_columns = edit_columns = show_columns = ["workspace", "reminders_enabled",
                                                                "reminder_offsets_minutes"]
    add_form_query_rel_fields = {"workspace": IN_SCOPE}
    add_form_extra_fields = edit_form_extra_fields = {
        "reminder_offsets_minutes": StringField("Reminders, minutes before (comma-separated)", default="1440, 60",
                                                filters=[lambda v: _offsets(v)]),
    }
    label_columns = {"reminder_offsets_minutes": "Reminders (minutes before)"}


def _offsets(value):
    if isinstance(value, list) or value is None:
        return value or []
    parts = [p.strip() for p in str(value).split(",") if p.strip()]
    if not all(p.isdigit() and 0 < int(p) <= 60 * 24 * 30 for p in parts) or len(parts) > 5:
        raise ValueError("Give up to five whole numbers of minutes, e.g. 1440, 60.")
    return sorted({int(p) for p in parts}, reverse=True)


class BookingView(TenantModelView):
    """Bookings of the caller's workspaces; staff and admins cancel them."""

    datamodel = TenantInterface(Booking)
    base_permissions = ["can_list", "can_show"]  # FAB adds "cancel", the action's permission
    list_title = "Bookings"
    list_columns = ["start_local", "service", "resource", "name", "email", "status", "workspace"]
    show_columns = ["reference", "start_local", "end_local", "service", "resource", "name", "email",
                    "visitor_time_zone", "status", "source", "lead", "conversation_id", "cancelled_at",
                    "cancel_reason", "sync_status", "sync_error", "workspace", "created_at"]
    search_columns = ["start_at", "service", "resource", "name", "email", "status", "workspace"]
    base_order = ("start_at", "desc")
    label_columns = {"start_local": "Starts (workspace time)", "end_local": "Ends (workspace time)",
                     "resource": "With"}
    formatters_columns = {"status": _enum_value}

    @action("cancel", "Cancel booking", "Cancel this booking? The visitor is told by email.", "fa-ban",
            multiple=False)
    def cancel(self, item):
        """Cancel one booking from the admin; the visitor gets the cancellation email."""
        for booking in action_rows(item, working=True):
            booking_service.cancel(booking, reason="Cancelled by the team", actor_id=current_scope().user_id)
        db.session.commit()
        flash("The booking is cancelled.", "info")
        return redirect(request.referrer or url_for(".list"))


class BookingWeekView(BaseView):
    """A week of one workspace's bookings: a row per resource, a column per day, in the workspace's zone."""

    route_base = "/bookings/week"
    default_view = "week"
    base_permissions = ["can_week"]

    @expose("/")
    @has_access
    def week(self):
        """Show the week that contains ?week=YYYY-MM-DD (this week by default) for ?workspace=ID."""
        workspaces = db.session.scalars(select(Workspace).where(Workspace.id.in_(
            sorted(current_scope().data_workspace_ids or ()))).order_by(Workspace.name)).all()
        workspace = _chosen_workspace(workspaces)
        if workspace is None:
            return self.render_template("booking/week.html", title="Bookings this week", workspace=None,
                                        workspaces=[], days=[], rows=[], previous=None, next=None)
        tz = availability.zone(workspace.time_zone)
        monday = _monday(request.args.get("week"), tz)
        days = [monday + timedelta(days=i) for i in range(7)]
        start, end = availability.visitor_window(monday, 7, tz)
        rows = _week_rows(workspace.id, start, end, tz)
        return self.render_template("booking/week.html", title=f"Bookings: {workspace.name}", workspace=workspace,
                                    workspaces=workspaces, days=days, rows=rows, tz=workspace.time_zone,
                                    previous=(monday - timedelta(days=7)).isoformat(),
                                    next=(monday + timedelta(days=7)).isoformat())


def _chosen_workspace(workspaces):
    raw = (request.args.get("workspace") or "").strip()
    if not raw:
        return workspaces[0] if workspaces else None
    if not raw.isdigit():
        abort(404)
    found = next((w for w in workspaces if w.id == int(raw)), None)
    if found is None:
        audit_denial(Workspace, int(raw), int(raw))
        abort(404)
    return found


def _monday(raw, tz):
    try:
        day = date.fromisoformat(raw) if raw and len(raw) == 10 else None
    except ValueError:
        day = None
    day = day or datetime.now(tz).date()
    return day - timedelta(days=day.weekday())


def _week_rows(workspace_id, start, end, tz):
    """Return [(resource, [[(local start, booking)] per day])] for confirmed bookings in [start, end)."""
    resources = db.session.scalars(select(Resource).where(Resource.workspace_id == workspace_id)
                                   .order_by(Resource.name)).all()
    bookings = db.session.scalars(select(Booking).where(
        Booking.workspace_id == workspace_id, Booking.status == BookingStatus.confirmed,
        Booking.start_at >= start, Booking.start_at < end).order_by(Booking.start_at)).all()
    first = start.astimezone(tz).date()
    cells = {r.id: [[] for _ in range(7)] for r in resources}
    for booking in bookings:
        local = availability.as_utc(booking.start_at).astimezone(tz)
        index = (local.date() - first).days
        if booking.resource_id in cells and 0 <= index < 7:
            cells[booking.resource_id][index].append((local, booking))
    return [(r, cells[r.id]) for r in resources]
