"""The public widget: the visitor API under /widget/api/v1 (and the script it serves to websites)."""


def init_app(app):
    """Register the visitor API, exempt from CSRF (it never acts as a signed-in user)."""
    from asthron.websecurity import exempt_from_csrf
    from asthron.widget import api, limits

    limits.init_app(app)
    app.register_blueprint(api.bp)
    exempt_from_csrf(app, api.bp)
    for code in (404, 405):
        app.register_error_handler(code, api.outside_routes_error)
