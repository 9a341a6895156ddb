"""The leads admin: a filtered list that stays fast at a million rows, the lead page with its timeline, CSV in and out.

Reads go through the ORM, so the tenant guard limits them to the caller's workspaces; a lead of
another tenant answers 404 (and the attempt is audited). Every write goes through
`asthron.services.leads` (validation, dedupe, scoring, events); the view only parses the form.
"""
from flask import Response, abort, flash, redirect, request, stream_with_context, url_for
from flask_appbuilder import BaseView, expose, has_access
from flask_appbuilder.security.decorators import permission_name
from sqlalchemy import select

from asthron.extensions import db
from asthron.models.leads import CORE_FIELD_KEYS, Lead, LeadSource
from asthron.models.tenancy import Workspace
from asthron.services import lead_csv, lead_search, lead_timeline
from asthron.tenancy import current_scope, unrestricted
from asthron.views.base import TenantInterface, audit_denial, may_work

IMPORT_MAX_BYTES = 2 * 1024 * 1024
# Roles that may change leads; the Client role reads only (FAB permissions refuse its POSTs too).


def load_lead(pk):
    """Return the lead `pk` through the tenant guard, or answer 404 (auditing a foreign attempt)."""
    lead = db.session.get(Lead, pk)
    if lead is None:
        with unrestricted():
            owner = db.session.execute(select(Lead.workspace_id).where(Lead.id == pk)).scalar()
        if owner is not None:
            audit_denial(Lead, pk, owner)
        abort(404)
    return lead


def _require_work(workspace_id):
    if not may_work(workspace_id):
        abort(403)


def visible_workspaces():
    """Return the workspaces whose leads the caller may read, by name."""
    return db.session.scalars(select(Workspace).where(Workspace.id.in_(
        sorted(current_scope().data_workspace_ids or ()))).order_by(Workspace.name)).all()


def _custom_fields(workspace_ids):
    """Return [(key, label)] of the custom fields of these workspaces, each key once."""
    found = {}
    for items in lead_search.fields_by_workspace(workspace_ids).values():
        for item in items:
            if item.key not in CORE_FIELD_KEYS:
                found.setdefault(item.key, item.label)
    return sorted(found.items(), key=lambda kv: kv[1].lower())


def _lead_fields(workspace_id):
    from asthron.services import leads

    return leads.fields(workspace_id)


def _filters_or_400():
    try:
        return lead_search.parse_filters(request.args)
    except lead_search.FilterError as exc:
        abort(400, description="Check the filters: " + str(exc))


