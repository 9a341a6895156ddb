"""`flask --app wsgi asthron worker`: run jobs inside the app, and sweep the outbox while at it.

The app is created once, by the Flask CLI, and jobs run in this process (RQ's SimpleWorker): a
forking worker would rebuild the app for every job. A job that hangs is still stopped by RQ's
timeout; a worker that dies loses nothing, since its entry is taken over when its lease runs out.
"""
import logging
import threading

import click
from flask import current_app
from flask.cli import with_appcontext

from asthron.jobs import queue as jobs_queue
from asthron.jobs import sweeper
from asthron.jobs.registry import QUEUES

log = logging.getLogger(__name__)

SWEEP_LOCK = "asthron:outbox:sweep-lock"


@click.command("worker")
@click.argument("queues", nargs=-1)
@click.option("--burst", is_flag=True, help="Run what is due now, then exit.")
@click.option("--scheduler/--no-scheduler", default=True,
              help="Also move due scheduled jobs (retries, reminders) onto their queues (Redis only).")
@click.option("--sweep-seconds", type=click.IntRange(min=1), default=None,
              help="How often to sweep the outbox (default: ASTHRON_JOBS_SWEEP_SECONDS).")
@with_appcontext
def worker_command(queues, burst, scheduler, sweep_seconds):
    """Run jobs from QUEUES (default: all, highest priority first) and sweep the outbox."""
    unknown = [q for q in queues if q not in QUEUES]
    if unknown:
        raise click.BadParameter(f"unknown queue {', '.join(unknown)}; the queues are {', '.join(QUEUES)}",
                                 param_hint="QUEUES")
    names = list(queues) or list(QUEUES)
    app = current_app._get_current_object()
    _require_schema()
    interval = sweep_seconds or app.config.get("ASTHRON_JOBS_SWEEP_SECONDS", 30)
    if jobs_queue.backend(app) == jobs_queue.REDIS:
        run_redis_worker(app, names, burst=burst, scheduler=scheduler, interval=interval)
    else:
        run_embedded_worker(app, names, burst=burst, interval=interval)


def _require_schema():
    from sqlalchemy import inspect

    from asthron.extensions import db
    from asthron.models.jobs import OutboxEntry

    if not inspect(db.engine).has_table(OutboxEntry.__tablename__):
        raise click.ClickException("the database has no outbox table: run `flask --app wsgi asthron init` first")


def run_redis_worker(app, names, *, burst, scheduler, interval):
    """Sweep once, then work the RQ queues `names`, sweeping every `interval` seconds in a thread."""
    from redis.exceptions import RedisError
    from rq import SimpleWorker

    from asthron.extensions import db

    # The worker gets its own client: RQ raises its socket timeout for blocking pops.
    conn = jobs_queue.new_connection(app.config["REDIS_URL"])
    try:
        conn.ping()
    except RedisError as exc:  # the URL may hold a password: name the setting, not its value
        raise click.ClickException(f"Redis at REDIS_URL does not answer ({type(exc).__name__})") from None
    sweeper.sweep(app)
    if scheduler and not burst:
        # RQ's scheduler runs in a forked process: let it inherit no open database connections.
        db.engine.dispose()
    stop = threading.Event()
    if not burst:
        threading.Thread(target=_sweep_loop, args=(app, conn, interval, stop), name="asthron-sweeper",
                         daemon=True).start()
    try:
        SimpleWorker(names, connection=conn).work(burst=burst, with_scheduler=scheduler)
    finally:
        stop.set()


def _sweep_loop(app, conn, interval, stop):
    while not stop.wait(interval):
        try:
            # One sweep per interval across all workers is enough; the others skip this round.
            if conn.set(SWEEP_LOCK, "1", nx=True, ex=interval):
                sweeper.sweep(app)
        except Exception:  # keep sweeping: Redis or the database may come back
            log.warning("outbox sweep failed", exc_info=True)


def run_embedded_worker(app, names, *, burst, interval):
    """Without Redis, run due outbox entries of `names` here, every `interval` seconds (or once)."""
    stop = threading.Event()
    click.echo(f"REDIS_URL is not set: running due outbox entries of {', '.join(names)} in this process")
    if burst:
        total = 0
        while count := sweeper.run_due(app, queues=names):
            total += count
        click.echo(f"ran {total} outbox entries")
        return
    try:
        while True:
            sweeper.run_due(app, queues=names, stop=stop)
            stop.wait(interval)
    except KeyboardInterrupt:  # a run cut short stays claimed until its lease ends, then runs again
        stop.set()
