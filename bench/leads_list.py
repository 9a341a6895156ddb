"""Benchmark: the leads list filtered by stage over 1,000,000 leads in 100 workspaces on PostgreSQL.

Run: `.venv/bin/python bench/leads_list.py` (loads the data once into the `asthron_bench_leads`
database with COPY, then reuses it; `--reload` rebuilds it). Measured as a staff member of one
workspace and as the admin of an agency of five workspaces, signed in through the login form.
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

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run as a script: reach `bench`, `asthron` and `config`
os.environ.setdefault("ASTHRON_INSTANCE_DIR", tempfile.mkdtemp(prefix="asthron-bench-instance-"))

from bench.audit_list import ensure_database, fresh_schema, make_app, refresh_schema, vacuum  # noqa: E402
from bench.harness import Scenario, benchmark  # noqa: E402

DEFAULT_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/asthron_bench_leads"
LEADS = 1_000_000
AGENCIES = 20
WORKSPACES_PER_AGENCY = 5
STAGES = (("New", False), ("Contacted", False), ("Qualified", True), ("Won", False), ("Lost", False))
STAGE_WEIGHTS = (50, 20, 15, 8, 7)  # most leads are new; few are won or lost
PASSWORD = "bench-only loopback password"
STAFF, ADMIN = "bench.staff", "bench.leads.admin"
GOAL_P95_MS = 150
BUDGETS = ("Under 1,000", "1,000 to 5,000", "Over 5,000")
SOURCES = ("widget", "widget", "ai", "ai", "imported", "api")  # member names, as the enum column stores them
COPY_COLUMNS = ("workspace_id", "source", "name", "email", "phone", "field_values", "tags", "score", "stage_id",
                "created_at", "updated_at")


def loaded_leads(app):
    """Return how many leads the database holds, or None when there is no schema yet."""
    from sqlalchemy import inspect, text

    from asthron.extensions import db

    with app.app_context():
        if not inspect(db.engine).has_table("lead"):
            return None
        return db.session.execute(text("SELECT count(*) FROM lead")).scalar()


def rebuild(app, count):
    """Drop and recreate the schema, seed tenants, stages and users, and COPY `count` leads."""
    from asthron.extensions import db

    with app.app_context():
        fresh_schema(app)
        stages = seed_tenants()
        started = time.monotonic()
        load_leads(db.engine, stages, count)
        print(f"loaded {count:,} leads in {time.monotonic() - started:.0f} s")
    vacuum(app, "lead")


def seed_tenants():
    """Create agencies, workspaces with five stages each, a staff member and an agency admin; return stage ids."""
    from sqlalchemy import select

    from asthron.extensions import db
    from asthron.models.leads import PipelineStage
    from asthron.models.tenancy import Agency, Role, Workspace
    from asthron.services import tenancy as svc

    stages = {}
    for a in range(AGENCIES):
        agency = svc.create_agency(f"Leads Agency {a:02d}")
        for w in range(WORKSPACES_PER_AGENCY):
            workspace = svc.create_workspace(agency=agency, name=f"Leads {a:02d}-{w}")
            rows = [PipelineStage(workspace_id=workspace.id, name=name, position=p, qualified=q)
                    for p, (name, q) in enumerate(STAGES)]
            db.session.add_all(rows)
            db.session.flush()
            stages[workspace.id] = [s.id for s in rows]
    first_agency = db.session.scalars(select(Agency).order_by(Agency.id)).first()
    first_workspace = db.session.scalars(select(Workspace).order_by(Workspace.id)).first()
    staff = svc.create_user(username=STAFF, email="staff@bench.invalid", password=PASSWORD)
    svc.add_member(user=staff, role=Role.staff, workspace=first_workspace)
    admin = svc.create_user(username=ADMIN, email="leads-admin@bench.invalid", password=PASSWORD)
    svc.add_member(user=admin, role=Role.agency_admin, agency=first_agency)
    db.session.commit()
    return stages


def generate(stages, count, *, rng, start):
    """Yield COPY rows: leads spread evenly over the workspaces and over two years, stages weighted."""
    workspaces = sorted(stages)
    step = timedelta(days=730) / count
    for i in range(count):
        ws = workspaces[i % len(workspaces)]
        created = start + step * i
        values = {"budget": rng.choice(BUDGETS), "team_size": rng.choice((1, 2, 4, 8, 12, 25, 60))}
        phone = f"+4420794{i:05d}" if i < 100_000 and rng.random() < 0.3 else None
        yield (ws, rng.choice(SOURCES), f"Lead {i}", f"lead{i}@bench.invalid", phone, json.dumps(values), "[]",
               rng.randrange(0, 101), rng.choices(stages[ws], STAGE_WEIGHTS)[0], created, created)


def load_leads(engine, stages, count):
    """COPY `count` leads into the lead table."""
    rows = generate(stages, count, rng=random.Random(20261127),
                    start=datetime.now(UTC).replace(microsecond=0) - timedelta(days=731))
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        with cursor.copy(f"COPY lead ({', '.join(COPY_COLUMNS)}) FROM STDIN") as copy:
            for n, row in enumerate(rows, 1):
                copy.write_row(row)
                if n % 200_000 == 0:
                    print(f"  {n:,} leads written")
        raw.commit()
    finally:
        raw.close()


def scenarios(app):
    """Return the list requests to measure, for the staff member and for the agency admin."""
    from sqlalchemy import select

    from asthron.extensions import db
    from asthron.models.leads import PipelineStage
    from asthron.models.tenancy import Workspace

    with app.app_context():
        first = db.session.scalars(select(Workspace.id).order_by(Workspace.id)).first()
        stage = {name: db.session.scalar(select(PipelineStage.id).where(PipelineStage.workspace_id == first,
                                                                       PipelineStage.name == name))
                 for name, _q in STAGES}
    base = "/leadview/list/?"
    staff_pages = {
        "stage Qualified": base + f"stage={stage['Qualified']}",
        "stage Won, page 10": base + f"stage={stage['Won']}&page=9",
        "stage New, score >= 80": base + f"stage={stage['New']}&score_min=80",
        "stage Contacted, budget Over 5,000": base + f"stage={stage['Contacted']}&field=budget&value=Over+5%2C000",
        "board (5 columns)": f"/leads/board/?workspace={first}",
    }
    admin_pages = {
        "stage Qualified (of one workspace)": base + f"stage={stage['Qualified']}",
        "all five workspaces, first page": base,
        "workspace + stage New": base + f"workspace={first}&stage={stage['New']}",
    }
    references = [Scenario(label="reference: /health (app + SELECT 1)", paths=["/health"]),
                  Scenario(label="reference: staff, workspace list (FAB)", paths=["/workspaceview/list/"],
                           login=(STAFF, PASSWORD))]
    staff = [Scenario(label=f"staff: {name}", paths=[path], login=(STAFF, PASSWORD))
             for name, path in staff_pages.items()]
    admin = [Scenario(label=f"agency admin: {name}", paths=[path], login=(ADMIN, PASSWORD))
             for name, path in admin_pages.items()]
    return references + staff + admin


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--leads", type=int, default=LEADS)
    parser.add_argument("--reload", action="store_true", help="rebuild the benchmark database")
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per scenario")
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2)
    options = parser.parse_args(argv)
    url = os.environ.get("ASTHRON_BENCH_DATABASE_URL", DEFAULT_URL)
    ensure_database(url)
    app = make_app(url)
    have = loaded_leads(app)
    if options.reload or have is None or have < options.leads:
        rebuild(app, options.leads)
    else:
        from asthron.models.leads import Lead

        refresh_schema(app, Lead)
        vacuum(app, "lead")
    print(f"lead: {loaded_leads(app):,} leads in {AGENCIES * WORKSPACES_PER_AGENCY} workspaces (loaded with COPY)")
    env = {"DATABASE_URL": url, "SECRET_KEY": secrets.token_urlsafe(48),
           "ASTHRON_INSTANCE_DIR": os.environ["ASTHRON_INSTANCE_DIR"]}
    benchmark("wsgi:app", scenarios(app), env=env, workers=options.workers, concurrency=options.concurrency,
              duration=options.duration, goal_p95_ms=GOAL_P95_MS)


if __name__ == "__main__":
    main()
