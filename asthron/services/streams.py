"""Live conversation events: published by whoever changes a conversation, read by its SSE stream.

With REDIS_URL the events travel over Redis pub/sub (any web process can serve any visitor); in the
embedded mode an in-process broker carries them, which is enough because the one web process runs the
jobs too. Events are dicts: `token`, `message`, `state` (see docs/widget.md). The database stays the
source of truth; a stream that missed something catches up from stored messages on reconnect.
"""
import json
import queue as queue_module
import threading
import time
from contextlib import contextmanager

from flask import current_app

CHANNEL = "asthron:conv:{}"


def publish(conversation_id, event, app=None):
    """Send one event to every open stream of a conversation (never raises: live delivery is best effort)."""
    app = app or current_app._get_current_object()
    try:
        if app.config.get("REDIS_URL"):
            from asthron.jobs.queue import connection

            connection(app).publish(CHANNEL.format(conversation_id), json.dumps(event))
        else:
            _local_broker(app).publish(conversation_id, event)
    except Exception as exc:  # a stream that misses an event catches up from the database
        app.logger.warning("live event for %s not delivered: %s", conversation_id, type(exc).__name__)


@contextmanager
def subscribe(conversation_id, app=None):
    """Yield a `get(timeout) -> event or None` function for one conversation's events."""
    with subscribe_many([conversation_id], app=app) as get:
        yield get


@contextmanager
def subscribe_many(keys, app=None):
    """Yield a `get(timeout) -> event or None` function for the events of several keys at once (staff inboxes)."""
    app = app or current_app._get_current_object()
    keys = list(keys)
    if app.config.get("REDIS_URL"):
        from asthron.jobs.queue import connection

        pubsub = connection(app).pubsub(ignore_subscribe_messages=True)
        try:
            if keys:
                pubsub.subscribe(*[CHANNEL.format(key) for key in keys])
                _confirm(pubsub, count=len(keys))

            def get(timeout):
                if not keys:
                    time.sleep(timeout)
                    return None
                message = pubsub.get_message(timeout=timeout)
                return json.loads(message["data"]) if message else None

            yield get
        finally:
            pubsub.close()
    else:
        broker, inbox = _local_broker(app), queue_module.Queue(maxsize=1000)
        for key in keys:
            broker.subscribe(key, inbox)
        try:
            def get(timeout):
                try:
                    return inbox.get(timeout=timeout)
                except queue_module.Empty:
                    return None

            yield get
        finally:
            for key in keys:
                broker.unsubscribe(key, inbox)


def _confirm(pubsub, timeout=2.0, count=1):
    # SUBSCRIBE is sent without waiting; a caller that reads the database next must know that every
    # event published from now on reaches it, so wait for Redis to confirm the subscription.
    deadline = time.monotonic() + timeout
    pubsub.ignore_subscribe_messages = False
    try:
        while time.monotonic() < deadline:
            message = pubsub.get_message(timeout=max(0.0, deadline - time.monotonic()))
            if message and message["type"] == "subscribe":
                count -= 1
                if count <= 0:
                    return
    finally:
        pubsub.ignore_subscribe_messages = True


class LocalBroker:
    """An in-process fan-out of events to subscriber queues, for the embedded mode."""

    def __init__(self):
        self._lock = threading.Lock()
        self._subscribers = {}

    def subscribe(self, key, inbox=None):
        inbox = queue_module.Queue(maxsize=1000) if inbox is None else inbox
        with self._lock:
            self._subscribers.setdefault(key, set()).add(inbox)
        return inbox

    def unsubscribe(self, key, inbox):
        with self._lock:
            inboxes = self._subscribers.get(key, set())
            inboxes.discard(inbox)
            if not inboxes:
                self._subscribers.pop(key, None)

    def publish(self, key, event):
        with self._lock:
            inboxes = list(self._subscribers.get(key, ()))
        for inbox in inboxes:
            try:
                inbox.put_nowait(event)
            except queue_module.Full:  # a stalled reader; it will catch up from the database
                pass


def _local_broker(app):
    return app.extensions.setdefault("asthron_local_broker", LocalBroker())
