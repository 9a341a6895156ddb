"""Visitor API rate limits per client address, per conversation and per workspace.

Counters live in `RATELIMIT_STORAGE_URI` (Redis when `REDIS_URL` is set, memory otherwise), so every
web process counts together, as the sign-in limits do (asthron/login_limits.py). A sliding-window
counter keeps two numbers per key, however high a limit is set.
"""
import functools
import logging
import math
import time
from dataclasses import dataclass

from flask import current_app
from limits import parse
from limits.storage import storage_from_string
from limits.strategies import SlidingWindowCounterRateLimiter

from asthron.login_limits import _redis_error

log = logging.getLogger(__name__)

EXTENSION = "asthron_widget_limits"
NAMESPACE = "asthron-widget"
# The config key of each limit, what it counts, and its default.
DEFAULTS = {
    "ASTHRON_WIDGET_LIMIT_CONVERSATIONS_PER_IP": "20 per minute",
    "ASTHRON_WIDGET_LIMIT_MESSAGES_PER_CONVERSATION": "20 per minute",
    "ASTHRON_WIDGET_LIMIT_MESSAGES_PER_IP": "60 per minute",
    "ASTHRON_WIDGET_LIMIT_WRITES_PER_WORKSPACE": "600 per minute",
    "ASTHRON_WIDGET_LIMIT_READS_PER_IP": "600 per minute",
}


class RateLimited(Exception):
    """A visitor request is over a limit; `retry_after` says when to try again, in seconds."""

    def __init__(self, retry_after):
        super().__init__(f"over the limit; retry after {retry_after} s")
        self.retry_after = retry_after


@dataclass
class WidgetLimits:
    """A sliding-window limiter over one storage."""

    storage: object
    strategy: object


@functools.lru_cache(maxsize=32)
def _limit(text):
    return parse(text)


def hit(*checks):
    """Count one request against each `(config key, key parts...)` in turn; raise RateLimited at the first over.

    Pass the narrowest limit first: the limits after a refusing one are not counted. (Testing all
    before counting any would double the round trips to Redis on every visitor request.)
    """
    limits = current_app.extensions[EXTENSION]
    try:
        for name, *parts in checks:
            item, key = _limit(current_app.config.get(name) or DEFAULTS[name]), (name,) + tuple(map(str, parts))
            if not limits.strategy.hit(item, NAMESPACE, *key):
                raise RateLimited(_retry_after(limits, item, key))
    except (ConnectionError, OSError, _redis_error()) as exc:
        # Fail open: an outage of the counter store must not take every website's chat down.
        log.error("widget limit store unavailable (%s); request not counted", type(exc).__name__)


def _retry_after(limits, item, key):
    reset_at = limits.strategy.get_window_stats(item, NAMESPACE, *key).reset_time
    log.info("widget request over %s", key[0])
    return max(1, math.ceil(reset_at - time.time()))


def reset(app):
    """Forget every counted request of `app` (tests use this between cases)."""
    app.extensions[EXTENSION].storage.reset()


def init_app(app):
    """Give the app its visitor counters in the configured storage."""
    for name, default in DEFAULTS.items():
        app.config.setdefault(name, default)
    storage = storage_from_string(app.config.get("RATELIMIT_STORAGE_URI") or "memory://")
    app.extensions[EXTENSION] = WidgetLimits(storage, SlidingWindowCounterRateLimiter(storage))
