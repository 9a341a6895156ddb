"""Work a transaction collects in its session and does once it really committed.

A module registers a key of `session.info` and a handler; whatever the transaction left under that
key is handed to the handler after the outermost commit (SQLAlchemy reports a released SAVEPOINT as a
commit too), and dropped when the outermost transaction ends without one.
"""
from sqlalchemy import event as sa_event
from sqlalchemy.orm import Session

_handlers = {}


def register(key, handler):
    """Call `handler(value)` with the non-empty `session.info[key]` after the session's real commit."""
    _handlers[key] = handler


def _after_commit(session):
    if session.in_nested_transaction():
        return  # a released SAVEPOINT: wait for the real commit
    for key, handler in list(_handlers.items()):
        value = session.info.pop(key, None)
        if value:
            handler(value)


def _after_transaction_end(session, transaction):
    # The outermost transaction ended without a commit (a commit took the values already).
    if transaction.parent is None:
        for key in _handlers:
            session.info.pop(key, None)


if not getattr(Session, "_asthron_after_commit", False):
    sa_event.listen(Session, "after_commit", _after_commit)
    sa_event.listen(Session, "after_transaction_end", _after_transaction_end)
    Session._asthron_after_commit = True
