"""The slot cache: computed free ranges of a service's window, shared by the web processes through Redis.

Listing slots reads every booking and busy time of the service's people in the window, and a widget's
visitors ask for the same weeks again and again. The merged free ranges of a (service, window) are
kept in Redis beside the workspace's availability revision: a random token that is replaced after
every commit that touched the workspace's bookings, busy times, working hours, overrides, services
or what availability reads of a resource. An entry is used only while its token is the current one,
so a change is never hidden behind the cache; entries also expire after ASTHRON_SLOTS_CACHE_SECONDS,
which bounds what a lost token change (Redis unreachable at that moment) can cost. 0 turns the cache
off; without REDIS_URL there is none, and every listing is computed.

Booking never reads the cache: the slot a visitor books is checked against the database.
Writes that bypass the ORM (a bulk `delete(BusyBlock)`) must call `changed(session, workspace_id)`.
"""
import json
import logging
import secrets
from itertools import chain

from flask import current_app, has_app_context
from redis.exceptions import RedisError
from sqlalchemy import event as sa_event, inspect
from sqlalchemy.orm import Session

from asthron.extensions import db
from asthron.models.booking import Booking, BusyBlock, DateOverride, Resource, Service, WorkingHours
from asthron.services import after_commit

log = logging.getLogger(__name__)

WATCHED = (Booking, BusyBlock, DateOverride, Resource, Service, WorkingHours)
_PENDING = "asthron_availability_changed"  # session.info: workspace ids changed in this transaction


def enabled(app=None):
    """Say whether listings may use the cache: Redis is configured and the entry lifetime is positive."""
    app = app or current_app
    return bool(app.config.get("REDIS_URL")) and app.config.get("ASTHRON_SLOTS_CACHE_SECONDS", 0) > 0


def _revision_key(workspace_id):
    return f"asthron:slots:rev:{workspace_id}"


def _entry_key(service, first, last):
    return f"asthron:slots:{service.workspace_id}:{service.id}:{first}:{last}"


def ranges(service, first, last, compute):
    """Return the merged free ranges of `service` for starts in [first, last): cached, or `compute()`'d and kept."""
    if not has_app_context() or not enabled():
        return compute()
    db.session.flush()  # this transaction's own changes are not in the cache: compute instead
    if service.workspace_id in db.session.info.get(_PENDING, ()):
        return compute()
    from asthron.jobs import queue

    conn, key, revision_key = queue.connection(), _entry_key(service, first, last), _revision_key(service.workspace_id)
    try:
        revision, raw = conn.mget(revision_key, key)
        if revision is None:
            conn.set(revision_key, secrets.token_hex(8), nx=True)
            revision = conn.get(revision_key)
        if raw is not None:
            entry = json.loads(raw)
            if entry["revision"] == revision.decode():
                return [tuple(r) for r in entry["ranges"]]
    except (RedisError, ValueError, KeyError, TypeError, AttributeError):
        log.warning("slot cache unreadable; computing the slots", exc_info=True)
        return compute()
    found = compute()
    try:
        conn.set(key, json.dumps({"revision": revision.decode(), "ranges": found}),
                 ex=current_app.config["ASTHRON_SLOTS_CACHE_SECONDS"])
    except RedisError:
        log.warning("slot cache not written", exc_info=True)
    return found


def changed(session, workspace_id):
    """Note that this transaction changed the workspace's availability; its revision changes on commit."""
    session.info.setdefault(_PENDING, set()).add(workspace_id)


# What availability reads of a resource; its other columns (names, calendar bookkeeping such as the time
# of the last busy-time read) change without changing a slot.
RESOURCE_ATTRIBUTES = ("active", "time_zone", "workspace_id", "services")


def _changes_availability(session, instance):
    if instance in session.new or instance in session.deleted:
        return True
    if isinstance(instance, Resource):
        state = inspect(instance)
        return any(state.attrs[name].history.has_changes() for name in RESOURCE_ATTRIBUTES)
    return session.is_modified(instance)


def _before_flush(session, flush_context, instances):
    for instance in chain(session.new, session.dirty, session.deleted):
        if isinstance(instance, WATCHED) and instance.workspace_id is not None \
                and _changes_availability(session, instance):
            changed(session, instance.workspace_id)


def _change_revisions(workspace_ids):
    if not has_app_context() or not current_app.config.get("REDIS_URL"):
        return
    from asthron.jobs import queue

    try:
        pipe = queue.connection().pipeline(transaction=False)
        for workspace_id in workspace_ids:
            pipe.set(_revision_key(workspace_id), secrets.token_hex(8))
        pipe.execute()
    except RedisError:
        log.warning("slot cache revision of workspaces %s not changed; entries expire on their own",
                    sorted(workspace_ids), exc_info=True)


after_commit.register(_PENDING, _change_revisions)
if not getattr(Session, "_asthron_slot_cache", False):
    sa_event.listen(Session, "before_flush", _before_flush)
    Session._asthron_slot_cache = True
