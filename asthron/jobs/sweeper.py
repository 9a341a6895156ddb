"""The outbox sweeper: find open entries that are due or lost and hand them over again.

Due means `available_at` has passed: a pending entry that never reached Redis (it was down), a
retry whose back-off is over, an enqueued entry no worker took within the redelivery time, or a
running one whose worker died and whose lease ran out. Handing one over twice is harmless: only
one run can claim it.
"""
import logging

from flask import current_app
from sqlalchemy import select

from asthron.models.base import utcnow
from asthron.models.jobs import OPEN_STATUSES, OutboxEntry

log = logging.getLogger(__name__)

BATCH = 500


def due_entries(session, *, now, queues=None, limit=BATCH):
    """Return `(id, queue, job)` of open entries whose `available_at` has passed, oldest first."""
    query = (select(OutboxEntry.id, OutboxEntry.queue, OutboxEntry.job)
             .where(OutboxEntry.status.in_(OPEN_STATUSES), OutboxEntry.available_at <= now)
             .order_by(OutboxEntry.available_at, OutboxEntry.id).limit(limit))
    if queues:
        query = query.where(OutboxEntry.queue.in_(list(queues)))
    return session.execute(query).all()


def sweep(app=None, *, now=None, limit=BATCH):
    """Enqueue due entries on Redis again; return how many were handed over (0 when Redis is down)."""
    from asthron.extensions import db
    from asthron.jobs import outbox

    app = app or current_app._get_current_object()
    now = now or utcnow()
    with app.app_context():
        rows = due_entries(db.session, now=now, limit=limit)
        db.session.rollback()  # read only; end the transaction before talking to Redis
        if not rows:
            return 0
        handed = outbox.hand_to_redis(app, [(r.id, r.queue, r.job, None) for r in rows], pending_only=False, now=now)
    if handed:
        log.info("sweeper handed %d outbox entries to Redis", handed)
    return handed


def run_due(app=None, *, queues=None, limit=BATCH, stop=None):
    """Run due entries in this process (embedded backend); return how many runs were attempted."""
    from asthron.extensions import db
    from asthron.jobs import runner

    app = app or current_app._get_current_object()
    with app.app_context():
        rows = due_entries(db.session, now=utcnow(), queues=queues, limit=limit)
        db.session.rollback()
    for row in rows:
        if stop is not None and stop.is_set():
            break
        runner.execute(app, row.id)
    return len(rows)
