"""Shared fixtures: the app on SQLite and on PostgreSQL, clients, sign-in, tenants, Redis."""
import contextlib
import os
import socket
import tempfile

import pytest
from flask.testing import FlaskClient

os.environ.setdefault("ASTHRON_INSTANCE_DIR", tempfile.mkdtemp(prefix="asthron-test-instance-"))

from asthron.app import create_app  # noqa: E402

# Under pytest-xdist each worker (gw0, gw1, ...) gets its own PostgreSQL database and Redis database,
# so two workers never empty each other's tables: worker 0 uses the configured ones, worker N their
# database with a `_gwN` suffix (created on first use) and Redis database 15 - N (modulo 16).
WORKER = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0")[2:] or 0)
_BASE_PG_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
PG_URL = _BASE_PG_URL + (f"_gw{WORKER}" if WORKER else "")
_BASE_REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
REDIS_URL = (_BASE_REDIS_URL.rsplit("/", 1)[0] + f"/{(int(_BASE_REDIS_URL.rsplit('/', 1)[1]) - WORKER) % 16}"
             if WORKER else _BASE_REDIS_URL)
IN_CI = os.environ.get("CI", "").lower() == "true"
NO_PLUGINS_DIR = tempfile.mkdtemp(prefix="asthron-test-no-plugins-")
PASSWORD = "correct horse battery staple"
# Tables that hold FAB's permission catalogue: kept between tests, everything else is emptied.
KEEP_TABLES = {"ab_permission", "ab_view_menu", "ab_permission_view", "ab_role", "ab_permission_view_role",
               "alembic_version"}


def _answers(host, port):
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def require_service(name, host, port):
    """Skip (visibly, by name) when a service does not answer; under CI fail instead."""
    if _answers(host, port):
        return
    message = f"{name} is not answering on {host}:{port}"
    if IN_CI:
        pytest.fail(message + " (CI=true requires it)")
    pytest.skip(message)


def ensure_database(url):
    """Create the PostgreSQL database `url` names when it does not exist yet (an xdist worker's own)."""
    from sqlalchemy import create_engine, text

    name = url.rsplit("/", 1)[1]
    engine = create_engine(_BASE_PG_URL, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            if not conn.execute(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}).scalar():
                conn.execute(text(f'CREATE DATABASE "{name}"'))
    finally:
        engine.dispose()


def _base_config(database_url):
    return {
        "TESTING": True,
        "SECRET_KEY": "test-secret-key-that-is-long-enough-0123456789",
        "SQLALCHEMY_DATABASE_URI": database_url,
        "WTF_CSRF_ENABLED": True,
        "REDIS_URL": None,
        # Jobs run right after their commit, so a test sees their effect and no thread outlives it.
        "ASTHRON_JOBS_EMBEDDED": "inline",
        "RATELIMIT_STORAGE_URI": "memory://",
        # Many tests sign in several users a minute; the sign-in limit tests lower this themselves.
        "ASTHRON_LOGIN_RATE_LIMIT": "1000 per minute",
        "SERVER_NAME": "localhost",
        # Tests load the plugins they exercise themselves; the repository's plugins/ folder would
        # otherwise add its sub-processors and providers to every test.
        "ASTHRON_PLUGINS_DIR": NO_PLUGINS_DIR,
    }


def _reset_schema(app):
    from flask_appbuilder import Model
    from sqlalchemy import text

    import asthron.models  # noqa: F401
    from asthron.extensions import db

    with app.app_context():
        if db.engine.dialect.name == "postgresql":
            with db.engine.begin() as conn:
                conn.execute(text("DROP SCHEMA public CASCADE"))
                conn.execute(text("CREATE SCHEMA public"))
        else:
            Model.metadata.drop_all(db.engine)
        Model.metadata.create_all(db.engine)
        app.appbuilder.sm.sync_roles()


