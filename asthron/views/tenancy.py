"""Admin views for agencies, workspaces and team memberships."""
from flask import flash, g, redirect, request, url_for
from flask_appbuilder import SimpleFormView
from flask_appbuilder.fields import QuerySelectField
from flask_appbuilder.forms import DynamicForm
from flask_appbuilder.fieldwidgets import (
    BS3PasswordFieldWidget, BS3TextAreaFieldWidget, BS3TextFieldWidget, Select2Widget,
)
from wtforms import PasswordField, SelectField, StringField, TextAreaField
from wtforms.validators import DataRequired, Email, Length, ValidationError

from asthron.extensions import db
from asthron.models.tenancy import Agency, Membership, Role, Workspace
from asthron.passwords import PasswordPolicyError
from asthron.roles import ADMIN_ROLES
from asthron.services import tenancy as tenancy_service
from asthron.tenancy import current_scope
from asthron.views.base import FilterInScope, RejectedFormIs400, TenantInterface, TenantModelView


class AgencyView(TenantModelView):
    datamodel = TenantInterface(Agency)
    list_columns = ["name", "slug", "created_at"]
    add_columns = edit_columns = ["name", "slug"]
    show_columns = ["name", "slug", "workspaces", "created_at"]


def _valid_origins(form, field):
    for line in (field.data or "").splitlines():
        if line.strip():
            try:
                tenancy_service.normalise_origin(line)
            except tenancy_service.TenancyError as exc:
                raise ValidationError(str(exc)) from None


def _valid_time_zone(form, field):
    try:
        tenancy_service.check_time_zone(field.data)
    except tenancy_service.TenancyError as exc:
        raise ValidationError(str(exc)) from None


ORIGINS_FIELD = TextAreaField("Allowed website origins", widget=BS3TextAreaFieldWidget(),
                              validators=[_valid_origins],
                              description="One per line, for example https://www.example.com. "
                                          "The widget answers only pages from these origins.")


class WorkspaceView(TenantModelView):
    datamodel = TenantInterface(Workspace)
    list_columns = ["name", "agency", "status", "public_key", "time_zone"]
    show_columns = ["name", "slug", "agency", "status", "public_key", "allowed_origins", "time_zone", "created_at"]
    add_columns = ["agency", "name", "slug", "time_zone", "origins"]
    edit_columns = ["name", "slug", "status", "time_zone", "origins"]
    add_form_extra_fields = edit_form_extra_fields = {"origins": ORIGINS_FIELD}
    search_columns = ["name", "slug", "status"]
    validators_columns = {"time_zone": [_valid_time_zone]}
    add_form_query_rel_fields = {"agency": [["id", FilterInScope, lambda: None]]}

    def prefill_form(self, form, pk):
        item = self.datamodel.get(pk)
        form.origins.data = "\n".join(item.allowed_origins or [])

    def _apply_settings(self, item):
        # "origins" is an extra form field (one origin per line), not a column: FAB leaves it to us.
        lines = [line for line in (request.form.get("origins") or "").splitlines() if line.strip()]
        item.allowed_origins = [tenancy_service.normalise_origin(line) for line in lines]

    def pre_add(self, item):
        scope = current_scope()
        agency_id = item.agency.id if item.agency is not None else item.agency_id
        if not scope.is_operator and agency_id not in (scope.admin_agency_ids or ()):
            raise ValueError("Only the agency's admins can add its workspaces.")
        self._apply_settings(item)

    def pre_update(self, item):
        scope = current_scope()
        try:
            if not scope.is_operator and scope.role_in(item.id) not in ADMIN_ROLES:
                raise ValueError("Only the workspace's admins can change it.")
            self._apply_settings(item)
        except ValueError:
            db.session.rollback()
            raise

    def pre_delete(self, item):
        if current_scope().role_in(item.id) != Role.agency_admin.value:
            raise ValueError("Only the agency's admins can delete a workspace.")


