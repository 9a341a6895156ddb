"""Jobs without Redis: the web process runs committed outbox work itself.

`ASTHRON_JOBS_EMBEDDED = "thread"` (the default): one background thread per process runs entries
right after their commit, each in its own app context, and sweeps the outbox at start and every
ASTHRON_JOBS_SWEEP_SECONDS for work left over (a restart, a retry that is due, a scheduled run).
`"inline"`: the committing call runs the work itself, right after its commit, before it returns
(tests and scripts; scheduled runs and retries wait for a sweep or `asthron worker --burst`).
The outbox claim makes both safe with several processes on one SQLite file.
"""
import atexit
import logging
import queue as stdqueue
import threading

from asthron.jobs import queue as jobs_queue
from asthron.jobs import runner, sweeper

log = logging.getLogger(__name__)

THREAD = "thread"
INLINE = "inline"
MODES = (THREAD, INLINE)


def mode(app):
    """Return the embedded mode configured for `app`."""
    value = app.config.get("ASTHRON_JOBS_EMBEDDED", THREAD)
    if value not in MODES:
        raise ValueError(f"ASTHRON_JOBS_EMBEDDED is {value!r}: use one of {', '.join(MODES)}")
    return value


def submit(app, entry_ids):
    """Run committed entries: inline now, or on the app's runner thread."""
    if mode(app) == INLINE:
        for entry_id in entry_ids:
            runner.execute(app, entry_id)
        return
    if entry_ids:
        runner_for(app).submit(entry_ids)


def runner_for(app):
    """Return the app's runner thread object, started."""
    state = jobs_queue.state(app)
    existing = state.get("embedded")
    if existing is not None and existing.alive:  # the common case, once per request: no locks
        return existing
    with _create_lock:
        thread_runner = state.get("embedded")
        if thread_runner is None:
            thread_runner = state["embedded"] = EmbeddedRunner(app)
    thread_runner.start()
    return thread_runner


_create_lock = threading.Lock()


class EmbeddedRunner:
    """One daemon thread that runs submitted entries and sweeps the outbox when idle."""

    def __init__(self, app):
        self.app = app
        self.interval = app.config.get("ASTHRON_JOBS_SWEEP_SECONDS", 30)
        self._queue = stdqueue.Queue()
        self._thread = None
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        atexit.register(self.stop)

    def start(self):
        """Start the thread unless it runs already."""
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                return
            self._stopping.clear()
            self._thread = threading.Thread(target=self._loop, name="asthron-jobs", daemon=True)
            self._thread.start()

    def submit(self, entry_ids):
        """Queue entries to run on the thread."""
        for entry_id in entry_ids:
            self._queue.put(entry_id)

    def wait_idle(self, timeout=None):
        """Block until every submitted entry has run (tests, shutdown); say whether it got there."""
        done = threading.Event()
        self._queue.put(done)
        return done.wait(timeout)

    def stop(self, timeout=5):
        """Ask the thread to finish the entry it runs and stop; what is left stays pending in the outbox."""
        self._stopping.set()
        self._queue.put(None)
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    @property
    def alive(self):
        """Say whether the thread runs."""
        return self._thread is not None and self._thread.is_alive()

    def _loop(self):
        self._sweep()  # work left over from before this process started
        while not self._stopping.is_set():
            try:
                item = self._queue.get(timeout=self.interval)
            except stdqueue.Empty:
                self._sweep()
                continue
            if isinstance(item, threading.Event):
                item.set()
            elif item is not None:
                self._run(item)

    def _run(self, entry_id):
        try:
            runner.execute(self.app, entry_id)
        except Exception:  # keep the thread alive; the entry stays open and is swept again
            log.exception("embedded run of outbox #%s failed", entry_id)

    def _sweep(self):
        try:
            sweeper.run_due(self.app, stop=self._stopping)
        except Exception:  # e.g. the schema is not there yet (`asthron init` not run)
            log.warning("embedded outbox sweep failed", exc_info=True)
