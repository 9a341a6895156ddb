"""The FAB security manager: roles from code, audited sign-in, and guarded user administration."""
import logging
import re

from flask import g
from flask_appbuilder.security.sqla.manager import SecurityManager
from flask_appbuilder.security.sqla.models import PermissionView
from flask_appbuilder.security.views import UserDBModelView

from asthron import audit
from asthron.roles import ROLE_PERMISSIONS

log = logging.getLogger(__name__)


class SelfEditError(Exception):
    """A user tried to change their own role, tenant or active flag."""


class AsthronUserView(UserDBModelView):
    """FAB's user admin, refusing changes to one's own roles or active flag."""

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

    @staticmethod
    def create_builtin_roles():
        return ROLE_PERMISSIONS

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

