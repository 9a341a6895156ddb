"""The private ICS feed of a resource: its confirmed bookings, for any calendar app to subscribe to.

The feed's address carries a random token; only its SHA-256 is stored, so the address is shown once,
when it is made, and a database leak does not reveal it. Making a new one retires the old address.
Events hold the service, the time and the booking reference, and no visitor details: calendar apps
fetch subscribed feeds from their own servers and keep copies, so the visitor's name and contact
details stay in the admin.
"""
import hashlib
import hmac
import secrets
from datetime import UTC, datetime, timedelta

from flask import current_app
from icalendar import Calendar, Event
from sqlalchemy import select

from asthron.extensions import db
from asthron.models.booking import Booking, BookingStatus, Resource
from asthron.services.availability import as_utc
from asthron.services.calendar_sync import event_for, event_uid
from asthron.tenancy import unrestricted

TOKEN_BYTES = 32
MAX_EVENTS = 2000


def _digest(token):
    return hashlib.sha256(token.encode()).hexdigest()


def new_feed_token(resource):
    """Give the resource a new feed token (the old address stops working); return the token to show once."""
    token = secrets.token_urlsafe(TOKEN_BYTES)
    resource.feed_token_hash = _digest(token)
    return token


def revoke_feed(resource):
    """Turn the resource's feed off."""
    resource.feed_token_hash = None


def resource_for_token(token):
    """Return the resource whose feed token this is, or None."""
    if not token or len(token) > 200:
        return None
    digest = _digest(token)
    with unrestricted():  # the token is the credential; nobody is signed in
        resource = db.session.scalars(select(Resource).where(Resource.feed_token_hash == digest)).first()
    if resource is None or not hmac.compare_digest(resource.feed_token_hash, digest):
        return None
    return resource


def feed_ics(resource, *, now=None):
    """Return the resource's confirmed bookings from ASTHRON_CALENDAR_FEED_PAST_DAYS ago onwards as iCalendar bytes."""
    now = now or datetime.now(UTC)
    since = now - timedelta(days=current_app.config.get("ASTHRON_CALENDAR_FEED_PAST_DAYS", 30))
    with unrestricted():
        bookings = db.session.scalars(
            select(Booking).where(Booking.resource_id == resource.id, Booking.status == BookingStatus.confirmed,
                                  Booking.end_at > since).order_by(Booking.start_at).limit(MAX_EVENTS)).all()
        calendar = Calendar()
        calendar.add("prodid", "-//Asthron//Staff feed//EN")
        calendar.add("version", "2.0")
        calendar.add("calscale", "GREGORIAN")
        calendar.add("x-wr-calname", f"{resource.name}: bookings")
        calendar.add("refresh-interval", timedelta(minutes=15), parameters={"VALUE": "DURATION"})
        for booking in bookings:
            calendar.add_component(_vevent(booking, now))
    return calendar.to_ical()


def _vevent(booking, now):
    source = event_for(booking)
    event = Event()
    event.add("uid", event_uid(booking))
    event.add("dtstamp", now)
    event.add("dtstart", as_utc(booking.start_at))
    event.add("dtend", as_utc(booking.end_at))
    event.add("summary", source.summary)
    event.add("description", source.description)
    if source.location:
        event.add("location", source.location)
    event.add("status", "CONFIRMED")
    event.add("last-modified", as_utc(booking.updated_at or booking.created_at))
    return event
