"""The FAB security manager: roles from code, audited sign-in, and guarded user administration.

Sign-in and sessions: logins are rate limited (`asthron.login_limits`), each login gets a
server-side session record (`asthron.sessions`) that every request must still match, logout is a
CSRF-protected POST that ends all the user's sessions, and every password that is set passes the
policy in `asthron.passwords` (FAB's forms through FAB_PASSWORD_COMPLEXITY_VALIDATOR, code through
`reset_password` and `add_user`).
"""
import logging
import re

from flask import current_app, flash, g, has_request_context, redirect, request, session
from flask_appbuilder.exceptions import PasswordComplexityValidationError
from flask_appbuilder.fieldwidgets import BS3PasswordFieldWidget
from flask_appbuilder.security.api import SecurityApi
from flask_appbuilder.security.decorators import no_cache
from flask_appbuilder.security.forms import ResetPasswordForm
from flask_appbuilder.security.sqla.manager import SecurityManager
from flask_appbuilder.security.sqla.models import PermissionView, User
from flask_appbuilder.security.views import (
    AuthDBView,
    ResetMyPasswordView,
    ResetPasswordView,
    UserDBModelView,
)
from flask_appbuilder.validators import PasswordComplexityValidator
from flask_appbuilder.views import expose
from flask_login import current_user, logout_user
from wtforms import PasswordField
from wtforms.validators import DataRequired

from asthron import audit, login_limits, sessions, websecurity
from asthron.passwords import PasswordPolicyError, check_password_policy
from asthron.roles import ROLE_PERMISSIONS

log = logging.getLogger(__name__)

POLICY_HINT = ("At least 12 characters. A few unrelated words make a strong password that is easy to "
               "remember; common passwords are refused.")


def fab_password_validator(password):
    """Apply the password policy to a FAB form field (FAB_PASSWORD_COMPLEXITY_VALIDATOR)."""
    try:
        check_password_policy(password)
    except PasswordPolicyError as exc:
        raise PasswordComplexityValidationError(str(exc)) from None


def _policy_password_field(label):
    return PasswordField(label, description=POLICY_HINT, widget=BS3PasswordFieldWidget(),
                         validators=[DataRequired(), PasswordComplexityValidator()])


class PolicyResetPasswordForm(ResetPasswordForm):
    """FAB's reset form with the policy described (FAB's text says no policy is checked)."""

    password = _policy_password_field("Password")


class AsthronResetPasswordView(ResetPasswordView):
    """An admin sets another user's password."""

    class_permission_name = "ResetPasswordView"
    form = PolicyResetPasswordForm


class AsthronResetMyPasswordView(ResetMyPasswordView):
    """A user changes their own password."""

    class_permission_name = "ResetMyPasswordView"
    form = PolicyResetPasswordForm


class SecurityApiWithoutRoutes(SecurityApi):
    """FAB's JWT sign-in API, registered with no routes.

    Its `/api/v1/security/login` would hand out JWTs that bypass the sign-in limits and outlive
    server-side session revocation; machines use API keys instead.
    """

    class_permission_name = "SecurityApi"
    include_route_methods = set()


class AsthronAuthDBView(AuthDBView):
    """FAB's sign-in with attempt limits, and a sign-out that is a CSRF-protected POST."""

    @expose("/login/", methods=["GET", "POST"])
    @no_cache
    def login(self):
        """Count a sign-in attempt against the limits, then sign in as FAB does."""
        if request.method == "POST":
            login_limits.check_login_attempt(request.form.get("username", ""))
        return super().login()

    @expose("/logout/", methods=["GET", "POST"])
    def logout(self):
        """Ask for confirmation on GET; on POST end all the user's sessions and sign this browser out."""
        user = self._get_authenticated_user()
        if request.method == "GET":
            if user is None:
                return redirect(self.appbuilder.get_url_for_login)
            return self.render_template("security/logout.html", title="Sign out", appbuilder=self.appbuilder)
        if user is not None:
            sessions.revoke_user_sessions(user.id, reason="logout")
        session.clear()
        logout_user()
        if user is not None:
            self.appbuilder.sm.on_user_logout(user)
        return redirect(current_app.config.get("LOGOUT_REDIRECT_URL", self.appbuilder.get_url_for_index))


class SelfEditError(Exception):
    """A user tried to change their own role, tenant or active flag."""


