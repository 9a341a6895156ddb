"""Jobs: plain functions that take ids, run from a transactional outbox on RQ or in-process.

Declare a job with `@job("queue")`, request it with `add(db.session, "queue.name", some_id=...)`
inside the transaction that makes it necessary; it runs once after commit. See docs/jobs.md.
"""
import importlib
import pkgutil

from asthron.jobs.outbox import add
from asthron.jobs.queue import backend, enqueue
from asthron.jobs.registry import QUEUES, JobError, UnknownJob, job

__all__ = ["QUEUES", "JobError", "UnknownJob", "add", "backend", "enqueue", "health", "init_app", "job"]


def health(session):
    """Return the queue's state for /health: backend, whether it answers, and open outbox entries."""
    from asthron.jobs import queue
    from asthron.jobs.outbox import open_count

    try:
        pending = open_count(session)
    except Exception:  # the database is down: /health reports that under its own key
        pending = None
    return {"backend": queue.backend(), "state": "ok" if queue.ping() else "unreachable", "pending": pending}


def _import_job_modules():
    # Jobs register themselves when their module is imported: every process (web, worker) imports
    # all modules of this package, so a job name resolves wherever an entry runs.
    for module in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{module.name}")


def init_app(app):
    """Bind the job queue: import the jobs, install the outbox hooks, start embedded work on demand."""
    from asthron.jobs import embedded, outbox, queue

    _import_job_modules()
    outbox.init_app(app)
    embedded.mode(app)  # refuse a misspelt mode at start, not at the first commit

    @app.before_request
    def _start_embedded_runner():
        # The first request starts the thread, whose first act is to sweep work left from before.
        if queue.backend(app) == queue.EMBEDDED and embedded.mode(app) == embedded.THREAD:
            embedded.runner_for(app)
