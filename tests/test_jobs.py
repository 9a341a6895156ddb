"""The job layer: outbox in the caller's transaction, enqueue after commit, sweeper, exactly-once runs."""
import threading
from datetime import timedelta

import pytest
import sqlalchemy as sa
from flask import Blueprint
from redis import Redis
from rq import Queue, SimpleWorker
from rq.registry import ScheduledJobRegistry

from asthron.app import create_app
from asthron.extensions import db
from asthron.jobs import QUEUES, JobError, UnknownJob, add, job, sweeper
from asthron.jobs import runner as job_runner
from asthron.jobs.embedded import runner_for
from asthron.models.base import utcnow
from asthron.models.jobs import OutboxEntry, OutboxStatus

CLOSED_PORT_URL = "redis://127.0.0.1:1/0"  # nothing listens here: Redis is "down"

# A table only these tests use: the effect a test job has, one row per run that committed.
effects_metadata = sa.MetaData()
effects = sa.Table("test_job_effect", effects_metadata,
                   sa.Column("id", sa.Integer, primary_key=True),
                   sa.Column("key", sa.String(64), nullable=False))
failures_left = {}


@job("maintenance", name="test.record_effect")
def record_effect(key):
    db.session.execute(effects.insert().values(key=key))


@job("notifications", name="test.flaky", max_attempts=3, backoff=1)
def flaky(key):
    db.session.execute(effects.insert().values(key=key))
    if failures_left.get(key, 0) > 0:
        failures_left[key] -= 1
        raise RuntimeError("smtp login failed: password=hunter2")


@job("calendar", name="test.refused")
def refused(key):
    raise JobError("the calendar refused the booking")


@pytest.fixture
def effect_table(app):
    with app.app_context():
        effects_metadata.create_all(db.engine)
    yield
    failures_left.clear()
    with app.app_context():
        db.session.remove()
        effects_metadata.drop_all(db.engine)


def use_redis(app, url, monkeypatch):
    monkeypatch.setitem(app.config, "REDIS_URL", url)


def count_effects(app, key):
    with app.app_context():
        return db.session.execute(sa.select(sa.func.count()).select_from(effects).where(effects.c.key == key)).scalar()


def entry(app, entry_id):
    with app.app_context():
        row = db.session.get(OutboxEntry, entry_id)
        db.session.expunge(row)
        return row


def request_work(app, name="test.record_effect", **ids):
    """Add one outbox entry and commit, as a service would; return its id."""
    with app.app_context():
        new = add(db.session, name, **ids)
        db.session.commit()
        return new.id


def age(app, entry_id):
    """Let time pass for one entry: its back-off, schedule or lease is over."""
    with app.app_context():
        db.session.execute(sa.update(OutboxEntry).where(OutboxEntry.id == entry_id)
                           .values(available_at=utcnow() - timedelta(days=1)))
        db.session.commit()


def work(app, redis_url):
    """Run every queued job with a real RQ worker, in this process and inside the app."""
    with app.app_context():
        return SimpleWorker(list(QUEUES), connection=Redis.from_url(redis_url)).work(burst=True)


def queued(redis_url, name="maintenance"):
    return Queue(name, connection=Redis.from_url(redis_url)).count


# --- Redis down, then back ----------------------------------------------------------------------

def test_work_requested_while_redis_is_down_is_done_exactly_once_when_it_returns(
        app, effect_table, redis_url, monkeypatch):
    use_redis(app, CLOSED_PORT_URL, monkeypatch)
    entry_id = request_work(app, key="down")  # the commit stands although Redis is unreachable
    assert entry(app, entry_id).status == OutboxStatus.pending

    use_redis(app, redis_url, monkeypatch)
    assert sweeper.sweep(app) == 1
    assert sweeper.sweep(app) == 0  # handed over: not due again until the redelivery time
    # A sweeper that believes the job was lost hands it over a second time.
    assert sweeper.sweep(app, now=utcnow() + timedelta(days=1)) == 1
    assert queued(redis_url) == 2

    assert work(app, redis_url) is True
    assert work(app, redis_url) is False

    assert count_effects(app, "down") == 1
    done = entry(app, entry_id)
    assert (done.status, done.attempts, done.done_at is not None) == (OutboxStatus.done, 1, True)


