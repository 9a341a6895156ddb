"""Benchmark: visitor messages accepted per second, and the time from a message to its first streamed token.

Run: `.venv/bin/python bench/widget_messages.py [--sqlite] [--part accept|token|both]`.

(a) accept: 50 visitors, each with its own conversation created beforehand, POST messages to the real
    app (gunicorn, sync workers) with an allowed Origin and REDIS_URL set, so each reply is only
    enqueued (no worker runs); rate limits are raised. Beside it, a bare Flask endpoint that inserts one
    row into the same database, served the same way: the figure is the ratio (goal >= 0.5).
(b) token: with Redis and an `asthron worker ai` running, and the default offline provider (instant,
    no network), a visitor opens the SSE stream, POSTs a message and waits for the first `token`
    event; the figure is the p50 of that time (goal < 100 ms), beside the bare endpoint's round trip.

Data: PostgreSQL database `asthron_bench_widget` on 127.0.0.1 (rebuilt each run; refuses shared
databases; ASTHRON_BENCH_DATABASE_URL points elsewhere), or a temporary SQLite file with `--sqlite`.
Redis: ASTHRON_BENCH_REDIS_URL (default redis://127.0.0.1:6379/11), flushed before and after.
"""
import argparse
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run as a script: reach `bench`, `asthron` and `config`
os.environ.setdefault("ASTHRON_INSTANCE_DIR", tempfile.mkdtemp(prefix="asthron-bench-instance-"))

import requests

from bench.harness import HEADER, REQUEST_TIMEOUT, Result, format_row, serve

DEFAULT_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/asthron_bench_widget"
DEFAULT_REDIS = "redis://127.0.0.1:6379/11"
PROTECTED_DATABASES = {"test", "postgres", "template0", "template1", "asthron_bench"}
ORIGIN = "https://bench-site.example"
VISITORS = 50
MAX_REQUESTS = 200_000
HIGH = "1000000 per minute"
LIMITS = {name: HIGH for name in (
    "ASTHRON_WIDGET_LIMIT_CONVERSATIONS_PER_IP", "ASTHRON_WIDGET_LIMIT_MESSAGES_PER_CONVERSATION",
    "ASTHRON_WIDGET_LIMIT_MESSAGES_PER_IP", "ASTHRON_WIDGET_LIMIT_WRITES_PER_WORKSPACE",
    "ASTHRON_WIDGET_LIMIT_READS_PER_IP")}
KNOWLEDGE = [("Opening hours", "We are open Monday to Friday from 9:00 to 17:00 and Saturday 10:00 to 14:00."),
             ("Prices", "A haircut costs 30 euros; colouring starts at 60 euros."),
             ("Address", "You find us at Main Street 12, next to the station.")]


