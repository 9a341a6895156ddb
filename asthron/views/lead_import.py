"""The CSV import page of the leads admin: upload, dry run with per-row errors, then import.

The file is sent again with each step (nothing is kept on the server between the dry run and the
import). Answers: 200 with the report for a dry run or a finished import, 422 when an import was
refused because rows have errors (nothing written), 400 for a form that cannot be used, 413 for a
file over the size limit.
"""
from flask import current_app, request
from werkzeug.exceptions import RequestEntityTooLarge

from asthron.extensions import db
from asthron.services import lead_csv
from asthron.tenancy import current_scope
from asthron.views.base import may_work
from asthron.views.leads import IMPORT_MAX_BYTES, deny_foreign_workspace, visible_workspaces


def _max_bytes():
    return int(current_app.config.get("ASTHRON_LEAD_IMPORT_MAX_BYTES") or IMPORT_MAX_BYTES)


def _render(view, *, status=200, report=None, errors=None, workspace_id=None, mode=None):
    workspaces = [w for w in visible_workspaces() if may_work(w.id)]
    return view.render_template("leads/import.html", title="Import leads", workspaces=workspaces,
                                report=report, errors=errors or {}, workspace_id=workspace_id, mode=mode,
                                max_bytes=_max_bytes()), status


def _read_upload():
    """Return the uploaded file's bytes, or raise RequestEntityTooLarge past the limit."""
    limit = _max_bytes()
    if request.content_length and request.content_length > limit + 64 * 1024:
        raise RequestEntityTooLarge()
    upload = request.files.get("file")
    if upload is None or not upload.filename:
        return None
    data = upload.stream.read(limit + 1)
    if len(data) > limit:
        raise RequestEntityTooLarge()
    return data


def _form_errors(workspace_raw, data):
    errors = {}
    if not workspace_raw.isdigit():
        errors["workspace"] = "Choose the workspace to import into."
    if data is None:
        errors["file"] = "Choose a CSV file."
    elif not data.strip():
        errors["file"] = "The file is empty."
    return errors


def handle_import(view):
    """Serve the import page: GET shows the form, POST checks or imports the uploaded file."""
    if request.method == "GET":
        return _render(view)
    try:
        data = _read_upload()
    except RequestEntityTooLarge:
        return _render(view, status=413,
                       errors={"file": f"The file is larger than {_max_bytes() // 1024:,} KB: split it."})
    workspace_raw = (request.form.get("workspace") or "").strip()
    mode = request.form.get("mode", "dry_run")
    errors = _form_errors(workspace_raw, data)
    if mode not in ("dry_run", "import"):
        errors["mode"] = "Choose a dry run or an import."
    if errors:
        return _render(view, status=400, errors=errors, mode=mode)
    workspace_id = int(workspace_raw)
    deny_foreign_workspace(workspace_id)
    if not may_work(workspace_id):
        return _render(view, status=403, errors={"workspace": "You may only read this workspace's leads."})
    try:
        if mode == "dry_run":
            report = lead_csv.plan(workspace_id, data)
        else:
            report = _import(workspace_id, data, valid_only=request.form.get("valid_only") == "1")
    except lead_csv.CsvFileError as exc:
        db.session.rollback()
        return _render(view, status=400, errors={"file": str(exc)}, workspace_id=workspace_id, mode=mode)
    status = 422 if mode != "dry_run" and not report.written else 200
    return _render(view, status=status, report=report, workspace_id=workspace_id, mode=mode)


def _import(workspace_id, data, *, valid_only):
    """Run the import in one transaction: commit when it wrote, roll everything back otherwise."""
    report = lead_csv.run(workspace_id, data, valid_only=valid_only, actor_id=current_scope().user_id)
    if report.written:
        db.session.commit()
    else:
        db.session.rollback()
    return report
