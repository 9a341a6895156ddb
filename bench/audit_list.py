"""Benchmark: the audit log list page over 1,000,000 entries on PostgreSQL, as operator and agency admin.

Run: `.venv/bin/python bench/audit_list.py` (loads the data once into the `asthron_bench` database,
then reuses it; `--reload` rebuilds it). The loaded entries form a valid hash chain: each is hashed
with `asthron.audit.entry_hash` and continues from the chain head, so `--verify` can prove it.
"""
import argparse
import json
import os
import random
import secrets
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import quote

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run as a script: reach `bench`, `asthron` and `config`
os.environ.setdefault("ASTHRON_INSTANCE_DIR", tempfile.mkdtemp(prefix="asthron-bench-instance-"))

from bench.harness import Scenario, benchmark

DEFAULT_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/asthron_bench"
PROTECTED_DATABASES = {"test", "postgres", "template0", "template1"}
ENTRIES = 1_000_000
AGENCIES = 20
WORKSPACES_PER_AGENCY = 5
STAFF_PER_AGENCY = 8
SYNTHETIC_ACTOR_IDS = 100_000  # ids of actors that exist only in the log, far above real user ids
PASSWORD = "bench-only loopback password"
OPERATOR, ADMIN = "bench.operator", "bench.admin"
WORKSPACE_ACTIONS = (["message.create"] * 30 + ["conversation.create"] * 12 + ["lead.create"] * 8
                     + ["lead.update"] * 6 + ["booking.create"] * 5 + ["workspace.update"] * 2
                     + ["handoff.create"] * 2 + ["tenant.denied"])
FILTER_ACTION = "tenant.denied"
FILTER_ACTOR = "staff-00-3"  # one of the agency admin's staff
GOAL_P95_MS = 150
COPY_COLUMNS = ("seq", "created_at", "actor_id", "actor", "agency_id", "workspace_id", "ip", "action",
                "target_type", "target_id", "details", "prev_hash", "entry_hash")


def check_target(url, protected=PROTECTED_DATABASES):
    """Refuse any database this benchmark must never rebuild (`protected` ones, or any off loopback)."""
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    if parsed.host not in ("127.0.0.1", "localhost") or parsed.database in protected:
        raise SystemExit(f"refusing to use {parsed.database!r} on {parsed.host}: point "
                         "ASTHRON_BENCH_DATABASE_URL at a dedicated loopback database")
    return parsed


