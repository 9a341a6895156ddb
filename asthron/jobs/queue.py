"""The Redis connection and the one enqueue helper; which backend the app runs jobs on."""
import logging
import threading

from flask import current_app
from redis import Redis
from redis.backoff import ExponentialBackoff
from redis.retry import Retry
from rq import Queue

from asthron.jobs import registry

log = logging.getLogger(__name__)

EXTENSION = "asthron.jobs"
REDIS = "redis"
EMBEDDED = "embedded"
_lock = threading.Lock()


def backend(app=None):
    """Return "redis" when REDIS_URL is set, else "embedded" (the web process runs jobs itself)."""
    app = app or current_app
    return REDIS if app.config.get("REDIS_URL") else EMBEDDED


def state(app=None):
    """Return the per-app job state (connection cache, embedded runner)."""
    app = app or current_app
    return app.extensions.setdefault(EXTENSION, {})


def connection(app=None):
    """Return the app's Redis client for REDIS_URL, created once per URL."""
    app = app or current_app
    url = app.config.get("REDIS_URL")
    if not url:
        raise RuntimeError("REDIS_URL is not set: jobs run embedded, there is no Redis connection")
    jobs_state = state(app)
    with _lock:
        cached = jobs_state.get("redis")
        if cached is None or cached[0] != url:
            cached = jobs_state["redis"] = (url, new_connection(url))
    return cached[1]


def new_connection(url):
    """Return a new Redis client for `url` that fails fast when Redis is down."""
    # A request that commits work must not wait long on a Redis that is down: the outbox keeps
    # the work and the sweeper hands it over later.
    return Redis.from_url(url, socket_connect_timeout=2, socket_timeout=5,
                          retry=Retry(ExponentialBackoff(cap=0.2, base=0.02), 2), health_check_interval=30)


def enqueue(entry_id, *, queue, job=None, at=None, conn=None):
    """Put a run of outbox entry `entry_id` on its RQ queue, now or at `at` (aware UTC); return the RQ job."""
    from asthron.jobs.runner import run_entry

    spec = registry.find(job) if job else None
    timeout = spec.timeout if spec else registry.DEFAULT_TIMEOUT
    rq_queue = Queue(queue, connection=conn or connection())
    options = {"job_timeout": timeout, "description": f"outbox #{entry_id} {job or ''}".strip(),
               "result_ttl": 3600, "failure_ttl": 7 * 24 * 3600}
    if at is not None:
        return rq_queue.enqueue_at(at, run_entry, entry_id, **options)
    return rq_queue.enqueue(run_entry, entry_id, **options)


def ping(app=None):
    """Say whether Redis answers (always True for the embedded backend)."""
    app = app or current_app
    if backend(app) == EMBEDDED:
        return True
    try:
        return bool(connection(app).ping())
    except Exception as exc:  # a health probe reports, it never raises
        log.info("redis ping failed: %s", type(exc).__name__)
        return False
