"""Tenant-aware bases for admin views: every query and every write stays inside the caller's scope.

The query-level guard in `asthron.tenancy` already filters each ORM query; these bases enforce the
same scope a second time in the view layer, and audit an attempt to reach another tenant's row.
"""
from flask import abort
from flask_appbuilder import ModelView, expose, has_access
from flask_appbuilder.models.filters import BaseFilter
from flask_appbuilder.models.sqla.interface import SQLAInterface
from sqlalchemy import select

from asthron import audit
from asthron.extensions import db
from asthron.roles import WORKING_ROLES
from asthron.tenancy import TenantViolation, current_scope, unrestricted


class FilterInScope(BaseFilter):
    """Limit a list to the rows the caller's tenant scope allows."""

    name = "In your workspaces"
    arg_name = "scope"

    def apply(self, query, value):
        return query.filter(self.model.tenant_clause(current_scope()))


def audit_denial(model, pk, workspace_id=None):
    """Record a cross-tenant attempt on `model` row `pk`."""
    audit.record("tenant.denied", target_type=model.__name__, target_id=pk, workspace_id=workspace_id,
                 details={"scope_user": current_scope().user_id})


def may_work(workspace_id):
    """Say whether the caller may change data of `workspace_id` (staff or an admin there, not a client)."""
    return current_scope().role_in(workspace_id) in WORKING_ROLES


def action_rows(items, *, working=False):
    """Return a FAB action's `items` as a list: 404 when one is outside the caller's scope (FAB hands None),
    and with `working`, 403 when the caller only reads one's workspace."""
    items = items if isinstance(items, list) else [items]
    if any(item is None for item in items):
        abort(404)
    if working and not all(may_work(item.workspace_id) for item in items):
        abort(403)
    return items


class TenantInterface(SQLAInterface):
    """SQLAInterface that reports a row hidden by the tenant scope as a denial, and refuses foreign writes."""

    def get(self, id, filters=None, select_columns=None, outer_default_load=False):
        item = super().get(id, filters, select_columns=select_columns, outer_default_load=outer_default_load)
        if item is None:
            with unrestricted():
                pk_column = self.obj.__mapper__.primary_key[0]
                exists = db.session.execute(select(self.obj).where(
                    pk_column == _coerce_pk(pk_column, id))).scalar()
                owner = getattr(exists, "workspace_id", None) if exists is not None else None
                if exists is not None:
                    db.session.expunge(exists)
            if exists is not None:
                audit_denial(self.obj, id, owner)
        return item

    def _guarded(self, method, item, **kwargs):
        try:
            return method(item, **kwargs)
        except TenantViolation as exc:
            db.session.rollback()
            audit_denial(self.obj, exc.pk, exc.workspace_id)
            abort(404)

    def add(self, item, commit=True):
        return self._guarded(super().add, item, commit=commit)

    def edit(self, item, commit=True):
        return self._guarded(super().edit, item, commit=commit)

    def delete(self, item, commit=True):
        return self._guarded(super().delete, item, commit=commit)


def _coerce_pk(column, value):
    try:
        return column.type.python_type(value)
    except (TypeError, ValueError, NotImplementedError):
        abort(404)


class RejectedFormIs400:
    """Answer 400 when a POSTed form is shown again because it did not validate.

    FAB re-renders an invalid form with 200; a client (or a script) should see a 4xx.
    """

    def create_blueprint(self, appbuilder, *args, **kwargs):
        blueprint = super().create_blueprint(appbuilder, *args, **kwargs)
        blueprint.after_request(_rejected_form_status)
        return blueprint


def _rejected_form_status(response):
    from flask import request

    if request.method == "POST" and response.status_code == 200 and response.mimetype == "text/html":
        response.status_code = 400
    return response


class TenantModelView(RejectedFormIs400, ModelView):
    """A CRUD view over a tenant-owned model, scoped to the caller's workspaces."""

    base_filters = [["id", FilterInScope, lambda: None]]
    # Workspace pickers in forms offer only the caller's workspaces.
    add_form_query_rel_fields = {"workspace": [["id", FilterInScope, lambda: None]]}
    edit_form_query_rel_fields = add_form_query_rel_fields
    list_columns = []
    page_size = 50


class OneRowPerWorkspaceView(TenantModelView):
    """Settings kept in one row per workspace: the list creates the default rows the caller may configure."""

    @expose("/list/")
    @has_access
    def list(self):
        self._ensure_rows()
        return super().list()

    def _ensure_rows(self):
        from asthron.services.tenancy import ensure_workspace_rows

        scope = current_scope()
        ids = scope.data_workspace_ids
        if ids is None or scope.is_operator:
            return
        if ensure_workspace_rows(self.datamodel.obj, ids):
            db.session.commit()
