"""One visitor's server-sent event stream: stored messages after the last seen id, then live events.

The stream subscribes before it reads the backlog, so an event published meanwhile waits in the
subscription; live messages with an id already sent are skipped, so nothing is lost or doubled. It
ends after ASTHRON_SSE_MAX_SECONDS (the browser reconnects with Last-Event-ID) and sends a comment
every ASTHRON_SSE_KEEPALIVE_SECONDS so proxies keep the connection open.
"""
import json
import time

from asthron import tenancy
from asthron.extensions import db
from asthron.services import conversations as service
from asthron.services import streams

RETRY = "retry: 1000\n\n"
KEEPALIVE = ": keepalive\n\n"


def frame(event, data, event_id=None):
    """Return one SSE frame."""
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


def backlog(conversation_id, scope, after):
    """Return every stored message of the conversation after id `after`, as message JSON, oldest first."""
    found = []
    with tenancy.scoped(scope):
        while True:
            page = service.list_messages(conversation_id, after=after, limit=service.PAGE_SIZE)
            found.extend(service.message_json(m) for m in page)
            if len(page) < service.PAGE_SIZE:
                return found
            after = page[-1].id


def live_frame(event, last_id):
    """Return (frame or None, new last id) for one published event."""
    kind = event.get("type")
    if kind == "message":
        message = event.get("message") or {}
        if not isinstance(message.get("id"), int) or message["id"] <= last_id:
            return None, last_id  # already sent from the backlog
        if message.get("role") not in {role.value for role in service.VISITOR_ROLES}:
            return None, last_id  # an internal note published by mistake still stops here
        return frame("message", message, message["id"]), message["id"]
    if kind == "token":
        return frame("token", {"reply_to": event.get("reply_to"), "text": event.get("text", "")}), last_id
    if kind == "state":
        data = {"owner": event.get("owner"), "needs_human": event.get("needs_human")}
        if event.get("staff"):
            data["staff"] = event["staff"]  # the display name of the staff member who answers now
        return frame("state", data), last_id
    if kind == "lead_form":  # the assistant wants the lead form shown, for the keys it still lacks
        return frame("lead_form", {"missing": [k for k in event.get("missing") or [] if isinstance(k, str)]}), last_id
    return None, last_id


def events(app, conversation_id, scope, last_id):
    """Yield the stream's frames for `conversation_id` from message id `last_id` on."""
    max_seconds = app.config.get("ASTHRON_SSE_MAX_SECONDS", 25)
    keepalive = app.config.get("ASTHRON_SSE_KEEPALIVE_SECONDS", 15)
    deadline = time.monotonic() + max_seconds
    with streams.subscribe(conversation_id, app=app) as get:
        stored = backlog(conversation_id, scope, last_id)
        db.session.remove()  # the live part needs no database connection: give it back
        yield RETRY
        for message in stored:
            yield frame("message", message, message["id"])
            last_id = message["id"]
        next_keepalive = time.monotonic() + keepalive
        while (now := time.monotonic()) < deadline:
            event = get(max(0.0, min(deadline, next_keepalive) - now))
            if event is None:
                if time.monotonic() >= next_keepalive:
                    yield KEEPALIVE
                    next_keepalive = time.monotonic() + keepalive
                continue
            text, last_id = live_frame(event, last_id)
            if text:
                yield text
        yield RETRY
