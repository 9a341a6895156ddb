"""Sample client websites for the demo workspaces (`/demo/site/<slug>`), each embedding the widget.

Only the workspaces the demo seeds (demo agency and workspace names, asthron/services/demo.py) get a
page: a real customer's widget key is public on their own site, but this app does not advertise it.
"""
from flask import Blueprint, abort, render_template, url_for
from sqlalchemy import select

from asthron.extensions import db
from asthron.tenancy import unrestricted

bp = Blueprint("demo_site", __name__)


def _demo_pairs():
    from asthron.services.demo import AGENCIES

    return {(agency, name) for agency, spaces in AGENCIES for name, _tz in spaces}


def is_demo_workspace(workspace):
    """Say whether `workspace` is one of the seeded demo workspaces."""
    return (workspace.agency.name, workspace.name) in _demo_pairs()


def demo_site_url(workspace):
    """Return the sample website address of a demo workspace, or None for any other workspace."""
    return url_for("demo_site.page", slug=workspace.slug) if is_demo_workspace(workspace) else None


def find(slug):
    """Return {name, slug, key} of the demo workspace with this slug, or None."""
    from asthron.models.tenancy import Workspace

    # A visitor has no tenant scope; the page reads one public field of one seeded workspace.
    with unrestricted():
        for workspace in db.session.scalars(select(Workspace).where(Workspace.slug == slug)):
            if is_demo_workspace(workspace):
                return {"name": workspace.name, "slug": workspace.slug, "key": workspace.public_key}
    return None


@bp.get("/demo/site/<slug>")
def page(slug):
    """Render a demo workspace's sample business website with the widget embedded."""
    from asthron.services import demo_content

    workspace = find(slug)
    copy = demo_content.site(workspace["name"]) if workspace else None
    if copy is None:
        abort(404)
    return render_template("demo/site.html", workspace=workspace, site=copy)


def init_app(app):
    """Register the demo site pages and the dashboard's link helper."""
    app.register_blueprint(bp)
    app.add_template_global(demo_site_url, "demo_site_url")
