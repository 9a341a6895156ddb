"""The current caller's tenant scope and the query-level guard that enforces it.

Every mapped model with a `tenant_clause(scope)` classmethod is filtered on every ORM query by
the scope of the signed-in user. Outside a request (CLI, jobs) the scope is unrestricted unless a
caller narrows it with `scoped()`.
"""
import contextvars
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field

from flask import has_request_context, request
from sqlalchemy import event, false, select, true
from sqlalchemy.orm import Session, with_loader_criteria

_override = contextvars.ContextVar("asthron_scope_override", default=None)
_bypass = contextvars.ContextVar("asthron_scope_bypass", default=False)


class TenantViolation(Exception):
    """A write or read reached a row outside the caller's tenant scope."""

    def __init__(self, model, pk=None, workspace_id=None):
        super().__init__(f"{model} {pk or ''} is outside your workspaces")
        self.model, self.pk, self.workspace_id = model, pk, workspace_id


@dataclass(frozen=True)
class Scope:
    """What one caller may see: ids of agencies and workspaces, and whose data may be read.

    `None` for an id set means "all" (operators see every agency and workspace record but, by
    default, no workspace data: `data_workspace_ids` stays empty for them).
    """

    user_id: int | None = None
    is_operator: bool = False
    agency_ids: frozenset | None = frozenset()
    admin_agency_ids: frozenset | None = frozenset()
    workspace_ids: frozenset | None = frozenset()
    data_workspace_ids: frozenset | None = frozenset()
    workspace_roles: dict = field(default_factory=dict)

    def can_read_data(self, workspace_id):
        """Say whether workspace data (conversations, leads, bookings) of `workspace_id` is visible."""
        return self.data_workspace_ids is None or workspace_id in self.data_workspace_ids

    def role_in(self, workspace_id):
        """Return the caller's strongest role name in a workspace, or None."""
        return self.workspace_roles.get(workspace_id)

    def loader_criteria(self):
        """Return the query options that limit every tenant model to this scope (built once per scope value)."""
        from asthron.models.base import Model

        # Building ~40 criteria cost about 4 ms, and widget and admin requests build a new, equal Scope
        # each time: the criteria are kept per scope value. The mapper count is part of the key so a
        # model mapped later (a plugin's) is never left out.
        key = (len(Model.registry.mappers), self.user_id, self.is_operator, self.agency_ids, self.admin_agency_ids,
               self.workspace_ids, self.data_workspace_ids, frozenset(self.workspace_roles.items()))
        cached = _criteria.get(key)
        if cached is None:
            cached = [with_loader_criteria(model, model.tenant_clause(self), include_aliases=True)
                      for model in tenant_models()]
            with _criteria_lock:
                if len(_criteria) >= MAX_CACHED_SCOPES:
                    _criteria.pop(next(iter(_criteria)))  # the oldest: a plain FIFO bound is enough here
                _criteria[key] = cached
        return cached


MAX_CACHED_SCOPES = 1024
_criteria_lock = threading.Lock()
_criteria = {}  # scope value -> its loader criteria (see Scope.loader_criteria)


UNRESTRICTED = Scope(agency_ids=None, admin_agency_ids=None, workspace_ids=None, data_workspace_ids=None)
NOBODY = Scope()


def _in(column, ids):
    if ids is None:
        return true()
    if not ids:
        return false()
    return column.in_(sorted(ids))


def clause(column, ids):
    """Return `column IN ids`, treating None as everything and an empty set as nothing."""
    return _in(column, ids)


@contextmanager
def scoped(scope):
    """Run the block with `scope` as the tenant scope (jobs and widget requests use this)."""
    token = _override.set(scope)
    try:
        yield scope
    finally:
        _override.reset(token)


@contextmanager
def unrestricted():
    """Run the block without tenant filtering (system work, denial checks)."""
    token = _bypass.set(True)
    try:
        yield
    finally:
        _bypass.reset(token)


def current_scope():
    """Return the tenant scope in force for this context."""
    if _bypass.get():
        return UNRESTRICTED
    override = _override.get()
    if override is not None:
        return override
    if not has_request_context():
        return UNRESTRICTED
    cached = getattr(request, "_asthron_scope", None)
    if cached is None:
        cached = request._asthron_scope = _scope_for_request()
    return cached


