"""App-wide web concerns: health endpoint, error pages, security headers."""
from flask import Blueprint, jsonify
from sqlalchemy import text

bp = Blueprint("web", __name__)


@bp.get("/health")
def health():
    """Report the state of the database, job queue and plugins."""
    from asthron import jobs
    from asthron.extensions import db
    from asthron.plugins import get_plugins

    status = {"database": "ok"}
    try:
        db.session.execute(text("SELECT 1"))
    except Exception as exc:  # report, never raise, from a health check
        status["database"] = f"error: {type(exc).__name__}"
    status["queue"] = jobs.health(db.session)
    code = 200 if status["database"] == "ok" else 503
    names = [plugin["name"] for plugin in get_plugins()]
    status["plugins"] = {"count": len(names), "names": names}
    # A queue that does not answer loses nothing (the outbox keeps the work): degraded, not down.
    healthy = code == 200 and status["queue"]["state"] == "ok"
    return jsonify(status=("ok" if healthy else "degraded"), **status), code


def init_app(app):
    """Register the web blueprint."""
    from asthron import demo_site, legal, widget
    from asthron.widget import loader

    app.register_blueprint(bp)
    legal.init_app(app)
    widget.init_app(app)
    loader.init_app(app)
    demo_site.init_app(app)
    from asthron import calendar_feed

    calendar_feed.init_app(app)
