"""`GET /widget.js`: the embeddable chat widget script, cached briefly and revalidated by ETag."""
import hashlib
import os

from flask import Blueprint, current_app, request

bp = Blueprint("widget_loader", __name__)
SCRIPT = os.path.join(os.path.dirname(__file__), "static", "widget.js")
# Short, so a fixed widget reaches every client site within minutes; the ETag makes revalidation cheap.
MAX_AGE = 300
_cache = {}


def script():
    """Return the script's bytes and their ETag, read once per change of the file."""
    mtime = os.stat(SCRIPT).st_mtime_ns
    if _cache.get("mtime") != mtime:
        with open(SCRIPT, "rb") as fh:
            body = fh.read()
        _cache.update(mtime=mtime, body=body, etag=hashlib.sha256(body).hexdigest()[:32])
    return _cache["body"], _cache["etag"]


@bp.get("/widget.js")
def widget_js():
    """Serve the widget script to any site (a script tag needs no CORS)."""
    body, etag = script()
    response = current_app.response_class(body, mimetype="application/javascript")
    response.set_etag(etag)
    response.cache_control.public = True
    response.cache_control.max_age = MAX_AGE
    return response.make_conditional(request)


def init_app(app):
    """Register the widget script route."""
    app.register_blueprint(bp)
