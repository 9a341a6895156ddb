"""Browser protections: cookies, sign-in limits, CSRF, security headers, safe redirects, friendly errors."""
import re
from urllib.parse import urlsplit

import pytest
from flask import Blueprint, abort, jsonify
from flask_login import current_user
from sqlalchemy import select

from tests.conftest import Auth, csrf_token

WRONG = "not the right password at all"
UNSAFE = {"POST", "PUT", "PATCH", "DELETE"}


def set_cookie_header(response, name="session"):
    return next(h for h in response.headers.getlist("Set-Cookie") if h.startswith(name + "="))


def attempt(client, username, ip):
    """Try to sign in with a wrong password from address `ip`."""
    client.environ_base["REMOTE_ADDR"] = ip
    return Auth(client).login(username, WRONG)


def scrub(html):
    """Remove the values that differ between any two page views (CSRF token, CSP nonce)."""
    return re.sub(r'(value|nonce)="[^"]*"', r'\1=""', html)


# --- cookies -------------------------------------------------------------------------------------

def test_session_cookie_is_httponly_and_samesite_lax(client):
    header = set_cookie_header(client.get("/login/"))
    assert "HttpOnly" in header and "SameSite=Lax" in header


def test_session_cookie_is_not_marked_secure_outside_production(client):
    assert "Secure" not in set_cookie_header(client.get("/login/"))


def test_session_cookie_is_secure_in_production(make_app):
    production = make_app(ASTHRON_ENV="production")
    header = set_cookie_header(production.test_client().get("/login/", base_url="https://localhost"))
    assert "Secure" in header and "HttpOnly" in header and "SameSite=Lax" in header


def test_production_responses_ask_browsers_to_use_https_only(make_app):
    production = make_app(ASTHRON_ENV="production")
    response = production.test_client().get("/login/", base_url="https://localhost")
    assert response.headers["Strict-Transport-Security"].startswith("max-age=")


# --- sign-in limits ------------------------------------------------------------------------------

def test_sign_in_attempts_are_limited_per_username_across_addresses(app, client, tenants, monkeypatch):
    monkeypatch.setitem(app.config, "ASTHRON_LOGIN_RATE_LIMIT", "3 per minute")
    for n in range(3):
        assert attempt(client, "a1_staff", f"203.0.113.{n}").status_code == 302
    assert attempt(client, "a1_staff", "203.0.113.99").status_code == 429


def test_sign_in_attempts_are_limited_per_address_across_usernames(app, client, tenants, monkeypatch):
    monkeypatch.setitem(app.config, "ASTHRON_LOGIN_RATE_LIMIT", "3 per minute")
    for name in ("a1_staff", "a1_admin", "b_admin"):
        assert attempt(client, name, "198.51.100.1").status_code == 302
    assert attempt(client, "b1_staff", "198.51.100.1").status_code == 429


def test_limited_sign_in_answers_429_with_retry_after_and_a_friendly_page(app, client, tenants, monkeypatch):
    monkeypatch.setitem(app.config, "ASTHRON_LOGIN_RATE_LIMIT", "1 per minute")
    attempt(client, "a1_staff", "198.51.100.2")
    response = attempt(client, "a1_staff", "198.51.100.2")
    assert response.status_code == 429
    assert 1 <= int(response.headers["Retry-After"]) <= 60
    assert "Too many attempts" in response.get_data(as_text=True)


def test_limited_sign_in_refuses_even_the_right_password(app, client, tenants, monkeypatch):
    monkeypatch.setitem(app.config, "ASTHRON_LOGIN_RATE_LIMIT", "1 per minute")
    attempt(client, "a1_staff", "198.51.100.3")
    assert Auth(client).login("a1_staff").status_code == 429


def test_two_app_instances_share_the_sign_in_counter_through_redis(make_app, redis_url):
    config = {"RATELIMIT_STORAGE_URI": redis_url, "ASTHRON_LOGIN_RATE_LIMIT": "2 per minute"}
    first, second = make_app(**config), make_app(**config)
    attempt(first.test_client(), "someone", "192.0.2.10")
    attempt(first.test_client(), "someone", "192.0.2.11")
    assert attempt(second.test_client(), "someone", "192.0.2.12").status_code == 429


