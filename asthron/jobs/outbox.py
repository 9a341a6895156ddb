"""The outbox: `add` work inside the caller's transaction; after commit, hand it to the backend.

Nothing reaches a queue before the transaction that wrote the entry commits, and nothing is lost
if the hand-over fails: the entry stays `pending` and the sweeper hands it over later.
"""
import inspect as pyinspect
import logging
from datetime import UTC, timedelta

from flask import current_app, has_app_context
from sqlalchemy import event, func, inspect, select, update
from sqlalchemy.orm import Session

from asthron.jobs import registry
from asthron.models.base import utcnow
from asthron.models.jobs import OPEN_STATUSES, OutboxEntry, OutboxStatus

log = logging.getLogger(__name__)

SESSION_KEY = "asthron_outbox"
MAX_ID_LENGTH = 200


def add(session, name, *, at=None, **ids):
    """Write an outbox entry for job `name` with `ids` in `session`'s transaction; it runs after commit.

    `at` (an aware datetime) delays the first run. Values must be ids (int or short str), never ORM
    objects: the job loads what it needs when it runs.
    """
    spec = registry.get(name)
    _check_payload(spec, ids)
    now = utcnow()
    when = _aware(at) if at is not None else now
    entry = OutboxEntry(queue=spec.queue, job=spec.name, payload=ids, status=OutboxStatus.pending,
                        attempts=0, max_attempts=spec.max_attempts, available_at=when, created_at=now)
    session.add(entry)
    # Kept beside the entry because its attributes expire at commit and cannot be loaded then.
    session.info.setdefault(SESSION_KEY, []).append((entry, spec.queue, spec.name, when if when > now else None))
    return entry


def _check_payload(spec, ids):
    for key, value in ids.items():
        if value is not None and not isinstance(value, (int, str)):
            raise TypeError(f"job {spec.name} takes ids, not {type(value).__name__}: pass {key}=<object>.id")
        if isinstance(value, str) and len(value) > MAX_ID_LENGTH:
            raise TypeError(f"job {spec.name}: {key} is {len(value)} characters long; pass an id, not content")
    try:
        pyinspect.signature(spec.func).bind(**ids)
    except TypeError as exc:
        raise TypeError(f"job {spec.name}: {exc}") from None


def _aware(moment):
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _after_commit(session):
    if session.in_nested_transaction():
        # SQLAlchemy reports a released SAVEPOINT as a commit too; the entries wait for the real one.
        return
    items = session.info.pop(SESSION_KEY, None)
    if not items:
        return
    handed = [(inspect(entry).identity[0], queue, name, at) for entry, queue, name, at in items
              if inspect(entry).identity]
    if not has_app_context():
        log.info("%d outbox entries committed outside an app context; the sweeper hands them over", len(handed))
        return
    try:
        dispatch(current_app._get_current_object(), handed)
    except Exception:  # the commit stands; the sweeper hands the entries over later
        log.exception("handing %d outbox entries over after commit failed", len(handed))


def _after_transaction_end(session, transaction):
    # A rolled-back or closed transaction enqueues nothing.
    if transaction.parent is None:
        session.info.pop(SESSION_KEY, None)


def dispatch(app, items):
    """Hand committed entries `(id, queue, job, at)` to Redis, or to the embedded runner."""
    from asthron.jobs import embedded
    from asthron.jobs import queue as jobs_queue

    if jobs_queue.backend(app) == jobs_queue.REDIS:
        hand_to_redis(app, items, pending_only=True)
    else:
        embedded.submit(app, [entry_id for entry_id, _q, _j, at in items if at is None])


def hand_to_redis(app, items, *, pending_only, now=None):
    """Enqueue `(id, queue, job, at)` items on Redis and mark those handed over; return how many were."""
    from redis.exceptions import RedisError

    from asthron.jobs import queue as jobs_queue

    now = now or utcnow()
    conn = jobs_queue.connection(app)
    handed = []
    for entry_id, queue, name, at in items:
        try:
            jobs_queue.enqueue(entry_id, queue=queue, job=name, at=at, conn=conn)
        except RedisError as exc:
            log.warning("Redis unreachable (%s): %d outbox entries stay in the outbox for the sweeper",
                        type(exc).__name__, len(items) - len(handed))
            break
        handed.append((entry_id, at))
    _mark_enqueued(app, handed, now=now, pending_only=pending_only)
    return len(handed)


def _mark_enqueued(app, handed, *, now, pending_only):
    """Record the hand-over, unless a worker claimed the entry meanwhile (only open, unclaimed rows change)."""
    from asthron.extensions import db

    if not handed:
        return
    redeliver = timedelta(seconds=app.config.get("ASTHRON_JOBS_REDELIVER_SECONDS", 600))
    # A separate connection: this also runs in `after_commit`, where the session may not be used.
    with db.engine.begin() as conn:
        for entry_id, at in handed:
            condition = (OutboxEntry.status == OutboxStatus.pending if pending_only else
                         OutboxEntry.status.in_(OPEN_STATUSES) & (OutboxEntry.available_at <= now))
            conn.execute(update(OutboxEntry).where(OutboxEntry.id == entry_id, condition)
                         .values(status=OutboxStatus.enqueued, available_at=(at or now) + redeliver))


def open_count(session):
    """Return how many entries are not yet done or failed."""
    return session.execute(select(func.count()).select_from(OutboxEntry)
                           .where(OutboxEntry.status.in_(OPEN_STATUSES))).scalar_one()


def init_app(app):
    """Install the session listeners that hand entries over after commit (once per process)."""
    if not getattr(Session, "_asthron_outbox", False):
        event.listen(Session, "after_commit", _after_commit)
        event.listen(Session, "after_transaction_end", _after_transaction_end)
        Session._asthron_outbox = True