def ensure_database(url, protected=PROTECTED_DATABASES):
    """Create the benchmark database when it does not exist yet."""
    from sqlalchemy import create_engine, text

    parsed = check_target(url, protected)
    admin = create_engine(parsed.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        if not conn.execute(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": parsed.database}).scalar():
            conn.execute(text(f'CREATE DATABASE "{parsed.database}"'))
            print(f"created database {parsed.database}")
    admin.dispose()


def make_app(url):
    """Return an Asthron app bound to the benchmark database."""
    from asthron.app import create_app

    return create_app({"SQLALCHEMY_DATABASE_URI": url, "SECRET_KEY": secrets.token_urlsafe(48),
                       "REDIS_URL": None, "RATELIMIT_STORAGE_URI": "memory://"})


def loaded_entries(app):
    """Return how many entries the chain head records, or None when there is no schema yet."""
    from sqlalchemy import inspect, text

    from asthron.extensions import db

    with app.app_context():
        if not inspect(db.engine).has_table("audit_head"):
            return None
        return db.session.execute(text("SELECT seq FROM audit_head WHERE id = 1")).scalar()


def fresh_schema(app):
    """Drop and recreate the benchmark database's schema with every table and the roles (in an app context)."""
    from flask_appbuilder import Model
    from sqlalchemy import text

    import asthron.models  # noqa: F401  (register every table)
    from asthron.extensions import db

    check_target(str(db.engine.url))
    with db.engine.begin() as conn:
        conn.execute(text("DROP SCHEMA public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    Model.metadata.create_all(db.engine)
    app.appbuilder.sm.sync_roles()


def rebuild(app, entries):
    """Drop and recreate the schema, seed tenants and load `entries` audit entries."""
    from asthron.extensions import db

    with app.app_context():
        fresh_schema(app)
        tenants = seed_tenants()
        started = time.monotonic()
        load_entries(db.engine, tenants, entries)
        print(f"loaded {entries:,} entries in {time.monotonic() - started:.0f} s")
    vacuum(app)


def seed_tenants():
    """Create the agencies, workspaces, the operator and the agency admin of the first agency."""
    from asthron.extensions import db
    from asthron.models.tenancy import Agency, Role
    from asthron.services import tenancy as svc

    agencies = []
    for a in range(AGENCIES):
        agency = svc.create_agency(f"Bench Agency {a:02d}")
        spaces = [svc.create_workspace(agency=agency, name=f"Bench {a:02d}-{w}").id
                  for w in range(WORKSPACES_PER_AGENCY)]
        agencies.append((agency.id, spaces))
    svc.create_user(username=OPERATOR, email="operator@bench.invalid", password=PASSWORD, roles=[Role.operator])
    admin = svc.create_user(username=ADMIN, email="admin@bench.invalid", password=PASSWORD)
    svc.add_member(user=admin, role=Role.agency_admin, agency=db.session.get(Agency, agencies[0][0]))
    db.session.commit()
    return {"agencies": agencies, "admin_id": admin.id}


def _tenant_and_actor(rng, tenants):
    """Pick who acted and where: 12% sign-in traffic, 3% agency-level, the rest in a workspace."""
    a = rng.randrange(AGENCIES)
    agency_id, spaces = tenants["agencies"][a]
    staff = rng.randrange(STAFF_PER_AGENCY)
    actor, actor_id = f"staff-{a:02d}-{staff}", SYNTHETIC_ACTOR_IDS + a * 100 + staff
    roll = rng.random()
    if roll < 0.12:
        action = ("login.success", "login.failure", "logout")[int(roll / 0.04)]
        if action == "login.failure":
            return action, None, None, "anonymous", None, {"username": actor}
        return action, None, None, actor, actor_id, {}
    if roll < 0.15:
        if a == 0 and rng.random() < 0.5:
            actor, actor_id = ADMIN, tenants["admin_id"]
        return "membership.create", agency_id, None, actor, actor_id, {"role": {"new": "Staff"}}
    return rng.choice(WORKSPACE_ACTIONS), agency_id, rng.choice(spaces), actor, actor_id, {"n": rng.randrange(1000)}


def generate(tenants, count, *, first_seq, prev_hash, start, rng):
    """Yield COPY rows continuing the chain from (`first_seq` - 1, `prev_hash`)."""
    from asthron.audit import entry_hash

    step = timedelta(days=365) / count
    for i in range(count):
        action, agency_id, workspace_id, actor, actor_id, details = _tenant_and_actor(rng, tenants)
        fields = {"seq": first_seq + i, "created_at": start + step * i, "actor_id": actor_id, "actor": actor,
                  "agency_id": agency_id, "workspace_id": workspace_id,
                  "ip": f"10.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}",
                  "action": action, "target_type": action.split(".")[0].title(),
                  "target_id": str(rng.randrange(1, 50_000)), "details": details, "prev_hash": prev_hash}
        fields["entry_hash"] = prev_hash = entry_hash(fields)
        fields["details"] = json.dumps(details)
        yield tuple(fields[c] for c in COPY_COLUMNS)


def load_entries(engine, tenants, count):
    """COPY `count` entries after the current chain head and move the head to the last one."""
    from sqlalchemy import text

    with engine.begin() as conn:
        head_seq, head_hash = conn.execute(text("SELECT seq, last_hash FROM audit_head WHERE id = 1")).one()
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(days=366)
    rows = generate(tenants, count, first_seq=head_seq + 1, prev_hash=head_hash, start=start,
                    rng=random.Random(20261127))
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        last = None
        with cursor.copy(f"COPY audit_entry ({', '.join(COPY_COLUMNS)}) FROM STDIN") as copy:
            for n, row in enumerate(rows, 1):
                copy.write_row(row)
                last = row
                if n % 200_000 == 0:
                    print(f"  {n:,} entries written")
        cursor.execute("UPDATE audit_head SET seq = %s, last_hash = %s WHERE id = 1", (last[0], last[-1]))
        raw.commit()
    finally:
        raw.close()


def vacuum(app, table="audit_entry"):
    """Refresh planner statistics and the visibility map, as autovacuum would after a bulk load."""
    from sqlalchemy import text

    from asthron.extensions import db

    with app.app_context(), db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text(f'VACUUM ANALYZE "{table}"'))


def refresh_schema(app, model=None):
    """Add tables and permissions that appeared since the load; return whether `model`'s indexes changed."""
    from flask_appbuilder import Model

    import asthron.models  # noqa: F401  (register every table)
    from asthron.extensions import db

    with app.app_context():
        Model.metadata.create_all(db.engine)
        app.appbuilder.sm.sync_roles()
    return sync_indexes(app, model)


def _shape(index):
    """Return (key columns, included columns) of a declared index."""
    return [c.name for c in index.columns], list(index.dialect_options["postgresql"]["include"] or [])


def sync_indexes(app, model=None):
    """Make a model's indexes (the audit log's by default) match the model, as a load may predate a change.

    Return whether any changed.
    """
    from sqlalchemy import inspect, text

    from asthron.extensions import db
    from asthron.models.audit import AuditEntry

    table = (model or AuditEntry).__table__
    with app.app_context(), db.engine.begin() as conn:
        declared = {index.name: index for index in table.indexes}
        present = {ix["name"]: (ix["column_names"], ix["dialect_options"].get("postgresql_include") or [])
                   for ix in inspect(conn).get_indexes(table.name) if not ix.get("duplicates_constraint")}
        stale = {name for name, shape in present.items() if name not in declared or shape != _shape(declared[name])}
        for name in sorted(stale):
            conn.execute(text(f'DROP INDEX "{name}"'))
        for name in sorted(set(declared) - (set(present) - stale)):
            declared[name].create(conn)
            print(f"created index {name}")
        return bool(stale or set(declared) - set(present))


def verify_chain(app):
    """Walk the whole chain with the production verifier and print the outcome."""
    from asthron.audit import verify
    from asthron.extensions import db

    with app.app_context():
        started = time.monotonic()
        print(f"audit chain verified: {verify(db.session):,} entries in {time.monotonic() - started:.0f} s")


def filter_arg(view, column, filter_name, value):
    """Return the list URL argument FAB reads as `column <filter_name> value`, e.g. `_flt_3_action=x`."""
    filters = view._filters.get_search_filters()[column]
    index = next(i for i, f in enumerate(filters) if type(f).__name__ == filter_name)
    return f"_flt_{index}_{column}={quote(str(value))}"


def scenarios(app):
    """Return the list requests to measure, for the operator and for the agency admin."""
    from asthron.views.audit import AuditLogView

    view = next(v for v in app.appbuilder.baseviews if isinstance(v, AuditLogView))
    base = "/auditlogview/list/?"
    since = (datetime.now(UTC) - timedelta(days=127)).strftime("%Y-%m-%d %H:%M:%S")
    until = (datetime.now(UTC) - timedelta(days=120)).strftime("%Y-%m-%d %H:%M:%S")
    pages = {
        "first page": base,
        f"action = {FILTER_ACTION}": base + filter_arg(view, "action", "FilterEqual", FILTER_ACTION),
        f"actor = {FILTER_ACTOR}": base + filter_arg(view, "actor", "FilterEqual", FILTER_ACTOR),
        "one week, four months ago": base + filter_arg(view, "created_at", "FilterGreater", since) + "&"
        + filter_arg(view, "created_at", "FilterSmaller", until),
        "page 20": base + "page_AuditLogView=19",
    }
    references = [Scenario(label="reference: /health (app + SELECT 1)", paths=["/health"]),
                  Scenario(label="reference: operator, workspace list (100)", paths=["/workspaceview/list/"],
                           login=(OPERATOR, PASSWORD))]
    return references + [Scenario(label=f"{who}: {name}", paths=[path], login=(user, PASSWORD))
                         for who, user in (("operator", OPERATOR), ("agency admin", ADMIN))
                         for name, path in pages.items()]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=ENTRIES)
    parser.add_argument("--reload", action="store_true", help="rebuild the benchmark database")
    parser.add_argument("--verify", action="store_true", help="verify the whole hash chain first")
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per scenario")
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2)
    options = parser.parse_args(argv)
    url = os.environ.get("ASTHRON_BENCH_DATABASE_URL", DEFAULT_URL)
    ensure_database(url)
    app = make_app(url)
    have = loaded_entries(app)
    if options.reload or have is None or have < options.entries:
        rebuild(app, options.entries)
    elif refresh_schema(app):
        vacuum(app)
    if options.verify:
        verify_chain(app)
    print(f"audit_entry: {loaded_entries(app):,} entries (valid hash chain, loaded with COPY)")
    env = {"DATABASE_URL": url, "SECRET_KEY": secrets.token_urlsafe(48),
           "ASTHRON_INSTANCE_DIR": os.environ["ASTHRON_INSTANCE_DIR"]}
    benchmark("wsgi:app", scenarios(app), env=env, workers=options.workers, concurrency=options.concurrency,
              duration=options.duration, goal_p95_ms=GOAL_P95_MS)


if __name__ == "__main__":
    main()