def test_sign_in_still_works_when_the_counter_store_is_down(make_app):
    from asthron.services.tenancy import create_user

    app = make_app(RATELIMIT_STORAGE_URI="redis://127.0.0.1:1/0")
    with app.app_context():
        from asthron.extensions import db

        create_user(username="solo", email="solo@example.com", password="granite lantern orbit velvet")
        db.session.commit()
    assert Auth(app.test_client()).login("solo", "granite lantern orbit velvet").headers["Location"] == "/"


def test_unknown_user_and_wrong_password_get_identical_responses(app, tenants):
    answers = []
    for username in ("a1_staff", "nobody_by_this_name"):
        client = app.test_client()
        response = Auth(client).login(username, WRONG)
        page = client.get(response.headers["Location"])
        answers.append((response.status_code, response.headers["Location"], response.get_data(),
                        page.status_code, scrub(page.get_data(as_text=True))))
    assert answers[0] == answers[1]
    assert "Invalid login" in answers[0][4]


# --- CSRF ----------------------------------------------------------------------------------------

def test_form_post_without_csrf_token_gets_a_friendly_400(client, tenants):
    response = client.post("/login/", data={"username": "a1_staff", "password": WRONG})
    assert response.status_code == 400
    body = response.get_data(as_text=True)
    assert "did not come from this site" in body and "Traceback" not in body


def _sample_url(app, rule):
    with app.test_request_context():
        from flask import url_for

        return url_for(rule.endpoint, **{arg: "1" for arg in rule.arguments})


def test_every_state_changing_route_refuses_a_signed_in_request_without_csrf_token(app, client, auth, tenants):
    from asthron.websecurity import EXEMPT

    auth.login("operator")
    checked = []
    for rule in app.url_map.iter_rules():
        if rule.endpoint.rpartition(".")[0] in app.extensions.get(EXEMPT, ()):
            continue  # cross-site by design, and exempted with `exempt_from_csrf` (no cookie sign-in there)
        for method in sorted(UNSAFE & rule.methods):
            response = client.open(_sample_url(app, rule), method=method)
            checked.append((method, rule.rule, response.status_code))
    assert checked and all(code == 400 for _m, _r, code in checked), [c for c in checked if c[2] != 400]


def test_get_on_a_delete_address_deletes_nothing(app, client, auth, tenants):
    from asthron.extensions import db
    from asthron.models.tenancy import Agency

    auth.login("operator")
    client.get(f"/agencyview/delete/{tenants['b']}")
    with app.app_context():
        assert db.session.execute(select(Agency.id).where(Agency.id == tenants["b"])).first() is not None


def test_fab_jwt_sign_in_api_is_not_served(client, tenants):
    response = client.post("/api/v1/security/login", json={"username": "operator", "password": "x", "provider": "db"})
    assert response.status_code == 404


def test_csrf_exempt_blueprint_takes_cross_site_posts_but_never_acts_as_the_signed_in_user(make_app):
    from asthron.websecurity import exempt_from_csrf

    app = make_app()
    hooks = Blueprint("hooks_spec", __name__)
    hooks.add_url_rule("/hooks/spec", "receive", lambda: jsonify(user=current_user.is_authenticated), methods=["POST"])
    app.register_blueprint(hooks)
    exempt_from_csrf(app, hooks)
    with app.app_context():
        from asthron.extensions import db
        from asthron.services.tenancy import create_user

        create_user(username="solo", email="solo@example.com", password="granite lantern orbit velvet")
        db.session.commit()
    client = app.test_client()
    Auth(client).login("solo", "granite lantern orbit velvet")
    response = client.post("/hooks/spec")
    assert response.status_code == 200 and response.json == {"user": False}


# --- headers -------------------------------------------------------------------------------------

def test_admin_pages_forbid_framing_sniffing_and_leaking_the_address(client, auth, tenants):
    auth.login("a1_staff")
    headers = client.get("/workspaceview/list/").headers
    assert "frame-ancestors 'none'" in headers["Content-Security-Policy"]
    assert headers["X-Frame-Options"] == "DENY"
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Referrer-Policy"] == "strict-origin-when-cross-origin"


def test_every_script_on_an_admin_page_carries_the_csp_nonce(client, auth, tenants):
    auth.login("a1_staff")
    response = client.get("/workspaceview/list/")
    nonce = re.search(r"script-src 'self' 'nonce-([^']+)'", response.headers["Content-Security-Policy"]).group(1)
    scripts = re.findall(r"<script[^>]*>", response.get_data(as_text=True))
    assert scripts and all(f'nonce="{nonce}"' in tag for tag in scripts)