def test_commit_enqueues_and_marks_the_entry_enqueued(app, effect_table, redis_url, monkeypatch):
    use_redis(app, redis_url, monkeypatch)
    with app.app_context():
        new = add(db.session, "test.record_effect", key="c")
        db.session.flush()
        assert queued(redis_url) == 0  # flushed is not committed
        db.session.commit()
        entry_id = new.id
    assert queued(redis_url) == 1
    assert entry(app, entry_id).status == OutboxStatus.enqueued


def test_rolled_back_transaction_enqueues_nothing(app, effect_table, redis_url, monkeypatch):
    use_redis(app, redis_url, monkeypatch)
    with app.app_context():
        add(db.session, "test.record_effect", key="r")
        db.session.flush()
        db.session.rollback()
        db.session.commit()  # a later commit must not send what was rolled back
        assert db.session.execute(sa.select(sa.func.count()).select_from(OutboxEntry)).scalar() == 0
    assert queued(redis_url) == 0


def test_scheduled_work_waits_in_rqs_scheduler(app, effect_table, redis_url, monkeypatch):
    use_redis(app, redis_url, monkeypatch)
    with app.app_context():
        new = add(db.session, "test.record_effect", at=utcnow() + timedelta(hours=1), key="later")
        db.session.commit()
        entry_id = new.id
    conn = Redis.from_url(redis_url)
    assert queued(redis_url) == 0
    assert ScheduledJobRegistry("maintenance", connection=conn).count == 1
    assert entry(app, entry_id).status == OutboxStatus.enqueued


# --- exactly once -------------------------------------------------------------------------------

def test_embedded_inline_mode_runs_the_work_once_the_commit_returns(app, effect_table):
    with app.app_context():
        new = add(db.session, "test.record_effect", key="inline")
        db.session.flush()
        assert count_effects(app, "inline") == 0  # not before the commit
        db.session.commit()
        entry_id = new.id
    assert count_effects(app, "inline") == 1
    assert entry(app, entry_id).status == OutboxStatus.done


def test_an_entry_that_is_done_is_skipped(app, effect_table):
    entry_id = request_work(app, key="once")  # embedded inline: runs right after the commit
    assert entry(app, entry_id).status == OutboxStatus.done

    assert job_runner.execute(app, entry_id) == job_runner.SKIPPED
    assert count_effects(app, "once") == 1


def test_a_dead_workers_entry_is_taken_over_once_its_lease_ends(app, effect_table, monkeypatch):
    use_redis(app, CLOSED_PORT_URL, monkeypatch)
    entry_id = request_work(app, key="lost")
    with app.app_context():
        assert job_runner._claim(db.session, entry_id) is not None  # claimed, then the worker died
    assert job_runner.execute(app, entry_id) == job_runner.SKIPPED  # its lease still holds

    age(app, entry_id)  # the lease runs out
    assert job_runner.execute(app, entry_id) == OutboxStatus.done
    assert count_effects(app, "lost") == 1
    assert entry(app, entry_id).attempts == 2


def test_a_run_whose_lease_was_taken_over_cannot_mark_the_entry_done(app, effect_table, monkeypatch):
    use_redis(app, CLOSED_PORT_URL, monkeypatch)
    entry_id = request_work(app, key="slow")
    with app.app_context():
        slow = job_runner._claim(db.session, entry_id)  # a run so slow that its lease ends
    age(app, entry_id)
    with app.app_context():
        successor = job_runner._claim(db.session, entry_id)
        assert job_runner._finish(db.session, slow) is False  # the slow run must roll back its work
        assert job_runner._finish(db.session, successor) is True
        db.session.commit()
    assert entry(app, entry_id).status == OutboxStatus.done