class LeadView(BaseView):
    """Leads of the caller's workspaces: list with filters, lead page, note, owner, stage, values, CSV."""

    route_base = "/leadview"
    default_view = "list"
    datamodel = TenantInterface(Lead)  # lets the tenant-isolation walk find a foreign lead's id
    base_permissions = ["can_list", "can_show", "can_edit", "can_export", "can_import"]

    @expose("/list/")
    @has_access
    def list(self):
        """Show one page of leads matching the filters, with a capped count."""
        filters = _filters_or_400()
        number = request.args.get("page", "0")
        number = int(number) if number.isdigit() else 0
        if number * lead_search.PAGE_SIZE > lead_search.COUNT_CAP:
            abort(400, description="Pages stop after 1,000 leads: narrow the filters.")
        workspaces = visible_workspaces()
        ids = [w.id for w in workspaces]
        stages = lead_search.stages_by_workspace(ids)
        # Workspaces and stages are in the session now, so each row's workspace and stage come from it.
        count, leads = lead_search.page(filters, number=number, related=("owner",))
        return self.render_template(
            "leads/list.html", title="Leads", leads=leads, count=count, cap=lead_search.COUNT_CAP,
            page=number, page_size=lead_search.PAGE_SIZE, filters=filters, args=filters.as_args(),
            workspaces=workspaces, stages=stages,
            custom_fields=_custom_fields(ids), sources=[s.value for s in LeadSource],
            can_work=any(may_work(i) for i in ids))

    @expose("/show/<int:pk>")
    @has_access
    def show(self, pk):
        """Show a lead: values, owner, stage, score, consent and the merged timeline."""
        return self._render_show(load_lead(pk))

    @expose("/show/<int:pk>/note", methods=["POST"])
    @has_access
    @permission_name("edit")
    def note(self, pk):
        """Add a note to the lead's timeline."""
        from asthron.services import leads

        lead = load_lead(pk)
        _require_work(lead.workspace_id)
        try:
            leads.add_note(lead, request.form.get("text") or "", actor_id=current_scope().user_id)
        except leads.LeadValidationError as exc:
            db.session.rollback()
            return self._render_show(load_lead(pk), errors={"text": exc.errors.get("note", str(exc))})
        db.session.commit()
        flash("Note added.", "success")
        return redirect(url_for(".show", pk=pk))

    @expose("/show/<int:pk>/owner", methods=["POST"])
    @has_access
    @permission_name("edit")
    def owner(self, pk):
        """Assign the lead to a member of its workspace, or to nobody."""
        from asthron.services import leads

        lead = load_lead(pk)
        _require_work(lead.workspace_id)
        raw = (request.form.get("owner_id") or "").strip()
        choices = {str(uid) for uid, _name in lead_timeline.owner_choices(lead.workspace_id)}
        if raw and raw not in choices:
            return self._render_show(lead, errors={"owner_id": "Choose a member of this workspace."})
        leads.assign_owner(lead, int(raw) if raw else None, actor_id=current_scope().user_id)
        db.session.commit()
        flash("Owner changed.", "success")
        return redirect(url_for(".show", pk=pk))

    @expose("/show/<int:pk>/stage", methods=["POST"])
    @has_access
    @permission_name("edit")
    def stage(self, pk):
        """Move the lead to another stage of its workspace's pipeline."""
        lead = load_lead(pk)
        _require_work(lead.workspace_id)
        error = move(lead, request.form.get("stage_id"))
        if error:
            return self._render_show(lead, errors={"stage_id": error})
        flash("Stage changed.", "success")
        return redirect(url_for(".show", pk=pk))

    @expose("/show/<int:pk>/values", methods=["POST"])
    @has_access
    @permission_name("edit")
    def values(self, pk):
        """Change the lead's field values (validated by the leads service)."""
        from asthron.services import leads

        lead = load_lead(pk)
        _require_work(lead.workspace_id)
        keys = {f.key for f in leads.fields(lead.workspace_id)}
        submitted = {k: request.form.get(k, "") for k in keys if k in request.form}
        try:
            leads.update(lead, submitted, actor_id=current_scope().user_id)
        except leads.LeadValidationError as exc:
            db.session.rollback()
            return self._render_show(load_lead(pk), errors=dict(exc.errors), submitted=submitted)
        db.session.commit()
        flash("Lead saved.", "success")
        return redirect(url_for(".show", pk=pk))

    def _render_show(self, lead, *, errors=None, submitted=None):
        """Render the lead page; with `errors`, as the 400 answer to a form that did not validate."""
        body = self.render_template(
            "leads/show.html", title=str(lead), lead=lead, fields=_lead_fields(lead.workspace_id),
            stages=lead_search.stages_by_workspace([lead.workspace_id]).get(lead.workspace_id, []),
            owners=lead_timeline.owner_choices(lead.workspace_id), timeline=lead_timeline.entries(lead),
            can_work=may_work(lead.workspace_id), errors=errors or {}, submitted=submitted or {})
        return (body, 400) if errors else body

    @expose("/export.csv")
    @has_access
    @permission_name("export")
    def export(self):
        """Stream the filtered list as CSV, formula cells escaped."""
        from asthron import audit

        filters = _filters_or_400()
        ids = [w.id for w in visible_workspaces()]
        audit.record("lead.export", workspace_id=filters.workspace, details={"filters": filters.as_args()})
        lines = lead_csv.export_lines(filters, workspace_ids=ids)
        return Response(stream_with_context(lines), mimetype="text/csv",
                        headers={"Content-Disposition": 'attachment; filename="leads.csv"'})

    @expose("/import/", methods=["GET", "POST"])
    @has_access
    @permission_name("import")
    def import_(self):
        """Upload a CSV: dry run with per-row errors, then import all rows or only the valid ones."""
        from asthron.views.lead_import import handle_import

        return handle_import(self)


def move(lead, raw_stage_id):
    """Move `lead` to the stage `raw_stage_id` of its workspace and commit; return an error message or None."""
    from asthron.services import leads

    stages = lead_search.stages_by_workspace([lead.workspace_id]).get(lead.workspace_id, [])
    stage = next((s for s in stages if str(s.id) == str(raw_stage_id or "").strip()), None)
    if stage is None:
        return "Choose a stage of this workspace's pipeline."
    if stage.id != lead.stage_id:
        leads.set_stage(lead, stage.id, actor_id=current_scope().user_id)
        db.session.commit()
    return None


def deny_foreign_workspace(workspace_id):
    """Answer 404 for a workspace outside the caller's data scope, auditing the attempt."""
    if workspace_id is None or not current_scope().can_read_data(workspace_id):
        if workspace_id is not None:
            audit_denial(Workspace, workspace_id, workspace_id)
        abort(404)
