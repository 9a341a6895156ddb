"""Browser fixtures: the real app served on loopback, headless Chromium, sign-in and seeding helpers.

Journeys use `live` (the server, its URL and a `seed` helper, on an emptied database), `new_page`
(a page in its own browser context, so each user has their own cookies) and `sign_in` (the real
login form). A failed journey leaves a screenshot of every open page in tests/browser/artifacts/.
"""
import os
import re
import shutil
import threading
from pathlib import Path

import pytest

from tests.conftest import NO_PLUGINS_DIR

CHROMIUM = os.environ.get("ASTHRON_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
IN_CI = os.environ.get("CI", "").lower() == "true"
PASSWORD = "correct horse battery staple"
ARTIFACTS = Path(__file__).parent / "artifacts"
# FAB's permission catalogue survives between journeys; every other table is emptied.
KEEP_TABLES = {"ab_permission", "ab_view_menu", "ab_permission_view", "ab_role", "ab_permission_view_role",
               "alembic_version"}
TIMEOUT_MS = 10_000


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    """Keep each phase's report on the item so fixtures can tell whether the test failed."""
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report


class LiveServer:
    """The app served by werkzeug on a free loopback port, in a background thread."""

    def __init__(self, app):
        from werkzeug.serving import make_server

        self.app = app
        self.server = make_server("127.0.0.1", 0, app, threaded=True)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, name="live-server", daemon=True)

    def start(self):
        self.thread.start()

    def stop(self):
        self.server.shutdown()
        self.thread.join(timeout=10)

    def seed(self, fn, *args, **kwargs):
        """Run `fn` inside an app context, commit, and return what it returns."""
        from asthron.extensions import db

        with self.app.app_context():
            result = fn(*args, **kwargs)
            db.session.commit()
            db.session.remove()
        return result

    def reset(self):
        """Delete every row but FAB's permission catalogue."""
        from flask_appbuilder import Model
        from sqlalchemy import text

        from asthron.extensions import db

        with self.app.app_context():
            db.session.remove()
            names = [t.name for t in Model.metadata.sorted_tables if t.name not in KEEP_TABLES]
            with db.engine.begin() as conn:
                for name in reversed(names):
                    conn.execute(text(f'DELETE FROM "{name}"'))


def _live_config(database_url):
    return {
        "TESTING": True,
        "SECRET_KEY": "browser-secret-key-that-is-long-enough-0123456789",
        "SQLALCHEMY_DATABASE_URI": database_url,
        "WTF_CSRF_ENABLED": True,
        "REDIS_URL": None,
        "RATELIMIT_STORAGE_URI": "memory://",
        # Journeys sign several users in from one address within a minute.
        "ASTHRON_LOGIN_RATE_LIMIT": "1000 per minute",
        # Plugins load once per process: the folder plugins stay out, as in the other tests.
        "ASTHRON_PLUGINS_DIR": NO_PLUGINS_DIR,
    }


@pytest.fixture(scope="session")
def live_server(tmp_path_factory):
    """Serve a fresh app on SQLite for the whole session."""
    from flask_appbuilder import Model

    import asthron.models  # noqa: F401  (register every table)
    from asthron.app import create_app
    from asthron.extensions import db

    path = tmp_path_factory.mktemp("browser-db") / "live.db"
    app = create_app(_live_config(f"sqlite:///{path}"))
    with app.app_context():
        Model.metadata.create_all(db.engine)
        app.appbuilder.sm.sync_roles()
    server = LiveServer(app)
    server.start()
    yield server
    server.stop()
    with app.app_context():
        db.engine.dispose()


@pytest.fixture
def live(live_server):
    """The live server, on a database emptied for this test."""
    live_server.reset()
    return live_server


def _require_chromium():
    if os.path.exists(CHROMIUM):
        return
    message = f"Chromium is not installed at {CHROMIUM}"
    if IN_CI:
        pytest.fail(message + " (CI=true requires it)")
    pytest.skip(message)


@pytest.fixture(scope="session")
def browser(tmp_path_factory):
    """A headless Debian Chromium driven by Playwright, shared by the session."""
    _require_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def new_page(browser, live, request):
    """Return a factory of pages, each in a fresh browser context; screenshot them all on failure."""
    contexts, pages = [], []

    def factory():
        context = browser.new_context(base_url=live.url)
        context.set_default_timeout(TIMEOUT_MS)
        contexts.append(context)
        page = context.new_page()
        pages.append(page)
        return page

    yield factory
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        _screenshot(request.node.name, pages)
    for context in contexts:
        context.close()


def _screenshot(test_name, pages):
    ARTIFACTS.mkdir(exist_ok=True)
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", test_name)
    for index, page in enumerate(pages):
        try:
            page.screenshot(path=str(ARTIFACTS / f"{stem}-{index}.png"), full_page=True)
        except Exception as exc:  # noqa: BLE001  (a crashed page must not hide the test's own failure)
            print(f"screenshot of page {index} failed: {exc}")


@pytest.fixture
def sign_in():
    """Return a helper that signs a page in through the real login form."""

    def sign_in(page, username, password=PASSWORD):
        page.goto("/login/")
        page.fill("#username", username)
        page.fill("#password", password)
        with page.expect_navigation():
            page.click("input[type=submit]")
        assert "/login" not in page.url, f"{username} could not sign in: {page.inner_text('body')[:300]}"
        return page

    return sign_in


def _make_agencies():
    from asthron.models.tenancy import Role
    from asthron.services import tenancy as svc

    ids = {}
    for key, name, workspace in (("a", "Agency A", "A Existing"), ("b", "Agency B", "B One")):
        agency = svc.create_agency(name)
        ids[key] = agency.id
        ids[f"{key}1"] = svc.create_workspace(agency=agency, name=workspace).id
        admin = svc.create_user(username=f"{key}_admin", email=f"{key}_admin@example.com", password=PASSWORD)
        svc.add_member(user=admin, role=Role.agency_admin, agency=agency)
        ids[f"{key}_admin"] = admin.id
    return ids


@pytest.fixture
def agencies(live):
    """Two agencies, each with one workspace and an admin (`a_admin`, `b_admin`), all with PASSWORD."""
    return live.seed(_make_agencies)


@pytest.fixture(scope="session", autouse=True)
def _clean_artifacts():
    """Start each session with no screenshots left from an earlier run."""
    shutil.rmtree(ARTIFACTS, ignore_errors=True)
    yield



class SecondOrigin:
    """A plain HTTP server on another loopback port: a client's website, a different origin from the app."""

    def __init__(self):
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        pages = self.pages = {}

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                body = pages.get(self.path.split("?")[0])
                self.send_response(200 if body is not None else 404)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.end_headers()
                self.wfile.write((body or "not found").encode())

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, name="second-origin", daemon=True)
        self.thread.start()

    def add_page(self, path, html):
        """Serve `html` at `path`; return the page's full URL."""
        self.pages[path] = html
        return self.url + path

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def second_origin():
    """A second website origin (another local HTTP server) for pages that embed the widget."""
    site = SecondOrigin()
    yield site
    site.stop()
