"""Benchmark: free slots for 60 days, over HTTP and in-process, beside the bare Flask app.

Run: `.venv/bin/python bench/booking_slots.py` (PostgreSQL; `--sqlite` for a temporary SQLite file).
Two services on one workspace: (a) one resource with 2,000 confirmed bookings in the next 60 days,
goal p95 under 20 ms; (b) a service delivered by 50 staff (40 bookings each), goal p95 under 200 ms.
Each is measured as `GET /widget/api/v1/services/<id>/slots?days=60` through gunicorn, beside the
bare app's `/bare`, twice: computed on every request (no slot cache: no Redis), and with the slot
cache on Redis (ASTHRON_BENCH_REDIS_URL, database 8 by default; its slot keys are deleted first),
where the first request of each window computes and the rest are served until something changes.
The listing's computation is also timed alone in this process (`availability.listing`, no cache).
"""
import argparse
import gc
import os
import random
import secrets
import sys
import tempfile
import time
from datetime import UTC, datetime, time as clock, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run as a script: reach `bench`, `asthron` and `config`
os.environ.setdefault("ASTHRON_INSTANCE_DIR", tempfile.mkdtemp(prefix="asthron-bench-instance-"))

from bench import audit_list  # noqa: E402
from bench.harness import BARE_PATH, BARE_TARGET, HEADER, Result, drive, format_row, serve  # noqa: E402

DEFAULT_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/asthron_bench_booking"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/8"
PROTECTED_DATABASES = {"test", "postgres", "template0", "template1", "asthron_bench", "asthron_bench_widget"}
ORIGIN = "https://bench-booking.example"
DAYS = 60
BUSY_BOOKINGS = 2000
STAFF, BOOKINGS_PER_STAFF = 50, 40
GOALS_MS = {"one resource, 2,000 bookings": 20, "50 staff": 200}


def make_app(url):
    """Return an Asthron app bound to the benchmark database, its schema rebuilt."""
    from flask_appbuilder import Model

    import asthron.models  # noqa: F401
    from asthron.extensions import db

    app = audit_list.make_app(url)
    with app.app_context():
        if db.engine.dialect.name == "postgresql":
            audit_list.fresh_schema(app)
        else:
            Model.metadata.drop_all(db.engine)
            Model.metadata.create_all(db.engine)
    return app


def _resource(workspace_id, name, tz):
    from asthron.extensions import db
    from asthron.models.booking import Resource, WorkingHours

    resource = Resource(workspace_id=workspace_id, name=name, time_zone=tz)
    db.session.add(resource)
    db.session.flush()
    db.session.add_all(WorkingHours(workspace_id=workspace_id, resource_id=resource.id, weekday=d,
                                    start_time=clock(8), end_time=clock(20)) for d in range(7))
    return resource