def empty_tables(app):
    """Delete every row but FAB's permission catalogue."""
    from flask_appbuilder import Model
    from sqlalchemy import text

    from asthron.extensions import db

    with app.app_context():
        db.session.remove()
        names = [t.name for t in Model.metadata.sorted_tables if t.name not in KEEP_TABLES]
        with db.engine.begin() as conn:
            if db.engine.dialect.name == "postgresql":
                # DELETE of a test's few rows takes a tenth of TRUNCATE's time. The replica role skips the
                # triggers (foreign keys, the audit log's refusal to delete) as TRUNCATE did; the sequences
                # the tables own start again at 1, as with RESTART IDENTITY.
                conn.execute(text("SET LOCAL session_replication_role = replica"))
                conn.execute(text("; ".join(f'DELETE FROM "{n}"' for n in names)))
                sequences = conn.execute(text(
                    "SELECT s.relname FROM pg_class s JOIN pg_depend d ON d.objid = s.oid AND d.deptype = 'a' "
                    "JOIN pg_class t ON t.oid = d.refobjid WHERE s.relkind = 'S' AND t.relname = ANY(:names)"),
                    {"names": names}).scalars().all()
                if sequences:
                    conn.execute(text("; ".join(f'ALTER SEQUENCE "{n}" RESTART' for n in sequences)))
            else:
                for name in reversed(names):
                    conn.execute(text(f'DELETE FROM "{name}"'))


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
def backend(request, tmp_path_factory):
    """One app per database backend, schema created once; tests get it emptied."""
    if request.param == "postgresql":
        require_service("PostgreSQL", "127.0.0.1", 5432)
        ensure_database(PG_URL)
        url = PG_URL
    else:
        url = "sqlite:///" + str(tmp_path_factory.mktemp("db") / "test.db")
    app = create_app(_base_config(url))
    app.test_client_class = IsolatedClient
    _reset_schema(app)
    yield app
    with app.app_context():
        from asthron.extensions import db

        db.session.remove()
        db.engine.dispose()


@pytest.fixture
def app(backend):
    """The app for one test, on an empty database (no context pushed: requests get their own)."""
    from asthron import login_limits

    empty_tables(backend)
    login_limits.reset(backend)
    yield backend
    with backend.app_context():
        from asthron.extensions import db

        db.session.remove()


class IsolatedClient(FlaskClient):
    """A test client whose every request runs in a fresh app context, as in production.

    Without this, a request made while the test holds an app context (`ctx`) would share `g`, and
    with it Flask-Login's user and Flask-WTF's CSRF token, with earlier requests.
    """

    def open(self, *args, **kwargs):
        with self.application.app_context():
            return super().open(*args, **kwargs)


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


