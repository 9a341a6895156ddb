"""Run one outbox entry exactly once: claim it, do the work, commit the work with the done mark.

A claim is a conditional UPDATE that only one worker can win; it gives the run a lease and a token
(the attempt number). The job's database work and the `done` mark commit in one transaction, and
the mark only lands if the token still holds, so a run whose lease was taken over rolls back.
Work outside the database (mail, HTTP) is at-least-once; jobs make it idempotent.
"""
import logging
import traceback
from dataclasses import dataclass
from datetime import timedelta

from flask import current_app, g, has_app_context
from sqlalchemy import and_, or_, select, update

from asthron.jobs import registry
from asthron.jobs.registry import JobError
from asthron.models.base import utcnow
from asthron.models.jobs import OutboxEntry, OutboxStatus

log = logging.getLogger(__name__)

SKIPPED = "skipped"
SYSTEM_ACTOR = {"actor_id": None, "actor": "system"}
# The retry policy for an entry whose job this process does not know (a deploy in progress).
_DEFAULT_SPEC = registry.JobSpec("", "maintenance", lambda: None)


@dataclass(frozen=True)
class Claim:
    """A won claim: what to run and the token that proves the lease is still ours."""

    entry_id: int
    job: str
    queue: str
    payload: dict
    attempts: int
    max_attempts: int


def run_entry(entry_id):
    """Run outbox entry `entry_id` (the function RQ calls); return its new status or "skipped"."""
    if not has_app_context():
        raise RuntimeError("Asthron jobs need the app: run workers with `flask --app wsgi asthron worker`")
    return execute(current_app._get_current_object(), entry_id)


def execute(app, entry_id):
    """Run one entry in a fresh app context and tenant-unrestricted scope; return its new status."""
    from asthron.extensions import db
    from asthron.tenancy import UNRESTRICTED, scoped

    # A fresh context gives the run its own session, even when called inside a request (inline mode).
    with app.app_context(), scoped(UNRESTRICTED):
        g.audit_actor = SYSTEM_ACTOR
        claim = _claim(db.session, entry_id)
        if claim is None:
            return SKIPPED
        g.job_attempt = (claim.attempts, claim.max_attempts)  # read by jobs through current_attempt()
        try:
            registry.get(claim.job).func(**claim.payload)
            if not _finish(db.session, claim):
                db.session.rollback()
                log.warning("outbox #%s: lease lost to another worker; this run's work is rolled back", entry_id)
                return SKIPPED
            db.session.commit()
            return OutboxStatus.done
        except Exception as exc:
            db.session.rollback()
            return _fail(app, db.session, claim, exc)


def current_attempt():
    """Return (attempt, max_attempts) of the job running now; (1, 1) outside a run (no retry will follow)."""
    return g.get("job_attempt", (1, 1)) if has_app_context() else (1, 1)


def is_last_attempt():
    """Say whether the running job has no retry left, so it must settle instead of raising."""
    attempt, max_attempts = current_attempt()
    return attempt >= max_attempts


def _claim(session, entry_id):
    """Take the entry if it is open and free; return a Claim, or None when there is nothing to run."""
    lease = (registry.find(_job_name(session, entry_id) or "") or _DEFAULT_SPEC).lease
    now = utcnow()
    # Enqueued entries are free to take; pending and running ones only once due (retry back-off,
    # schedule) or once their lease ran out (the worker that had them died).
    claimable = and_(OutboxEntry.id == entry_id, or_(
        OutboxEntry.status == OutboxStatus.enqueued,
        and_(OutboxEntry.status.in_([OutboxStatus.pending, OutboxStatus.running]), OutboxEntry.available_at <= now)))
    row = session.execute(
        update(OutboxEntry).where(claimable, OutboxEntry.attempts < OutboxEntry.max_attempts)
        .values(status=OutboxStatus.running, attempts=OutboxEntry.attempts + 1,
                available_at=now + timedelta(seconds=lease))
        .returning(OutboxEntry.job, OutboxEntry.queue, OutboxEntry.payload, OutboxEntry.attempts,
                   OutboxEntry.max_attempts),
        execution_options={"synchronize_session": False}).first()
    if row is None:
        # A run that died on its last attempt leaves the entry open with no attempts left.
        session.execute(update(OutboxEntry).where(claimable, OutboxEntry.attempts >= OutboxEntry.max_attempts)
                        .values(status=OutboxStatus.failed, done_at=now,
                                last_error="the last attempt did not finish (worker lost or timed out)"),
                        execution_options={"synchronize_session": False})
    session.commit()
    return Claim(entry_id, *row) if row else None


def _job_name(session, entry_id):
    return session.execute(select(OutboxEntry.job).where(OutboxEntry.id == entry_id)).scalar()


def _finish(session, claim):
    """Mark the entry done in the job's own transaction if our lease still holds; say whether it did."""
    result = session.execute(
        update(OutboxEntry).where(OutboxEntry.id == claim.entry_id, OutboxEntry.status == OutboxStatus.running,
                                  OutboxEntry.attempts == claim.attempts)
        .values(status=OutboxStatus.done, done_at=utcnow(), last_error=None),
        execution_options={"synchronize_session": False})
    return result.rowcount == 1


def _fail(app, session, claim, exc):
    """Record a failed run: back off and retry, or give up after the last attempt; return the status."""
    # The message goes through the logging filter that masks secrets; a raw traceback would not.
    log.warning("outbox #%s %s attempt %d/%d failed: %s: %s\n%s", claim.entry_id, claim.job, claim.attempts,
                claim.max_attempts, type(exc).__name__, exc, "".join(traceback.format_tb(exc.__traceback__)))
    spec = registry.find(claim.job)
    now = utcnow()
    final = claim.attempts >= claim.max_attempts
    retry_at = None if final else now + timedelta(seconds=(spec or _DEFAULT_SPEC).delay_after(claim.attempts))
    values = ({"status": OutboxStatus.failed, "done_at": now} if final else
              {"status": OutboxStatus.pending, "available_at": retry_at})
    result = session.execute(
        update(OutboxEntry).where(OutboxEntry.id == claim.entry_id, OutboxEntry.status == OutboxStatus.running,
                                  OutboxEntry.attempts == claim.attempts)
        .values(last_error=describe_error(exc), **values),
        execution_options={"synchronize_session": False})
    session.commit()
    if result.rowcount != 1:
        return SKIPPED
    if not final:
        _schedule_retry(app, claim, retry_at)
    return OutboxStatus.failed if final else OutboxStatus.pending


def _schedule_retry(app, claim, retry_at):
    """On Redis, let RQ's scheduler run the retry on time; the sweeper is the fallback either way."""
    from asthron.jobs import outbox
    from asthron.jobs import queue as jobs_queue

    if jobs_queue.backend(app) != jobs_queue.REDIS:
        return
    try:
        outbox.hand_to_redis(app, [(claim.entry_id, claim.queue, claim.job, retry_at)], pending_only=True)
    except Exception:  # the entry is pending in the database; the sweeper retries it when due
        log.warning("could not schedule the retry of outbox #%s; the sweeper will", claim.entry_id)


def describe_error(exc):
    """Return what may be stored about a failure: the exception type, and the message only of a JobError.

    Other exceptions' messages can carry secrets or personal data (URLs with credentials, provider
    responses), so they go to the log only.
    """
    if isinstance(exc, JobError):
        return f"{type(exc).__name__}: {exc}"[:500]
    return type(exc).__name__
