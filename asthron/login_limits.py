"""Sign-in attempt limits per username and per client address, shared by every process.

Counters live in `RATELIMIT_STORAGE_URI` (Redis when `REDIS_URL` is set, memory otherwise), so all
gunicorn processes and machines count together. Each app keeps its own storage object, because
Flask-Limiter's single `limiter` extension can hold only one storage across apps.
"""
import functools
import hashlib
import logging
import math
import time

from flask import current_app, request
from limits import parse
from limits.storage import storage_from_string
from limits.strategies import MovingWindowRateLimiter
from werkzeug.exceptions import TooManyRequests

log = logging.getLogger(__name__)

EXTENSION = "asthron_login_limits"
NAMESPACE = "asthron-login"


class LoginLimits:
    """A moving-window limiter over one storage."""

    def __init__(self, storage_uri):
        self.storage = storage_from_string(storage_uri)
        self.strategy = MovingWindowRateLimiter(self.storage)


@functools.lru_cache(maxsize=8)
def _limit(text):
    return parse(text)


def _keys(username):
    # Hash the username: the counter store need not hold who tried to sign in.
    name = hashlib.sha256((username or "").strip().lower().encode()).hexdigest()[:32]
    return [("ip", request.remote_addr or "unknown"), ("user", name)]


def check_login_attempt(username):
    """Count one sign-in attempt; raise TooManyRequests (with Retry-After) when over the limit."""
    limits = current_app.extensions[EXTENSION]
    item = _limit(current_app.config["ASTHRON_LOGIN_RATE_LIMIT"])
    try:
        for key in _keys(username):
            if not limits.strategy.hit(item, NAMESPACE, *key):
                reset_at = limits.strategy.get_window_stats(item, NAMESPACE, *key).reset_time
                log.warning("sign-in attempts over the limit (%s)", key[0])
                raise TooManyRequests(retry_after=max(1, math.ceil(reset_at - time.time())))
    except (ConnectionError, OSError, _redis_error()) as exc:
        # Fail open: an outage of the counter store must not lock every user out of the admin.
        log.error("sign-in limit store unavailable (%s); attempt not counted", type(exc).__name__)


def _redis_error():
    try:
        from redis.exceptions import RedisError
    except ImportError:  # the memory store needs no redis package
        return ConnectionError
    return RedisError


def reset(app):
    """Forget every counted attempt of `app` (tests use this between cases)."""
    app.extensions[EXTENSION].storage.reset()


def init_app(app):
    """Give the app its attempt counters in the configured storage."""
    app.extensions[EXTENSION] = LoginLimits(app.config.get("RATELIMIT_STORAGE_URI") or "memory://")
