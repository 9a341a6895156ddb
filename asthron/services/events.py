"""Domain events: collected during a transaction, handed to plugins (`track_event`) once it commits."""
from asthron.extensions import db
from asthron.services import after_commit

_KEY = "asthron_domain_events"


def emit(event):
    """Hand `event` (an `asthron.providers.events.Event`) to the plugins after the current transaction commits."""
    db.session().info.setdefault(_KEY, []).append(event)


def _deliver(events):
    from asthron import plugins

    for event in events:
        plugins.track_event(event)


after_commit.register(_KEY, _deliver)
