"""The landing page: the signed-in user's workspaces at a glance."""
from flask import g, redirect, url_for
from flask_appbuilder import IndexView, expose
from sqlalchemy import select

from asthron.extensions import db
from asthron.models.tenancy import Workspace
from asthron.tenancy import current_scope


class DashboardView(IndexView):
    """Show each visible workspace with its status and widget key; send visitors to sign in."""

    index_template = "dashboard.html"

    @expose("/")
    def index(self):
        if g.user is None or not g.user.is_authenticated:
            return redirect(url_for(self.appbuilder.sm.auth_view.__class__.__name__ + ".login"))
        workspaces = db.session.scalars(select(Workspace).order_by(Workspace.name).limit(200)).all()
        return self.render_template(self.index_template, appbuilder=self.appbuilder,
                                    workspaces=workspaces, scope=current_scope())
