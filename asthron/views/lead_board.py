"""The pipeline board: a column per stage of one workspace, lead cards, drag and drop to move a lead.

Moving posts the lead and the stage with the CSRF token to `/leads/board/move`, which calls
`leads.set_stage` (the Lead row's change is audited and the timeline gets an entry). The Client role
sees the board without drag and drop, and a move it posts anyway answers 403.
"""
from flask import jsonify, redirect, request, url_for
from flask_appbuilder import BaseView, expose, has_access
from flask_appbuilder.security.decorators import permission_name

from asthron.extensions import db
from asthron.models.leads import Lead
from asthron.services import lead_search
from asthron.views.base import TenantInterface
from asthron.views.base import may_work
from asthron.views.leads import deny_foreign_workspace, load_lead, visible_workspaces
from asthron.views.leads import move as move_lead

CARDS_PER_COLUMN = 25  # the newest of each stage; the list, filtered by stage, has the rest
COLUMN_COUNT_CAP = 200


def _workspace_arg():
    raw = (request.args.get("workspace") or "").strip()
    return int(raw) if raw.isdigit() else None


class LeadBoardView(BaseView):
    """A workspace's pipeline as columns of lead cards; staff and admins drag cards between stages."""

    route_base = "/leads/board"
    default_view = "board"
    datamodel = TenantInterface(Lead)
    base_permissions = ["can_board", "can_move"]

    @expose("/")
    @has_access
    def board(self):
        """Show the board of the workspace named by ?workspace=ID (the first visible one by default)."""
        workspace_id = _workspace_arg()
        workspaces = visible_workspaces()
        if workspace_id is None:
            if not workspaces:
                return self.render_template("leads/board.html", title="Pipeline", workspace=None, columns=[],
                                            workspaces=[], can_work=False, cap=COLUMN_COUNT_CAP)
            return redirect(url_for(".board", workspace=workspaces[0].id))
        deny_foreign_workspace(workspace_id)
        workspace = next((w for w in workspaces if w.id == workspace_id), None)
        if workspace is None:
            deny_foreign_workspace(None)
        return self.render_template("leads/board.html", title=f"Pipeline: {workspace.name}", workspace=workspace,
                                    workspaces=workspaces, columns=self._columns(workspace.id),
                                    cap=COLUMN_COUNT_CAP,
                                    can_work=may_work(workspace.id))

    @staticmethod
    def _columns(workspace_id):
        """Return [(stage, capped count, newest leads)] in stage order, plus "No stage" when some have none."""
        columns = []
        for stage in lead_search.stages_by_workspace([workspace_id]).get(workspace_id, []):
            filters = lead_search.LeadFilters(workspace=workspace_id, stage=stage.id)
            count, leads = lead_search.page(filters, size=CARDS_PER_COLUMN, cap=COLUMN_COUNT_CAP,
                                            related=("owner",))
            columns.append((stage, count, leads))
        unstaged = db.session.scalars(lead_search.statement(lead_search.LeadFilters(workspace=workspace_id))
                                      .where(Lead.stage_id.is_(None)).limit(CARDS_PER_COLUMN)).all()
        if unstaged:
            columns.append((None, len(unstaged), unstaged))
        return columns

    @expose("/move", methods=["POST"])
    @has_access
    @permission_name("move")
    def move(self):
        """Move a lead to another stage of its workspace; answer JSON (400 with errors, 403, 404)."""
        raw = (request.form.get("lead_id") or "").strip()
        if not raw.isdigit():
            return jsonify(errors={"lead_id": "Name the lead to move."}), 400
        lead = load_lead(int(raw))
        if not may_work(lead.workspace_id):
            return jsonify(errors={"lead_id": "You may only read this workspace's leads."}), 403
        error = move_lead(lead, request.form.get("stage_id"))
        if error:
            return jsonify(errors={"stage_id": error}), 400
        return jsonify(lead_id=lead.id, stage_id=lead.stage_id, stage=lead.stage.name if lead.stage else None)
