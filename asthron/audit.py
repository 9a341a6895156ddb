"""Hash-chained audit log: the writer, the ORM listeners that feed it, and the verifier.

Each entry stores the previous entry's hash and SHA-256 over its own canonical JSON. Writers
serialise on the single `audit_head` row (a row lock on PostgreSQL, the write lock on SQLite), so
the chain stays linear across processes. On PostgreSQL a trigger refuses UPDATE and DELETE.
"""
import hashlib
import json
import logging
from datetime import datetime, timezone

from flask import g, has_request_context, request
from sqlalchemy import event, inspect, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from asthron.models.audit import AuditEntry, AuditHead

log = logging.getLogger(__name__)

GENESIS = "0" * 64
REDACTED = "[redacted]"
SECRET_MARKERS = ("password", "secret", "token", "api_key", "apikey", "private", "credential", "key_hash")
HASHED_FIELDS = ("seq", "created_at", "actor_id", "actor", "agency_id", "workspace_id", "ip", "action",
                 "target_type", "target_id", "details", "prev_hash")


def is_secret_field(name):
    """Say whether a field name holds a secret that must never be logged."""
    lowered = name.lower()
    return lowered != "public_key" and any(m in lowered for m in SECRET_MARKERS)


def redact(values):
    """Return a copy of a mapping with secret-looking fields replaced, recursively."""
    if isinstance(values, dict):
        return {k: (REDACTED if is_secret_field(str(k)) else redact(v)) for k, v in values.items()}
    if isinstance(values, list):
        return [redact(v) for v in values]
    return values


