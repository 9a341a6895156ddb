"""The job registry: plain functions that take ids, declared with `@job(queue)`."""
from collections.abc import Callable
from dataclasses import dataclass

QUEUES = ("ai", "notifications", "webhooks", "calendar", "maintenance")
DEFAULT_MAX_ATTEMPTS = 5
DEFAULT_TIMEOUT = 300  # seconds one run may take before RQ stops it
DEFAULT_BACKOFF = 10  # seconds before the first retry; doubles on each further failure
MAX_BACKOFF = 3600

_jobs: dict[str, "JobSpec"] = {}


class JobError(Exception):
    """A job failure whose message is safe to store and show (no secrets, no personal data)."""


class UnknownJob(JobError, LookupError):
    """No job of that name is registered in this process."""

    def __init__(self, name):
        super().__init__(f"no job named {name!r} is registered in this process")
        self.name = name


@dataclass(frozen=True)
class JobSpec:
    """A registered job: its name, queue, function and retry policy."""

    name: str
    queue: str
    func: Callable
    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    timeout: int = DEFAULT_TIMEOUT
    backoff: int = DEFAULT_BACKOFF

    @property
    def lease(self):
        """Return how long a claimed run may last before another worker may take it over, in seconds."""
        return self.timeout + 60

    def delay_after(self, attempts):
        """Return the back-off in seconds before the next attempt, after `attempts` failures."""
        return min(MAX_BACKOFF, self.backoff * 2 ** max(0, attempts - 1))


def job(queue, *, name=None, max_attempts=DEFAULT_MAX_ATTEMPTS, timeout=DEFAULT_TIMEOUT, backoff=DEFAULT_BACKOFF):
    """Register a function as a job on `queue` under `name` (default "<queue>.<function name>").

    The function takes ids as keyword arguments, does its database work in `db.session` without
    committing (the runner commits it together with the outbox entry, so it happens once) and is
    safe to run again if it fails part-way.
    """
    if queue not in QUEUES:
        raise ValueError(f"unknown queue {queue!r}: use one of {', '.join(QUEUES)}")
    if max_attempts < 1:
        raise ValueError("max_attempts must be at least 1")

    def register(func):
        spec = JobSpec(name or f"{queue}.{func.__name__}", queue, func, max_attempts, timeout, backoff)
        existing = _jobs.get(spec.name)
        if existing and _origin(existing.func) != _origin(func):
            raise ValueError(f"job name {spec.name!r} is already taken by {_origin(existing.func)}")
        _jobs[spec.name] = spec
        func.job_spec = spec
        return func

    return register


def _origin(func):
    return f"{func.__module__}.{func.__qualname__}"


def get(name):
    """Return the registered job called `name`; raise UnknownJob when there is none."""
    try:
        return _jobs[name]
    except KeyError:
        raise UnknownJob(name) from None


def find(name):
    """Return the registered job called `name`, or None."""
    return _jobs.get(name)


def names():
    """Return the names of all registered jobs, sorted."""
    return sorted(_jobs)
