"""`GET /calendar/feed/<token>.ics`: a resource's private booking feed (asthron.services.calendar_feed)."""
from flask import Blueprint, abort, current_app

from asthron.services import calendar_feed

bp = Blueprint("calendar_feed", __name__)


@bp.get("/calendar/feed/<token>.ics")
def feed(token):
    """Serve the feed the token opens; any other token is a 404, like a page that does not exist."""
    resource = calendar_feed.resource_for_token(token)
    if resource is None:
        abort(404)
    response = current_app.response_class(calendar_feed.feed_ics(resource), mimetype="text/calendar")
    response.headers["Content-Disposition"] = 'inline; filename="bookings.ics"'
    response.headers["X-Robots-Tag"] = "noindex, nofollow"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.cache_control.private = True
    response.cache_control.no_store = True
    return response


def init_app(app):
    """Register the feed route."""
    app.register_blueprint(bp)
