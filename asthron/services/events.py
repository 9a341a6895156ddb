"""Domain events: collected during a transaction, handed to plugins (`track_event`) once it commits."""
from sqlalchemy import event as sa_event
from sqlalchemy.orm import Session

from asthron.extensions import db

_KEY = "asthron_domain_events"


def emit(event):
    """Hand `event` (an `asthron.providers.events.Event`) to the plugins after the current transaction commits."""
    db.session().info.setdefault(_KEY, []).append(event)


def _deliver(session):
    from asthron import plugins

    if session.in_nested_transaction():
        return  # a released SAVEPOINT counts as a commit to SQLAlchemy; wait for the real one
    for event in session.info.pop(_KEY, []):
        plugins.track_event(event)


def _drop(session, transaction):
    # The outermost transaction ended without a commit (a commit delivered and popped them already).
    if transaction.parent is None:
        session.info.pop(_KEY, None)


if not getattr(Session, "_asthron_domain_events", False):
    sa_event.listen(Session, "after_commit", _deliver)
    sa_event.listen(Session, "after_transaction_end", _drop)
    Session._asthron_domain_events = True
