"""`GET /widget-booking.js`: the widget's booking panel, loaded only when a visitor opens booking.

Kept out of widget.js so the first load stays small (bench/widget_size.py); cached and revalidated
like the main script.
"""
import hashlib
import os

from flask import Blueprint, current_app, request

bp = Blueprint("widget_booking_script", __name__)
SCRIPT = os.path.join(os.path.dirname(__file__), "static", "widget-booking.js")
MAX_AGE = 300
_cache = {}


@bp.get("/widget-booking.js")
def booking_js():
    """Serve the booking panel script to any site."""
    mtime = os.stat(SCRIPT).st_mtime_ns
    if _cache.get("mtime") != mtime:
        with open(SCRIPT, "rb") as fh:
            body = fh.read()
        _cache.update(mtime=mtime, body=body, etag=hashlib.sha256(body).hexdigest()[:32])
    response = current_app.response_class(_cache["body"], mimetype="application/javascript")
    response.set_etag(_cache["etag"])
    response.cache_control.public = True
    response.cache_control.max_age = MAX_AGE
    return response.make_conditional(request)


def init_app(app):
    """Register the booking script route."""
    app.register_blueprint(bp)
