"""Browser-facing protections: security headers, a CSP nonce, friendly error pages, CSRF exemptions.

CSRF: Flask-WTF's `csrf` extension checks every POST, PUT, PATCH and DELETE, FAB's views and REST
API included. A blueprint that must accept requests from other sites (the widget API, inbound
webhooks) is exempted with `exempt_from_csrf(app, blueprint)`; such a blueprint then never sees the
signed-in admin user either, so a cross-site request cannot act with an admin's cookie.

Headers: every response gets a Content-Security-Policy with a per-request nonce (FAB's templates
call `csp_nonce()` for each `<script>`), `frame-ancestors 'none'`, `X-Frame-Options: DENY`,
`nosniff` and a referrer policy. A response that sets its own Content-Security-Policy (a widget
frame embedded on clients' sites, say) keeps it and gets no X-Frame-Options. Pages for a
signed-in user are `Cache-Control: no-store`.
"""
import secrets

from flask import (
    abort,
    current_app,
    g,
    jsonify,
    make_response,
    render_template,
    request,
    session,
)
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException
from werkzeug.middleware.proxy_fix import ProxyFix

EXEMPT = "asthron_csrf_exempt"
CSP = ("default-src 'self'; script-src 'self' 'nonce-{nonce}'; style-src 'self' 'unsafe-inline'; "
       "img-src 'self' data:; font-src 'self' data:; connect-src 'self'; object-src 'none'; "
       "base-uri 'self'; form-action 'self'; frame-ancestors 'none'")
HSTS = "max-age=31536000; includeSubDomains"
MESSAGES = {
    400: ("Bad request", "The request could not be understood. Go back and try again."),
    403: ("Not allowed", "You do not have permission to do that."),
    404: ("Not found", "There is nothing at this address. Check the link or go back to the start page."),
    405: ("Not allowed here", "This address does not accept that kind of request."),
    429: ("Too many attempts", "Too many attempts in a short time. Wait a moment, then try again."),
    500: ("Something went wrong", "An unexpected error stopped this request. It has been logged; please try again."),
}
CSRF_MESSAGE = ("Your form expired or did not come from this site. "
                "Go back, reload the page and submit it again.")


def csp_nonce():
    """Return this request's CSP nonce, creating it on first use."""
    if "csp_nonce" not in g:
        g.csp_nonce = secrets.token_urlsafe(16)
    return g.csp_nonce


def exempt_from_csrf(app, blueprint):
    """Exempt a blueprint from CSRF checks; its requests are then never signed in by the session cookie."""
    from asthron.extensions import csrf

    csrf.exempt(blueprint)
    app.extensions.setdefault(EXEMPT, set()).add(blueprint.name)


def is_csrf_exempt(app):
    """Say whether this request goes to a CSRF-exempt blueprint."""
    return request.blueprint is not None and request.blueprint in app.extensions.get(EXEMPT, ())


def _set_headers(response):
    headers = response.headers
    if "Content-Security-Policy" not in headers:
        headers["Content-Security-Policy"] = CSP.format(nonce=csp_nonce())
        headers.setdefault("X-Frame-Options", "DENY")
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("Referrer-Policy", "strict-origin-when-cross-origin")
    if current_app.config.get("ASTHRON_ENV") == "production":
        headers.setdefault("Strict-Transport-Security", HSTS)
    endpoint = request.endpoint or ""
    # Static files first: reading the session would add "Vary: Cookie" and spoil their caching.
    if not (endpoint == "static" or endpoint.endswith(".static")) and "_user_id" in session:
        headers["Cache-Control"] = "no-store"
        headers.pop("Expires", None)
    return response


def _wants_json():
    best = request.accept_mimetypes.best_match(["text/html", "application/json"])
    return best == "application/json" and request.accept_mimetypes[best] > request.accept_mimetypes["text/html"]


def _error_response(code, *, title=None, message=None, retry_after=None):
    title, text = MESSAGES.get(code, (title or f"Error {code}", "The request could not be completed."))
    text = message or text
    if _wants_json():
        body = jsonify(error=title, message=text, status=code)
    else:
        body = render_template("errors/error.html", code=code, title=title, message=text)
    response = make_response(body, code)
    if retry_after:
        response.headers["Retry-After"] = str(retry_after)
    return response


def handle_http_error(exc):
    """Render an HTTP error as a friendly page (or JSON for JSON clients), never a traceback.

    Flask has already logged an unhandled exception by the time it reaches here as a 500.
    """
    if exc.code is None or exc.code < 400:
        return exc
    if isinstance(exc, CSRFError):
        return _error_response(400, message=CSRF_MESSAGE)
    # A description given to abort() by our code says what to change; werkzeug's default does not.
    custom = exc.description if exc.description != type(exc).description else None
    return _error_response(exc.code, title=exc.name, message=custom,
                           retry_after=getattr(exc, "retry_after", None))


def reject_malformed_list_arguments():
    """Answer 400 to a FAB list page or size argument that is not a whole number (FAB would raise)."""
    for name, value in request.args.items():
        if name.startswith(("page_", "psize_")) and not value.isdigit():
            abort(400, description=f"{name} must be a whole number.")


def _enforce_production(app):
    # config.py derives Secure from the environment; an app configured for production in code
    # (`create_app({"ASTHRON_ENV": "production"})`) must not end up with cookies sent over HTTP.
    if app.config.get("ASTHRON_ENV") == "production":
        app.config.update(SESSION_COOKIE_SECURE=True, REMEMBER_COOKIE_SECURE=True)


def _trust_proxies(app):
    # The sign-in limits and the audit log key on the client address; behind a proxy that is the
    # X-Forwarded-For hop the proxy added, and only as many hops as are configured are believed.
    hops = app.config.get("ASTHRON_PROXY_COUNT") or 0
    if hops:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops)


def init_app(app):
    """Install the headers, the CSP nonce for templates, the error pages and trusted-proxy handling."""
    _enforce_production(app)
    _trust_proxies(app)
    app.before_request(reject_malformed_list_arguments)
    app.after_request(_set_headers)
    # A global, not a context processor: FAB's macros read it from templates imported without context.
    app.add_template_global(csp_nonce, "csp_nonce")
    app.register_error_handler(HTTPException, handle_http_error)