# --- failures -----------------------------------------------------------------------------------

def test_failed_run_backs_off_rolls_back_and_then_succeeds(app, effect_table):
    failures_left["flaky"] = 1
    entry_id = request_work(app, "test.flaky", key="flaky")
    failed_once = entry(app, entry_id)
    assert (failed_once.status, failed_once.attempts) == (OutboxStatus.pending, 1)
    assert count_effects(app, "flaky") == 0  # the failed run's writes were rolled back
    assert sweeper.run_due(app) == 0  # backing off

    age(app, entry_id)
    assert sweeper.run_due(app) == 1
    assert entry(app, entry_id).status == OutboxStatus.done
    assert count_effects(app, "flaky") == 1


def test_last_failure_marks_the_entry_failed_without_the_secret(app, effect_table):
    failures_left["doomed"] = 10
    entry_id = request_work(app, "test.flaky", key="doomed")
    for _ in range(2):
        age(app, entry_id)
        sweeper.run_due(app)
    failed = entry(app, entry_id)
    assert (failed.status, failed.attempts) == (OutboxStatus.failed, 3)
    assert failed.last_error == "RuntimeError"
    age(app, entry_id)
    assert sweeper.run_due(app) == 0  # failed is final


def test_job_error_message_is_kept(app, effect_table):
    entry_id = request_work(app, "test.refused", key="x")
    assert entry(app, entry_id).last_error == "JobError: the calendar refused the booking"


def test_a_run_that_never_finishes_its_last_attempt_ends_failed(app, effect_table, monkeypatch):
    use_redis(app, CLOSED_PORT_URL, monkeypatch)
    entry_id = request_work(app, "test.flaky", key="crash")
    for _ in range(3):
        with app.app_context():
            assert job_runner._claim(db.session, entry_id) is not None  # each worker dies mid-run
        age(app, entry_id)
    assert job_runner.execute(app, entry_id) == job_runner.SKIPPED
    assert entry(app, entry_id).status == OutboxStatus.failed


# --- what the outbox accepts --------------------------------------------------------------------

def test_outbox_takes_ids_not_objects(ctx, effect_table):
    with pytest.raises(TypeError, match="takes ids, not OutboxEntry"):
        add(db.session, "test.record_effect", key=OutboxEntry())
    with pytest.raises(TypeError, match="unexpected keyword argument 'workspace_id'"):
        add(db.session, "test.record_effect", key="k", workspace_id=1)
    with pytest.raises(UnknownJob):
        add(db.session, "test.no_such_job", key="k")


def test_job_names_and_queues_are_checked_at_registration():
    with pytest.raises(ValueError, match="unknown queue"):
        job("email")(lambda: None)
    with pytest.raises(ValueError, match="already taken"):
        job("maintenance", name="test.record_effect")(lambda key: None)


# --- the worker command -------------------------------------------------------------------------

def test_worker_command_runs_due_work_in_burst_mode_inside_the_app(app, runner, effect_table, redis_url,
                                                                    monkeypatch):
    use_redis(app, CLOSED_PORT_URL, monkeypatch)
    left_over = request_work(app, key="left-over")  # Redis was down: still pending
    use_redis(app, redis_url, monkeypatch)
    queued_now = request_work(app, key="queued")

    result = runner.invoke(args=["asthron", "worker", "--burst", "--no-scheduler"])

    assert result.exit_code == 0, result.output
    assert count_effects(app, "left-over") == count_effects(app, "queued") == 1
    assert {entry(app, left_over).status, entry(app, queued_now).status} == {OutboxStatus.done}


def test_worker_command_without_redis_runs_due_entries_itself(app, runner, effect_table):
    failures_left["again"] = 1
    entry_id = request_work(app, "test.flaky", key="again")  # inline run failed; due after back-off
    age(app, entry_id)

    result = runner.invoke(args=["asthron", "worker", "--burst"])

    assert result.exit_code == 0, result.output
    assert "ran 1 outbox entries" in result.output
    assert entry(app, entry_id).status == OutboxStatus.done


