"""The public widget: the visitor API under /widget/api/v1 (and the script it serves to websites)."""


def init_app(app):
    """Register the visitor API, exempt from CSRF (it never acts as a signed-in user)."""
    from asthron.websecurity import exempt_from_csrf
    from asthron.widget import api, limits
    from asthron.widget import leads  # noqa: F401  (adds the lead form's routes to api.bp)
    from asthron.widget import booking, booking_script, manage  # noqa: F401  (booking adds routes to api.bp)

    limits.init_app(app)
    manage.init_app(app)  # the signed-link booking pages (CSRF-protected forms, not part of the JSON API)
    booking_script.init_app(app)  # /widget-booking.js, the lazily loaded booking panel
    app.register_blueprint(api.bp)
    exempt_from_csrf(app, api.bp)
    for code in (404, 405):
        app.register_error_handler(code, api.outside_routes_error)