class MembershipView(TenantModelView):
    datamodel = TenantInterface(Membership)
    list_title = "Team"
    list_columns = ["user", "role", "workspace", "agency"]
    show_columns = ["user", "role", "workspace", "agency", "created_at"]
    add_columns = ["user", "role", "workspace"]
    edit_columns = ["role"]
    add_form_query_rel_fields = {"workspace": [["id", FilterInScope, lambda: None]]}

    def _check(self, item):
        scope = current_scope()
        if item.user_id == g.user.id:
            raise ValueError("You cannot change your own role or workspaces.")
        if item.role in (Role.operator, Role.agency_admin) and item.agency_id not in (scope.admin_agency_ids or ()):
            raise ValueError("Only an agency admin can grant that role.")
        if item.workspace_id and scope.role_in(item.workspace_id) not in ADMIN_ROLES:
            raise ValueError("Only the workspace's admins can change its team.")

    def pre_add(self, item):
        if item.role == Role.agency_admin or item.workspace_id is None:
            raise ValueError("Choose a workspace; agency admins are added by the agency.")
        self._check(item)

    def pre_update(self, item):
        try:
            self._check(item)
        except ValueError:
            db.session.rollback()
            raise

    def pre_delete(self, item):
        self._check(item)

    def post_add(self, item):
        self._resync(item.user_id)

    def post_update(self, item):
        self._resync(item.user_id)

    def post_delete(self, item):
        self._resync(item.user_id)

    @staticmethod
    def _resync(user_id):
        from flask_appbuilder.security.sqla.models import User

        user = db.session.get(User, user_id)
        if user is not None:
            tenancy_service.sync_user_roles(user)
            db.session.commit()


MEMBER_ROLES = [(r.name, r.value) for r in (Role.workspace_admin, Role.staff, Role.client)]


def admin_workspaces():
    """Return the workspaces the signed-in user administers."""
    scope = current_scope()
    return [w for w in db.session.query(Workspace).order_by(Workspace.name)
            if scope.role_in(w.id) in ADMIN_ROLES]


class TeamMemberForm(DynamicForm):
    username = StringField("Username", validators=[DataRequired(), Length(max=64)], widget=BS3TextFieldWidget())
    email = StringField("Email", validators=[DataRequired(), Email(), Length(max=320)], widget=BS3TextFieldWidget())
    first_name = StringField("First name", validators=[DataRequired(), Length(max=64)], widget=BS3TextFieldWidget())
    last_name = StringField("Last name", validators=[DataRequired(), Length(max=64)], widget=BS3TextFieldWidget())
    password = PasswordField("Initial password (at least 12 characters)", validators=[DataRequired()],
                             widget=BS3PasswordFieldWidget())
    workspace = QuerySelectField("Workspace", query_func=admin_workspaces, get_pk_func=lambda w: w.id,
                                 validators=[DataRequired()], widget=Select2Widget())
    role = SelectField("Role", choices=MEMBER_ROLES, validators=[DataRequired()], widget=Select2Widget())


class AddTeamMemberView(RejectedFormIs400, SimpleFormView):
    """Create a staff account and give it a role in one of the admin's workspaces."""

    route_base = "/team/add"
    form = TeamMemberForm
    form_title = "Add a team member"

    def form_post(self, form):
        workspace = form.workspace.data
        try:
            user = tenancy_service.create_user(
                username=form.username.data.strip(), email=form.email.data.strip(),
                password=form.password.data, first_name=form.first_name.data, last_name=form.last_name.data)
            tenancy_service.add_member(user=user, role=Role[form.role.data], workspace=workspace)
            db.session.commit()
        except (tenancy_service.TenancyError, PasswordPolicyError) as exc:
            db.session.rollback()
            flash(str(exc), "danger")
            return redirect(url_for("AddTeamMemberView.this_form_get"))
        flash(f"{user.username} can now sign in to {workspace.name}.", "success")
        return redirect(url_for("MembershipView.list"))
