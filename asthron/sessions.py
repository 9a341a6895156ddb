"""Server-side sign-in sessions: started at login, checked on every request, revocable from the server.

Flask's session is a signed cookie, so on its own a copied cookie would stay valid until it
expires. Each login therefore creates a `UserSession` row and keeps a random id for it in the
cookie; the row stores only the id's SHA-256. The Flask-Login user loader (see
`AsthronSecurityManager.load_session_user`) accepts a user only while that row exists, is not
revoked and is within the idle (`ASTHRON_SESSION_IDLE_MINUTES`) and absolute
(`PERMANENT_SESSION_LIFETIME`) limits. A "remember me" cookie carries no session id and so never
signs anyone in.

The module talks to the database through Core on its own connections, not the request's ORM
session: the loader runs lazily, possibly while a view has changes pending, and must neither
commit them nor trip the tenant guard's scope lookup (which itself loads the user).
"""
import hashlib
import logging
import secrets
from datetime import UTC, timedelta

from flask import current_app, has_request_context, request, session
from sqlalchemy import event, insert, inspect, select, update
from sqlalchemy.orm import Session

from asthron.models.base import utcnow
from asthron.models.security import UserSession

log = logging.getLogger(__name__)

SESSION_KEY = "_asthron_sid"
# Flask-Login's keys; removing them signs the browser out without touching its other session data.
LOGIN_KEYS = ("_user_id", "_fresh", "_id", SESSION_KEY)
# Write `last_seen_at` at most this often, so that browsing does not write on every request.
TOUCH_INTERVAL = timedelta(seconds=60)
TABLE = UserSession.__table__


def token_hash(token):
    """Return the stored form (SHA-256, hex) of a session id."""
    return hashlib.sha256(token.encode()).hexdigest()


def _aware(moment):
    # SQLite hands back naive datetimes for timezone-aware columns; they were written in UTC.
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def _engine():
    from asthron.extensions import db

    return db.engine


def start_session(user_id):
    """Create a session record for `user_id` and keep its id in the browser's session."""
    token = secrets.token_urlsafe(32)
    now = utcnow()
    with _engine().begin() as conn:
        conn.execute(insert(TABLE).values(
            token_hash=token_hash(token), user_id=user_id, created_at=now, last_seen_at=now,
            ip=(request.remote_addr or "")[:64] or None,
            user_agent=(request.user_agent.string or "")[:256] or None))
    session[SESSION_KEY] = token


def current_token_hash():
    """Return the stored form of this browser's session id, or None outside a signed-in request."""
    if not has_request_context() or not session.get(SESSION_KEY):
        return None
    return token_hash(session[SESSION_KEY])


def is_valid(user_id):
    """Say whether this request's session record is live for `user_id`; end it if it has expired."""
    hashed = current_token_hash()
    if hashed is None:
        return False
    with _engine().connect() as conn:
        row = conn.execute(select(TABLE.c.id, TABLE.c.user_id, TABLE.c.created_at, TABLE.c.last_seen_at,
                                  TABLE.c.revoked_at).where(TABLE.c.token_hash == hashed)).first()
    if row is None or row.user_id != user_id or row.revoked_at is not None:
        return False
    now = utcnow()
    idle = timedelta(minutes=current_app.config["ASTHRON_SESSION_IDLE_MINUTES"])
    if now - _aware(row.created_at) > current_app.config["PERMANENT_SESSION_LIFETIME"] \
            or now - _aware(row.last_seen_at) > idle:
        with _engine().begin() as conn:
            _revoke(conn, TABLE.c.id == row.id, reason="expired")
        return False
    if now - _aware(row.last_seen_at) > TOUCH_INTERVAL:
        with _engine().begin() as conn:
            conn.execute(update(TABLE).where(TABLE.c.id == row.id).values(last_seen_at=now))
    return True


def forget():
    """Sign this browser out locally: drop the login keys and have Flask-Login delete its cookie."""
    for key in LOGIN_KEYS:
        session.pop(key, None)
    if current_app.config.get("REMEMBER_COOKIE_NAME", "remember_token") in request.cookies:
        session["_remember"] = "clear"


def _revoke(conn, condition, *, reason):
    result = conn.execute(update(TABLE).where(condition, TABLE.c.revoked_at.is_(None))
                          .values(revoked_at=utcnow(), revoke_reason=reason))
    return result.rowcount


def revoke_user_sessions(user_id, *, reason, connection=None, keep_current=False):
    """Revoke every live session of a user (but this browser's when `keep_current`); return how many.

    Pass the caller's `connection` to make the revocation part of its transaction.
    """
    condition = TABLE.c.user_id == user_id
    current = current_token_hash() if keep_current else None
    if current is not None:
        condition = condition & (TABLE.c.token_hash != current)
    if connection is not None:
        return _revoke(connection, condition, reason=reason)
    with _engine().begin() as conn:
        return _revoke(conn, condition, reason=reason)


def _revoke_on_deactivation(db_session, flush_context, instances):
    from flask_appbuilder.security.sqla.models import User

    from asthron import audit

    for obj in list(db_session.dirty):
        if not isinstance(obj, User) or obj.active or obj.id is None:
            continue
        if not inspect(obj).attrs.active.history.has_changes():
            continue
        conn = db_session.connection()
        count = revoke_user_sessions(obj.id, reason="deactivated", connection=conn)
        audit.write(conn, action="sessions.revoke", target_type="User", target_id=obj.id,
                    details={"reason": "deactivated", "count": count})


def _on_login(app, user, **extra):
    start_session(user.id)


def init_app(app):
    """Start a session record at every login and revoke a user's sessions when they are deactivated."""
    from flask_login import user_logged_in

    user_logged_in.connect(_on_login, app)
    if not getattr(Session, "_asthron_sessions", False):
        event.listen(Session, "before_flush", _revoke_on_deactivation)
        Session._asthron_sessions = True