def _bookings(service, resource, count, rng, first_day):
    """Place `count` non-overlapping 15-minute bookings at random quarter hours of 08-20 UTC over DAYS days."""
    per_day = -(-count // DAYS)
    rows = []
    for day in range(DAYS):
        base = datetime.combine(first_day + timedelta(days=day), clock(8), tzinfo=UTC)
        for quarter in sorted(rng.sample(range(48), min(per_day, count - len(rows)))):
            start = base + timedelta(minutes=15 * quarter)
            end = start + timedelta(minutes=15)
            rows.append(dict(workspace_id=service.workspace_id, service_id=service.id, resource_id=resource.id,
                             start_at=start, end_at=end, blocked_start=start, blocked_end=end, name="Bench visitor",
                             email="bench@example.com", reference=f"bk_bench_{resource.id}_{len(rows)}",
                             status="confirmed", visitor_time_zone="UTC", source="admin", sync_status="none",
                             reminders_sent=[]))
        if len(rows) >= count:
            break
    return rows


def seed(app):
    """Create the workspace, both services, their staff and bookings; return (public key, {label: service id})."""
    from sqlalchemy import insert

    from asthron.extensions import db
    from asthron.models.booking import Booking, Service
    from asthron.services import tenancy

    rng, first_day = random.Random(7), datetime.now(UTC).date() + timedelta(days=1)
    with app.app_context():
        workspace = tenancy.create_workspace(agency=tenancy.create_agency("Bench"), name="Bench", origins=[ORIGIN])
        db.session.flush()
        busy = _resource(workspace.id, "Busy person", "UTC")
        one = Service(workspace_id=workspace.id, name="Quarter hour", duration_minutes=15, slot_step_minutes=15,
                      min_notice_minutes=0, max_days_ahead=90)
        team = [_resource(workspace.id, f"Staff {n}", ("Europe/Berlin", "America/New_York")[n % 2])
                for n in range(STAFF)]
        many = Service(workspace_id=workspace.id, name="Team visit", duration_minutes=30, slot_step_minutes=15,
                       buffer_after_minutes=15, min_notice_minutes=0, max_days_ahead=90)
        db.session.add_all([one, many])
        one.resources, many.resources = [busy], team
        db.session.flush()
        rows = _bookings(one, busy, BUSY_BOOKINGS, rng, first_day)
        for person in team:
            rows += _bookings(many, person, BOOKINGS_PER_STAFF, rng, first_day)
        db.session.execute(insert(Booking), rows)
        db.session.commit()
        ids = {"one resource, 2,000 bookings": one.id, "50 staff": many.id}
        return workspace.public_key, ids, first_day


def in_process(app, ids, first_day, rounds):
    """Time the listing's computation (`availability.listing`, loading included, no cache); {label: Result}."""
    from asthron.extensions import db
    from asthron.models.booking import Service
    from asthron.services import availability

    results = {}
    with app.app_context():
        start = datetime.combine(first_day, clock(0), tzinfo=UTC)
        for label, service_id in ids.items():
            latencies, begun = [], time.monotonic()
            for _ in range(rounds):
                db.session.expire_all()
                t0 = time.perf_counter()
                service = db.session.get(Service, service_id)
                found = availability.listing(service, start=start, end=start + timedelta(days=DAYS)).starts()
                latencies.append(time.perf_counter() - t0)
            results[label] = Result(f"in-process: {label} ({len(found)} slots)", sorted(latencies), 0,
                                    time.monotonic() - begun)
    return results


def clear_slot_cache(redis_url):
    """Delete the slot cache's keys from the benchmark's Redis database, so the run starts cold."""
    import redis

    conn = redis.Redis.from_url(redis_url)
    for key in conn.scan_iter("asthron:slots:*"):
        conn.delete(key)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sqlite", action="store_true", help="use a temporary SQLite file instead of PostgreSQL")
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per scenario")
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=50, help="in-process calls per service")
    options = parser.parse_args(argv)
    if options.sqlite:
        url = "sqlite:///" + os.path.join(tempfile.mkdtemp(prefix="asthron-bench-booking-"), "bench.db")
    else:
        url = os.environ.get("ASTHRON_BENCH_DATABASE_URL", DEFAULT_URL)
        audit_list.ensure_database(url, PROTECTED_DATABASES)
    redis_url = os.environ.get("ASTHRON_BENCH_REDIS_URL", DEFAULT_REDIS_URL)
    app = make_app(url)
    key, ids, first_day = seed(app)
    if not options.sqlite:
        with app.app_context():
            from sqlalchemy import text

            from asthron.extensions import db

            with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.execute(text("ANALYZE"))  # what autovacuum does to a table that just grew
    gc.freeze()  # as wsgi.py does in each web worker once the app is built
    local = in_process(app, ids, first_day, options.rounds)
    clear_slot_cache(redis_url)
    env = {"DATABASE_URL": url, "SECRET_KEY": secrets.token_urlsafe(48),
           "ASTHRON_INSTANCE_DIR": os.environ["ASTHRON_INSTANCE_DIR"],
           "ASTHRON_WIDGET_LIMIT_READS_PER_IP": "10000000 per minute"}
    load_before = os.getloadavg()[0]
    http = {}
    for mode, extra in (("computed", {"REDIS_URL": ""}), ("cached", {"REDIS_URL": redis_url})):
        with serve("wsgi:app", workers=options.workers, env={**env, **extra}) as base:
            for label, service_id in ids.items():
                path = (f"/widget/api/v1/services/{service_id}/slots?key={key}&start={first_day.isoformat()}"
                        f"&days={DAYS}&tz=Europe/Berlin")
                http[mode, label] = drive(base, [path], label=f"HTTP {mode}: {label}", headers={"Origin": ORIGIN},
                                          concurrency=options.concurrency, duration=options.duration)
    with serve(BARE_TARGET, workers=options.workers) as base:
        bare = drive(base, [BARE_PATH], label="bare Flask " + BARE_PATH, concurrency=options.concurrency,
                     duration=options.duration)
    print(f"slots for {DAYS} days on {'SQLite' if options.sqlite else 'PostgreSQL'}; gunicorn: {options.workers} "
          f"sync workers; clients: {options.concurrency} threads, {options.duration:g} s per scenario; "
          f"{os.cpu_count()} CPUs, 1-minute load average {load_before:.1f} before, {os.getloadavg()[0]:.1f} after")
    print(HEADER)
    print(format_row(bare))
    for label, goal in GOALS_MS.items():
        for result in (http["computed", label], http["cached", label], local[label]):
            met = result.percentile(95) < goal and not result.errors
            print(format_row(result, bare) + ("  ok" if met else f"  OVER {goal} ms goal") + f" (goal p95 < {goal} ms)")
            if result.errors:
                print(f"    non-200 answers: {result.statuses}")


if __name__ == "__main__":
    main()