def entry_hash(fields):
    """Return SHA-256 over the canonical JSON of an entry's hashed fields."""
    payload = {k: fields.get(k) for k in HASHED_FIELDS}
    if isinstance(payload["created_at"], datetime):
        payload["created_at"] = _iso(payload["created_at"])
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str, ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _iso(moment):
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _jsonable(value):
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, datetime):
        return _iso(value)
    if hasattr(value, "value"):
        return value.value
    if isinstance(value, (list, tuple, set)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return str(value)


def _request_actor():
    actor = {"actor_id": None, "actor": "system", "ip": None}
    if not has_request_context():
        return actor
    actor["ip"] = request.remote_addr
    override = g.get("audit_actor")
    if override:
        actor.update(override)
        return actor
    try:
        from flask import current_app

        user = current_app.appbuilder.sm.current_user
    except Exception:  # the security manager is not ready (app start-up)
        user = None
    if user is not None and getattr(user, "is_authenticated", False):
        actor.update(actor_id=user.id, actor=user.username)
    else:
        actor["actor"] = "anonymous"
    return actor


def write(connection, *, action, target_type=None, target_id=None, workspace_id=None, agency_id=None,
          details=None, actor_id=None, actor=None):
    """Append one entry to the chain on `connection` (inside the caller's transaction)."""
    who = _request_actor()
    if actor is not None:
        who.update(actor_id=actor_id, actor=actor)
    if agency_id is None and workspace_id is not None:
        from asthron.models.tenancy import Workspace

        agency_id = connection.execute(select(Workspace.agency_id).where(Workspace.id == workspace_id)).scalar()
    seq, prev = _advance_head(connection)
    fields = {
        "seq": seq, "created_at": datetime.now(timezone.utc), "actor_id": who["actor_id"],
        "actor": who["actor"] or "system", "agency_id": agency_id, "workspace_id": workspace_id,
        "ip": who["ip"], "action": action, "target_type": target_type,
        "target_id": None if target_id is None else str(target_id),
        "details": _jsonable(redact(details or {})), "prev_hash": prev,
    }
    fields["entry_hash"] = entry_hash(fields)
    connection.execute(insert(AuditEntry).values(**fields))
    connection.execute(update(AuditHead).where(AuditHead.id == 1).values(last_hash=fields["entry_hash"]))
    return fields


def _advance_head(connection):
    """Lock the head row and take the next sequence number; create the head on first use."""
    bump = (update(AuditHead).where(AuditHead.id == 1).values(seq=AuditHead.seq + 1)
            .returning(AuditHead.seq, AuditHead.last_hash))
    head = connection.execute(bump).first()
    if head is None:
        dialect_insert = {"postgresql": pg_insert, "sqlite": sqlite_insert}[connection.dialect.name]
        connection.execute(dialect_insert(AuditHead).values(id=1, seq=0, last_hash=GENESIS)
                           .on_conflict_do_nothing(index_elements=["id"]))
        head = connection.execute(bump).first()
    return head


def record(action, **kwargs):
    """Append an entry in its own transaction and commit it (logins, denials, exports)."""
    from asthron.extensions import db

    with db.engine.begin() as connection:
        return write(connection, action=action, **kwargs)


def record_in_session(action, **kwargs):
    """Append an entry inside the current session's transaction; it commits with the change."""
    from asthron.extensions import db

    return write(db.session.connection(), action=action, **kwargs)


# --- ORM listeners: create, update, delete of audited rows -----------------------------------------

# Models audited besides the tenant-owned ones: {class: (ignored columns, audited relationships)}.
_TRACKED = {}


def track(model, *, ignore=(), relationships=()):
    """Audit changes to `model` too, skipping `ignore` columns and diffing `relationships` by name."""
    _TRACKED[model] = (frozenset(ignore), tuple(relationships))


def _is_audited(obj):
    if isinstance(obj, AuditEntry):
        return False
    flag = getattr(type(obj), "__audited__", None)
    if flag is not None:
        return flag
    return type(obj) in _TRACKED or hasattr(type(obj), "tenant_clause")


def _ignored(obj):
    return _TRACKED.get(type(obj), (frozenset(), ()))[0] | frozenset(getattr(type(obj), "__audit_ignore__", ()))


def _column_values(obj):
    mapper = inspect(obj).mapper
    return {attr.key: _jsonable(getattr(obj, attr.key)) for attr in mapper.column_attrs
            if attr.key not in _ignored(obj)}


def _relationship_diff(obj):
    changes = {}
    state = inspect(obj)
    for name in _TRACKED.get(type(obj), ((), ()))[1]:
        hist = state.attrs[name].history
        if hist.added or hist.deleted:
            changes[name] = {"added": sorted(str(v) for v in hist.added),
                             "removed": sorted(str(v) for v in hist.deleted)}
    return changes


def _diff(session, obj):
    changes, unknown = {}, []
    state = inspect(obj)
    for attr in state.mapper.column_attrs:
        hist = state.attrs[attr.key].history
        if hist.has_changes():
            if not hist.deleted and not hist.unchanged:
                unknown.append(attr)  # expired before the change: read the stored value below
            old = hist.deleted[0] if hist.deleted else None
            new = hist.added[0] if hist.added else None
            changes[attr.key] = [old, new]
    if unknown and state.identity:
        pk_col = state.mapper.primary_key[0]
        row = session.connection().execute(
            select(*[attr.columns[0] for attr in unknown]).where(pk_col == state.identity[0])).first()
        if row is not None:
            for attr, value in zip(unknown, row):
                changes[attr.key][0] = value
    return {key: {"old": _jsonable(old), "new": _jsonable(new)}
            for key, (old, new) in changes.items() if _jsonable(old) != _jsonable(new)}


def _tenant_of(obj):
    from asthron.models.tenancy import Agency, Workspace

    if isinstance(obj, Workspace):
        return obj.id, obj.agency_id
    if isinstance(obj, Agency):
        return None, obj.id
    return getattr(obj, "workspace_id", None), getattr(obj, "agency_id", None)


def _before_flush(session, flush_context, instances):
    pending = session.info.setdefault("audit_pending", [])
    for obj in session.dirty:
        if _is_audited(obj) and session.is_modified(obj):
            changes = {k: v for k, v in _diff(session, obj).items() if k not in _ignored(obj)}
            changes.update(_relationship_diff(obj))
            if changes:
                pending.append(("update", obj, changes))
    for obj in session.deleted:
        if _is_audited(obj):
            pending.append(("delete", obj, _column_values(obj)))
    for obj in session.new:
        if _is_audited(obj):
            pending.append(("create", obj, None))


def _after_flush(session, flush_context):
    pending = session.info.pop("audit_pending", [])
    connection = session.connection()
    for verb, obj, details in pending:
        if verb == "create":
            details = {k: {"new": v} for k, v in _column_values(obj).items() if v is not None}
        elif verb == "update":
            pass
        else:
            details = {"deleted": details}
        ws_id, ag_id = _tenant_of(obj)
        write(connection, action=f"{type(obj).__tablename__}.{verb}", target_type=type(obj).__name__,
              target_id=inspect(obj).identity[0] if inspect(obj).identity else None,
              workspace_id=ws_id, agency_id=ag_id, details=details)


def _after_rollback(session):
    session.info.pop("audit_pending", None)


def init_app(app):
    """Install the listeners that audit every change to a tenant-owned row."""
    if not getattr(Session, "_asthron_audit", False):
        event.listen(Session, "before_flush", _before_flush)
        event.listen(Session, "after_flush", _after_flush)
        event.listen(Session, "after_soft_rollback", lambda s, t: _after_rollback(s))
        Session._asthron_audit = True


# --- verification --------------------------------------------------------------------------------

class ChainBroken(Exception):
    """The audit chain does not verify; the message names the first broken entry."""


def verify(session, batch=5000):
    """Walk the chain in order and return the number of entries; raise ChainBroken at the first fault."""
    from asthron.tenancy import unrestricted

    expected_prev, expected_seq, count = GENESIS, 1, 0
    with unrestricted():
        while True:
            rows = session.execute(select(AuditEntry).where(AuditEntry.seq >= expected_seq)
                                   .order_by(AuditEntry.seq).limit(batch)).scalars().all()
            if not rows:
                break
            for row in rows:
                if row.seq != expected_seq:
                    raise ChainBroken(f"entry seq {expected_seq} is missing "
                                      f"(next present is seq {row.seq}, id {row.id})")
                fields = {k: getattr(row, k) for k in HASHED_FIELDS}
                if row.prev_hash != expected_prev:
                    raise ChainBroken(f"entry seq {row.seq} (id {row.id}) does not follow the previous entry")
                if entry_hash(fields) != row.entry_hash:
                    raise ChainBroken(f"entry seq {row.seq} (id {row.id}) was altered: its hash does not match")
                expected_prev, expected_seq, count = row.entry_hash, row.seq + 1, count + 1
            session.expunge_all()
        head = session.execute(select(AuditHead).where(AuditHead.id == 1)).scalar()
        if head is not None and (head.seq != count or head.last_hash != expected_prev):
            raise ChainBroken(f"the chain ends at seq {count} but the head records seq {head.seq}: "
                              "entries after it were deleted")
    return count