def prepare_database(url):
    """Create (or rebuild) the benchmark database and return the SQLAlchemy URL the app uses."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return url
    if parsed.host not in ("127.0.0.1", "localhost") or parsed.database in PROTECTED_DATABASES:
        raise SystemExit(f"refusing to rebuild {parsed.database!r} on {parsed.host}: use a dedicated database")
    admin = create_engine(parsed.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{parsed.database}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{parsed.database}"'))
    admin.dispose()
    return url


def seed(url, conversations):
    """Build the schema and one workspace with a knowledge base; return its key and (id, token) pairs."""
    from flask_appbuilder import Model

    import asthron.models  # noqa: F401
    from asthron.app import create_app
    from asthron.extensions import db
    from asthron.models.chat import KnowledgeEntry, WidgetSettings
    from asthron.services import conversations as service
    from asthron.services import tenancy as svc

    app = create_app({"SQLALCHEMY_DATABASE_URI": url, "SECRET_KEY": secrets.token_urlsafe(48), "REDIS_URL": None,
                      "RATELIMIT_STORAGE_URI": "memory://", "ASTHRON_JOBS_EMBEDDED": "inline"})
    with app.app_context():
        Model.metadata.create_all(db.engine)
        workspace = svc.create_workspace(agency=svc.create_agency("Bench agency"), name="Bench salon", origins=[ORIGIN])
        db.session.add(WidgetSettings(workspace_id=workspace.id))
        db.session.add_all(KnowledgeEntry(workspace_id=workspace.id, title=t, body=b) for t, b in KNOWLEDGE)
        pairs = [service.start_conversation(workspace, origin=ORIGIN) for _ in range(conversations)]
        key = workspace.public_key
        pairs = [(c.id, token) for c, token in pairs]
        db.session.commit()
        db.session.remove()
        db.engine.dispose()
    return key, pairs


def app_env(url, redis_url):
    """Return the environment of the served app: the database, Redis, raised limits."""
    return {"DATABASE_URL": url, "REDIS_URL": redis_url, "SECRET_KEY": secrets.token_urlsafe(48),
            "BARE_DATABASE_URL": url, **LIMITS}


# --- (a) messages accepted per second -------------------------------------------------------------------

def _poster(session, url, body_for, deadline, budget, out):
    latencies, statuses, errors, n = [], {}, 0, 0
    while time.monotonic() < deadline and budget.acquire(blocking=False):
        n += 1
        started = time.perf_counter()
        try:
            status = session.post(url, json=body_for(n), timeout=REQUEST_TIMEOUT).status_code
        except requests.RequestException:
            status = "exception"
        statuses[status] = statuses.get(status, 0) + 1
        if status == 201:
            latencies.append(time.perf_counter() - started)
        else:
            errors += 1
    out.append((latencies, statuses, errors))


def drive_posts(label, targets, *, duration):
    """POST from one thread per (url, headers) target for `duration` seconds; 201 answers count."""
    budget, out, threads = threading.Semaphore(MAX_REQUESTS), [], []
    sessions = []
    for url, headers in targets:
        session = requests.Session()
        session.headers.update(headers)
        session.post(url, json={"text": "warm-up"}, timeout=REQUEST_TIMEOUT)
        sessions.append((session, url))
    started = time.monotonic()
    deadline = started + duration
    for session, url in sessions:
        thread = threading.Thread(target=_poster, args=(session, url, lambda n: {"text": f"Question number {n}?"},
                                                        deadline, budget, out))
        threads.append(thread)
        thread.start()
    for thread in threads:
        thread.join(timeout=duration + REQUEST_TIMEOUT + 5)
    elapsed = time.monotonic() - started
    for session, _url in sessions:
        session.close()
    result = Result(label=label, latencies=[], errors=0, elapsed=elapsed)
    for latencies, statuses, errors in out:
        result.latencies.extend(latencies)
        result.errors += errors
        for key, value in statuses.items():
            result.statuses[key] = result.statuses.get(key, 0) + value
    result.latencies.sort()
    return result


def accept_part(url, env, pairs, *, workers, duration):
    """Measure visitor messages accepted per second beside the bare insert endpoint; print both."""
    with serve("wsgi:app", workers=workers, env=env) as base:
        targets = [(f"{base}/widget/api/v1/conversations/{cid}/messages",
                    {"Origin": ORIGIN, "Authorization": f"Bearer {token}"}) for cid, token in pairs]
        widget = drive_posts(f"visitor messages, {len(pairs)} visitors", targets, duration=duration)
    with serve("bench.bare_app:app", workers=workers, env=env) as base:
        bare = drive_posts(f"bare insert, {len(pairs)} clients", [(f"{base}/bare/insert", {})] * len(pairs),
                           duration=duration)
    print(HEADER)
    print(format_row(bare))
    print(format_row(widget, bare))
    for result in (bare, widget):
        if result.errors:
            print(f"    {result.label}: non-201 answers: {result.statuses}")
    ratio = widget.rps / bare.rps if bare.rps else float("nan")
    print(f"accepted/s ratio to bare insert: {ratio:.2f} (goal >= 0.5) {'ok' if ratio >= 0.5 else 'UNDER GOAL'}")
    return widget, bare


# --- (b) time to the first token ---------------------------------------------------------------------------

class StreamWatch:
    """Read one conversation's SSE stream on a thread; note when it is ready and when a token arrives."""

    def __init__(self, url, headers):
        self.ready, self.token = threading.Event(), threading.Event()
        self.token_at = None
        self.response = requests.get(url, headers=headers, stream=True, timeout=REQUEST_TIMEOUT)
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self):
        try:
            for line in self.response.iter_lines(chunk_size=1, decode_unicode=True):
                if line == "retry: 1000":
                    self.ready.set()  # the server has subscribed and sent the backlog
                elif line == "event: token" and not self.token.is_set():
                    self.token_at = time.perf_counter()
                    self.token.set()
                    return
        except (requests.RequestException, AttributeError):  # closed by close()
            pass

    def close(self):
        self.response.close()