def test_the_csp_nonce_changes_with_every_response(client):
    policies = {client.get("/login/").headers["Content-Security-Policy"] for _ in range(2)}
    assert len(policies) == 2


def test_signed_in_pages_are_not_stored_by_caches(client, auth, tenants):
    auth.login("a1_staff")
    assert client.get("/workspaceview/list/").headers["Cache-Control"] == "no-store"


def test_a_response_with_its_own_csp_keeps_it_and_may_be_framed(make_app):
    app = make_app()
    frame = Blueprint("frame_spec", __name__)
    frame.add_url_rule("/frame/spec", "show", lambda: ("hi", 200, {
        "Content-Security-Policy": "frame-ancestors https://client.example"}))
    app.register_blueprint(frame)
    headers = app.test_client().get("/frame/spec").headers
    assert headers["Content-Security-Policy"] == "frame-ancestors https://client.example"
    assert "X-Frame-Options" not in headers


# --- redirects -----------------------------------------------------------------------------------

@pytest.mark.parametrize("target", ["https://evil.example/", "//evil.example/", "/\\evil.example/",
                                    "https:evil.example", "javascript:alert(1)"])
def test_sign_in_never_redirects_off_site(client, tenants, target):
    token = csrf_token(client, "/login/")
    response = client.post("/login/", query_string={"next": target},
                           data={"username": "a1_staff", "password": "correct horse battery staple",
                                 "csrf_token": token})
    location = urlsplit(response.headers["Location"])
    assert (location.scheme, location.netloc) == ("", "") and location.path.startswith("/")
    assert not location.path.startswith(("//", "/\\"))


# --- error pages ---------------------------------------------------------------------------------

def test_unknown_address_is_a_friendly_404(client):
    response = client.get("/no/such/page")
    assert response.status_code == 404 and "There is nothing at this address" in response.get_data(as_text=True)


def test_wrong_method_is_a_friendly_405(client):
    response = client.put("/health")
    assert response.status_code == 405 and "does not accept that kind of request" in response.get_data(as_text=True)


@pytest.fixture
def failing_app(make_app):
    """An app run as in production (TESTING off) with routes that fail on purpose."""
    app = make_app(TESTING=False)
    broken = Blueprint("broken_spec", __name__)
    broken.add_url_rule("/broken/forbidden", "forbidden", lambda: abort(403))
    broken.add_url_rule("/broken/crash", "crash", lambda: 1 / 0)
    app.register_blueprint(broken)
    return app


def test_forbidden_is_a_friendly_403(failing_app):
    response = failing_app.test_client().get("/broken/forbidden")
    assert response.status_code == 403 and "You do not have permission" in response.get_data(as_text=True)


def test_an_escaping_exception_is_a_friendly_500_without_a_traceback(failing_app):
    response = failing_app.test_client().get("/broken/crash")
    body = response.get_data(as_text=True)
    assert response.status_code == 500 and "Something went wrong" in body
    assert "Traceback" not in body and "ZeroDivisionError" not in body


def test_error_pages_carry_the_security_headers(failing_app):
    headers = failing_app.test_client().get("/broken/crash").headers
    assert "frame-ancestors 'none'" in headers["Content-Security-Policy"] and headers["X-Frame-Options"] == "DENY"


def test_json_clients_get_errors_as_json(client):
    response = client.get("/no/such/page", headers={"Accept": "application/json"})
    assert response.status_code == 404 and response.json["status"] == 404


def test_behind_a_trusted_proxy_the_limit_counts_the_forwarded_client_address(make_app):
    app = make_app(ASTHRON_PROXY_COUNT=1, ASTHRON_LOGIN_RATE_LIMIT="1 per minute")
    client = app.test_client()
    for n, forwarded in enumerate(("192.0.2.1", "192.0.2.2")):
        token = csrf_token(client, "/login/")
        response = client.post("/login/", headers={"X-Forwarded-For": forwarded},
                               data={"username": f"user{n}", "password": WRONG, "csrf_token": token})
        assert response.status_code == 302


def test_malformed_list_page_argument_is_a_clear_400(client, auth, tenants):
    auth.login("a_admin")
    response = client.get("/workspaceview/list/?page_WorkspaceView=abc")
    assert response.status_code == 400
    assert "page_WorkspaceView must be a whole number" in response.get_data(as_text=True)