def csrf_token(client, path="/login/"):
    """Fetch a page and return the CSRF token of its form."""
    import re

    html = client.get(path).get_data(as_text=True)
    match = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', html) or \
        re.search(r'id="csrf_token" name="csrf_token" type="hidden" value="([^"]+)"', html) or \
        re.search(r'name="csrf_token"[^>]*value="([^"]+)"', html)
    assert match, f"no CSRF token on {path}"
    return match.group(1)


class Auth:
    """Sign a test client in and out through the real login form."""

    def __init__(self, client):
        self.client = client

    def login(self, username, password=PASSWORD):
        token = csrf_token(self.client, "/login/")
        return self.client.post("/login/", data={"username": username, "password": password,
                                                 "csrf_token": token})

    def logout(self):
        token = csrf_token(self.client, "/logout/")
        return self.client.post("/logout/", data={"csrf_token": token})


@pytest.fixture
def auth(client):
    return Auth(client)


@pytest.fixture
def ctx(app):
    """An app context for direct database work in a test."""
    with app.app_context():
        yield app


@pytest.fixture
def tenants(app):
    """Two agencies: A with workspaces A1 and A2, B with B1; a user per role; all with PASSWORD."""
    with app.app_context():
        return _make_tenants()


_hashes = {}


@contextlib.contextmanager
def _one_hash_per_password():
    """Hash each test password once per process: the fixture's six users share PASSWORD's scrypt hash.

    A scrypt hash costs about 0.2 s by design; making six per test cost a second of every test's set-up.
    The hashes are real (sign-ins check them with scrypt); only their salt is shared between test users.
    """
    from flask_appbuilder.security.sqla import manager

    real = manager.generate_password_hash

    def remembered(password, *args, **kwargs):
        key = (password, args, tuple(sorted(kwargs.items())))
        if key not in _hashes:
            _hashes[key] = real(password, *args, **kwargs)
        return _hashes[key]

    manager.generate_password_hash = remembered
    try:
        yield
    finally:
        manager.generate_password_hash = real


def _make_tenants():
    with _one_hash_per_password():
        return _make_tenant_rows()


def _make_tenant_rows():
    from asthron.extensions import db
    from asthron.models.tenancy import Role
    from asthron.services import tenancy as svc

    a = svc.create_agency("Agency A")
    b = svc.create_agency("Agency B")
    a1 = svc.create_workspace(agency=a, name="A One", origins=["https://a1.example"])
    a2 = svc.create_workspace(agency=a, name="A Two", origins=["https://a2.example"])
    b1 = svc.create_workspace(agency=b, name="B One", origins=["https://b1.example"])

    def user(name, role, *, agency=None, workspace=None):
        u = svc.create_user(username=name, email=f"{name}@example.com", password=PASSWORD,
                            roles=[Role.operator] if role == Role.operator else [])
        if role != Role.operator:
            svc.add_member(user=u, role=role, agency=agency, workspace=workspace)
        return u

    people = {
        "operator": user("operator", Role.operator),
        "a_admin": user("a_admin", Role.agency_admin, agency=a),
        "a1_admin": user("a1_admin", Role.workspace_admin, workspace=a1),
        "a1_staff": user("a1_staff", Role.staff, workspace=a1),
        "a1_client": user("a1_client", Role.client, workspace=a1),
        "b_admin": user("b_admin", Role.agency_admin, agency=b),
        "b1_staff": user("b1_staff", Role.staff, workspace=b1),
    }
    db.session.commit()
    ids = {"a": a.id, "b": b.id, "a1": a1.id, "a2": a2.id, "b1": b1.id}
    ids.update({k: v.id for k, v in people.items()})
    db.session.remove()
    return ids


@pytest.fixture
def redis_url():
    """A real Redis (database 15, flushed), or a visible skip when none answers."""
    require_service("Redis", "127.0.0.1", 6379)
    import redis

    conn = redis.Redis.from_url(REDIS_URL)
    conn.flushdb()
    yield REDIS_URL
    conn.flushdb()


@pytest.fixture
def make_app(tmp_path):
    """Build separate apps, each on its own SQLite database, with config overrides on the test config."""
    made = []

    def make(**overrides):
        url = "sqlite:///" + str(tmp_path / f"app{len(made)}.db")
        app = create_app({**_base_config(url), **overrides})
        app.test_client_class = IsolatedClient
        _reset_schema(app)
        made.append(app)
        return app

    yield make
    for app in made:
        with app.app_context():
            from asthron.extensions import db

            db.session.remove()
            db.engine.dispose()


# Plugin fixtures (a tiny plugin distribution really built and installed; registrations undone after).
from tests.plugin_fixtures import recorder, register_plugin, tiny_distribution, tiny_plugin  # noqa: E402,F401

# The OpenAI-compatible test server and the OpenAI plugin loaded from plugins/ for one test.
from tests.fake_openai import fake_openai, openai_plugin  # noqa: E402,F401

# A real SMTP server (aiosmtpd; plain, STARTTLS, implicit TLS, AUTH), test certificates, the SMTP plugin.
from tests.smtp_server import certificates, smtp_plugin, smtp_server  # noqa: E402,F401

# Calendar peers: a real Radicale CalDAV server and a local server speaking Google's OAuth and Calendar
# formats, with the CalDAV and Google plugins loaded from plugins/ for one test.
from tests.caldav_server import caldav_plugin, radicale  # noqa: E402,F401
from tests.fake_google import fake_google, google_plugin  # noqa: E402,F401
