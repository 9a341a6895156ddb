"""Public legal pages, readable without signing in: the Sub-processors page and its JSON."""
from flask import Blueprint, current_app, jsonify, render_template

from asthron.services import subprocessors

bp = Blueprint("legal", __name__, url_prefix="/legal")


@bp.get("/sub-processors")
def subprocessors_page():
    """Show the sub-processors of enabled plugins and the operator's entries, with the date the list last changed."""
    listing = subprocessors.publish()
    return render_template("legal/sub_processors.html", app_name=current_app.config.get("APP_NAME", "Asthron"),
                           **listing)


@bp.get("/sub-processors.json")
def subprocessors_json():
    """Return the same list as JSON: {"subprocessors": [...], "last_changed": "YYYY-MM-DD"}."""
    return jsonify(subprocessors.publish())


def init_app(app):
    """Register the legal pages."""
    app.register_blueprint(bp)