def test_worker_command_refuses_an_unknown_queue(runner):
    result = runner.invoke(args=["asthron", "worker", "--burst", "emails"])
    assert result.exit_code == 2
    assert "unknown queue emails" in result.output


def test_worker_command_says_when_redis_does_not_answer(app, runner, monkeypatch):
    use_redis(app, CLOSED_PORT_URL, monkeypatch)
    result = runner.invoke(args=["asthron", "worker", "--burst"])
    assert result.exit_code == 1
    assert "Redis at REDIS_URL does not answer" in result.output


# --- /health ------------------------------------------------------------------------------------

def test_health_reports_the_embedded_queue(client):
    body = client.get("/health").json
    assert body["queue"] == {"backend": "embedded", "state": "ok", "pending": 0}
    assert body["status"] == "ok"


def test_health_is_degraded_not_down_when_redis_is_unreachable(app, client, effect_table, monkeypatch):
    use_redis(app, CLOSED_PORT_URL, monkeypatch)
    request_work(app, key="kept")
    response = client.get("/health")
    assert response.status_code == 200
    assert response.json["status"] == "degraded"
    assert response.json["database"] == "ok"
    assert response.json["queue"] == {"backend": "redis", "state": "unreachable", "pending": 1}


def test_health_reports_a_reachable_redis(app, client, redis_url, monkeypatch):
    use_redis(app, redis_url, monkeypatch)
    body = client.get("/health").json
    assert body["queue"] == {"backend": "redis", "state": "ok", "pending": 0}
    assert body["status"] == "ok"


# --- the embedded thread, on SQLite with concurrent requests -------------------------------------

@pytest.fixture
def thread_app(tmp_path):
    """A separate app on its own SQLite file whose jobs run on the embedded thread."""
    from flask_appbuilder import Model

    app = create_app({
        "TESTING": True, "SECRET_KEY": "test-secret-key-that-is-long-enough-0123456789",
        "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'thread.db'}", "REDIS_URL": None,
        "ASTHRON_JOBS_EMBEDDED": "thread", "ASTHRON_JOBS_SWEEP_SECONDS": 3600,
        "RATELIMIT_STORAGE_URI": "memory://", "SERVER_NAME": "localhost",
    })
    bp = Blueprint("jobs_test", __name__)

    @bp.get("/test-jobs/<key>")
    def request_effect(key):
        add(db.session, "test.record_effect", key=key)
        db.session.commit()
        return "accepted"

    app.register_blueprint(bp)
    with app.app_context():
        Model.metadata.create_all(db.engine)
        effects_metadata.create_all(db.engine)
    yield app
    runner_for(app).stop()
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


def test_embedded_thread_does_concurrent_requests_work_exactly_once(thread_app):
    keys = [f"visitor-{n}" for n in range(20)]
    statuses = []

    def visit(key):
        statuses.append(thread_app.test_client().get(f"/test-jobs/{key}").status_code)

    threads = [threading.Thread(target=visit, args=(key,)) for key in keys]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert runner_for(thread_app).wait_idle(timeout=30)

    assert statuses == [200] * len(keys)
    assert all(count_effects(thread_app, key) == 1 for key in keys)
    with thread_app.app_context():
        assert set(db.session.scalars(sa.select(OutboxEntry.status))) == {OutboxStatus.done}


def test_embedded_thread_runs_work_left_from_before_it_started(thread_app):
    with thread_app.app_context():  # committed by a process that stopped before running it
        db.session.execute(sa.insert(OutboxEntry).values(
            queue="maintenance", job="test.record_effect", payload={"key": "orphan"},
            status=OutboxStatus.pending, attempts=0, max_attempts=5, available_at=utcnow(), created_at=utcnow()))
        db.session.commit()

    assert thread_app.test_client().get("/health").status_code == 200  # the first request starts it
    assert runner_for(thread_app).wait_idle(timeout=30)
    assert count_effects(thread_app, "orphan") == 1