def one_sample(base, key):
    """Start a conversation, open its stream, post a message; return (seconds to first token, POST seconds)."""
    headers = {"Origin": ORIGIN}
    started = requests.post(f"{base}/widget/api/v1/conversations", json={"key": key}, headers=headers,
                            timeout=REQUEST_TIMEOUT).json()
    auth = {**headers, "Authorization": f"Bearer {started['token']}"}
    watch = StreamWatch(f"{base}/widget/api/v1/conversations/{started['id']}/stream", auth)
    try:
        if not watch.ready.wait(REQUEST_TIMEOUT):
            raise RuntimeError("the stream did not open")
        sent = time.perf_counter()
        answer = requests.post(f"{base}/widget/api/v1/conversations/{started['id']}/messages", headers=auth,
                               json={"text": "What are your opening hours?"}, timeout=REQUEST_TIMEOUT)
        posted = time.perf_counter() - sent
        if answer.status_code != 201:
            raise RuntimeError(f"message refused: HTTP {answer.status_code} {answer.text[:200]}")
        if not watch.token.wait(REQUEST_TIMEOUT):
            return None, posted
        return watch.token_at - sent, posted
    finally:
        watch.close()


def start_worker(env):
    """Start `flask asthron worker ai` with the app's environment; return the process."""
    command = [sys.executable, "-m", "flask", "--app", "wsgi", "asthron", "worker", "ai"]
    process = subprocess.Popen(command, cwd=str(ROOT), env={**os.environ, "PYTHONPATH": str(ROOT), **env},
                               stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    return process


def token_part(env, key, *, samples, workers):
    """Measure message -> first token over Redis with a worker running; print p50 and p95."""
    worker = start_worker(env)
    try:
        with serve("wsgi:app", workers=workers, env=env, worker_class="gthread", threads=16) as base:
            for _ in range(3):  # warm-up: imports, connections, the worker's first job
                one_sample(base, key)
            timings = [one_sample(base, key) for _ in range(samples)]
        with serve("bench.bare_app:app", workers=workers, env=env) as base:
            bare = []
            for _ in range(samples + 3):
                started = time.perf_counter()
                requests.post(f"{base}/bare/insert", json={"text": "x"}, timeout=REQUEST_TIMEOUT)
                bare.append(time.perf_counter() - started)
            bare = bare[3:]
    finally:
        worker.terminate()
        worker.wait(timeout=20)
    tokens = sorted(t for t, _ in timings if t is not None)
    missing = sum(1 for t, _ in timings if t is None)
    posts = sorted(p for _, p in timings)
    print(f"message -> first token ({samples} samples, {missing} without a token): "
          f"p50 {_ms(tokens, 50)} ms, p95 {_ms(tokens, 95)} ms; the POST alone p50 {_ms(posts, 50)} ms; "
          f"bare insert round trip p50 {_ms(sorted(bare), 50)} ms")
    p50 = statistics.median(tokens) * 1000 if tokens else float("nan")
    print(f"first-token p50 {p50:.1f} ms (goal < 100 ms) {'ok' if p50 < 100 and not missing else 'OVER GOAL'}; "
          f"{p50 / (statistics.median(bare) * 1000):.1f}x the bare insert round trip")


def _ms(values, q):
    if not values:
        return "nan"
    index = min(len(values) - 1, max(0, -(-q * len(values) // 100) - 1))
    return f"{values[index] * 1000:.1f}"


def flush(redis_url):
    import redis

    redis.Redis.from_url(redis_url).flushdb()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sqlite", action="store_true", help="use a temporary SQLite file instead of PostgreSQL")
    parser.add_argument("--part", choices=["accept", "token", "both"], default="both")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds of load per endpoint in (a)")
    parser.add_argument("--workers", type=int, default=4, help="gunicorn workers")
    parser.add_argument("--samples", type=int, default=40, help="messages timed in (b)")
    args = parser.parse_args()
    url = ("sqlite:///" + os.path.join(tempfile.mkdtemp(prefix="asthron-bench-"), "bench.db") if args.sqlite
           else os.environ.get("ASTHRON_BENCH_DATABASE_URL", DEFAULT_URL))
    redis_url = os.environ.get("ASTHRON_BENCH_REDIS_URL", DEFAULT_REDIS)
    url = prepare_database(url)
    key, pairs = seed(url, VISITORS)
    env = app_env(url, redis_url)
    load = os.getloadavg()[0]
    print(f"database: {url.split('@')[-1]}; Redis {redis_url}; gunicorn {args.workers} workers; "
          f"{os.cpu_count()} CPUs, load {load:.1f}")
    flush(redis_url)
    try:
        if args.part in ("accept", "both"):
            accept_part(url, env, pairs, workers=args.workers, duration=args.duration)
        flush(redis_url)  # the replies (a) enqueued are not (b)'s to answer
        if args.part in ("token", "both"):
            token_part(env, key, samples=args.samples, workers=args.workers)
    finally:
        flush(redis_url)
    print(f"load average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