class AsthronUserView(UserDBModelView):
    """FAB's user admin, refusing changes to one's own roles or active flag."""

    add_form_extra_fields = dict(UserDBModelView.add_form_extra_fields, password=_policy_password_field("Password"))

    def pre_update(self, item):
        from sqlalchemy import inspect

        super().pre_update(item)
        if g.user is not None and item.id == g.user.id:
            state = inspect(item)
            changed = [name for name in ("roles", "active") if state.attrs[name].history.has_changes()]
            if changed:
                from asthron.extensions import db

                db.session.rollback()
                raise SelfEditError("You cannot change your own " + " or ".join(changed) + ".")

    def pre_delete(self, item):
        if g.user is not None and item.id == g.user.id:
            raise SelfEditError("You cannot delete your own account.")


class AsthronSecurityManager(SecurityManager):
    """Roles and permissions defined in `asthron.roles`; sign-in events go to the audit log."""

    userdbmodelview = AsthronUserView
    authdbview = AsthronAuthDBView
    resetpasswordview = AsthronResetPasswordView
    resetmypasswordview = AsthronResetMyPasswordView
    security_api = SecurityApiWithoutRoutes

    @staticmethod
    def create_builtin_roles():
        return ROLE_PERMISSIONS

    def create_login_manager(self, app):
        lm = super().create_login_manager(app)
        lm.user_loader(self.load_session_user)
        return lm

    def load_session_user(self, pk):
        """Return the user of this browser's session while its server-side record is live, else None."""
        from asthron.tenancy import unrestricted

        if websecurity.is_csrf_exempt(current_app):
            return None  # cross-site endpoints never act as the signed-in admin
        with unrestricted():  # the tenant scope is computed from the user being loaded here
            user = self.load_user(pk)
        if user is not None and sessions.is_valid(user.id):
            return user
        sessions.forget()
        flash("Your session has ended. Please sign in again.", "info")
        return None

    def add_user(self, username, first_name, last_name, email, role=None, password="", hashed_password="",
                 groups=None, commit=True):
        if password and not hashed_password:
            check_password_policy(password)
        return super().add_user(username, first_name, last_name, email, role, password=password,
                                hashed_password=hashed_password, groups=groups, commit=commit)

    def reset_password(self, userid, password):
        """Set a policy-checked password, end the user's other sessions and audit it, in one transaction."""
        from asthron.extensions import db

        check_password_policy(password)
        user_id = int(userid)
        own = has_request_context() and current_user.is_authenticated and current_user.id == user_id
        count = sessions.revoke_user_sessions(user_id, reason="password_change", keep_current=own,
                                              connection=db.session.connection())
        audit.record_in_session("password.change", target_type="User", target_id=user_id,
                                details={"own": own, "sessions_revoked": count})
        super().reset_password(user_id, password)

    def auth_user_db(self, username, password):
        user = super().auth_user_db(username, password)
        if user is None:
            audit.record("login.failure", details={"username": (username or "")[:256]})
        return user

    def on_user_login(self, user):
        audit.record("login.success", target_type="User", target_id=user.id,
                     actor_id=user.id, actor=user.username)

    def on_user_logout(self, user):
        audit.record("logout", target_type="User", target_id=user.id, actor_id=user.id, actor=user.username)

    def sync_roles(self):
        """Create every role defined in code and attach the permissions its patterns match."""
        from asthron.extensions import db

        self.create_permissions()
        all_pvms = db.session.query(PermissionView).all()
        for name, patterns in ROLE_PERMISSIONS.items():
            role = self.find_role(name) or self.add_role(name)
            wanted = [pvm for pvm in all_pvms if pvm.view_menu and pvm.permission and any(
                re.match(v, pvm.view_menu.name) and re.match(p, pvm.permission.name) for v, p in patterns)]
            role.permissions = wanted
        self.find_role(self.auth_role_public) or self.add_role(self.auth_role_public)
        db.session.commit()
        return sorted(ROLE_PERMISSIONS)

    def create_permissions(self):
        """Make sure every registered view's permissions exist."""
        from flask import current_app

        current_app.appbuilder.add_permissions(update_perms=True)


def init_app(app):
    """Make FAB's password forms apply the policy; install sessions, sign-in limits and web protections."""
    # Not left to config.py: the policy is not optional, and a callable cannot come from the environment.
    app.config["FAB_PASSWORD_COMPLEXITY_ENABLED"] = True
    app.config["FAB_PASSWORD_COMPLEXITY_VALIDATOR"] = fab_password_validator
    # Role and active-flag changes of accounts are audited like tenant rows; sign-in counters are not.
    audit.track(User, ignore={"last_login", "login_count", "fail_login_count", "changed_on", "changed_by_fk"},
                relationships=("roles",))
    sessions.init_app(app)
    login_limits.init_app(app)
    websecurity.init_app(app)