def _scope_for_request():
    from flask import current_app

    with unrestricted():  # loading the user must not itself ask for the scope
        user = current_app.appbuilder.sm.current_user
        if user is None or not getattr(user, "is_authenticated", False) or not user.is_active:
            return NOBODY
        return scope_for_user(user.id)


def scope_for_user(user_id):
    """Compute a user's scope from their memberships and role (see the README's matrix)."""
    from asthron.extensions import db
    from asthron.models.tenancy import Membership, Role, Workspace

    with unrestricted():
        rows = db.session.execute(select(Membership.agency_id, Membership.workspace_id, Membership.role)
                                  .where(Membership.user_id == user_id)).all()
        role_names = _fab_role_names(user_id)
        is_operator = Role.operator.value in role_names
        admin_agencies = {a for a, _w, r in rows if a and r == Role.agency_admin}
        member_agencies = {a for a, _w, _r in rows if a}
        ws_roles = {}
        if member_agencies:
            for ws_id, ag_id in db.session.execute(select(Workspace.id, Workspace.agency_id)
                                                   .where(Workspace.agency_id.in_(member_agencies))):
                role = next(r for a, _w, r in rows if a == ag_id)
                ws_roles[ws_id] = _stronger(ws_roles.get(ws_id), role)
        for _a, ws_id, role in rows:
            if ws_id:
                ws_roles[ws_id] = _stronger(ws_roles.get(ws_id), role)
        direct_agencies = set()
        if ws_roles:
            direct_agencies = set(db.session.scalars(select(Workspace.agency_id)
                                                     .where(Workspace.id.in_(ws_roles))))
        if is_operator:
            return Scope(user_id=user_id, is_operator=True, agency_ids=None, admin_agency_ids=None,
                         workspace_ids=None, data_workspace_ids=frozenset(),
                         workspace_roles={k: v.value for k, v in ws_roles.items()})
        return Scope(user_id=user_id, agency_ids=frozenset(member_agencies | direct_agencies),
                     admin_agency_ids=frozenset(admin_agencies), workspace_ids=frozenset(ws_roles),
                     data_workspace_ids=frozenset(ws_roles),
                     workspace_roles={k: v.value for k, v in ws_roles.items()})


_STRENGTH = ["Client", "Staff", "Workspace admin", "Agency admin", "Operator"]


def _stronger(current, role):
    if current is None:
        return role
    return role if _STRENGTH.index(role.value) > _STRENGTH.index(current.value) else current


def _fab_role_names(user_id):
    from flask_appbuilder.security.sqla.models import Role as FabRole, assoc_user_role

    from asthron.extensions import db

    return set(db.session.scalars(select(FabRole.name).join(assoc_user_role, assoc_user_role.c.role_id == FabRole.id)
                                  .where(assoc_user_role.c.user_id == user_id)))


def tenant_models():
    """Return every mapped class that declares a tenant clause."""
    from asthron.models.base import Model

    return [m.class_ for m in Model.registry.mappers if hasattr(m.class_, "tenant_clause")]


def _add_criteria(execute_state):
    if not (execute_state.is_select or execute_state.is_update or execute_state.is_delete):
        return
    if execute_state.is_column_load or execute_state.is_relationship_load:
        return
    scope = current_scope()
    if scope is UNRESTRICTED:
        return
    execute_state.statement = execute_state.statement.options(*scope.loader_criteria())


def _check_writes(session, flush_context, instances):
    scope = current_scope()
    if scope is UNRESTRICTED:
        return
    for obj in list(session.new) + list(session.dirty) + list(session.deleted):
        model = type(obj)
        if not hasattr(model, "tenant_clause") or not hasattr(model, "workspace_id") or model.__name__ == "Membership":
            continue
        ws_id = obj.workspace_id
        if ws_id is None and getattr(obj, "workspace", None) is not None:
            ws_id = obj.workspace.id  # set through the relationship (a form's picker); the flush copies it
        if not scope.can_read_data(ws_id):
            raise TenantViolation(model.__name__, getattr(obj, "id", None), ws_id)


def init_app(app):
    """Install the guard on every ORM session."""
    if not getattr(Session, "_asthron_guard", False):
        event.listen(Session, "do_orm_execute", _add_criteria)
        event.listen(Session, "before_flush", _check_writes)
        Session._asthron_guard = True
