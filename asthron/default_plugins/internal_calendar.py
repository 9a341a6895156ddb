"""The internal calendar: bookings live only in Asthron, with no outside calendar to read or write.

Busy times are the resource's own bookings, which availability already subtracts, so this backend
reports none; writing an event only returns the booking's uid, and deleting one does nothing. Staff
who want their bookings in a calendar app subscribe to their private ICS feed (docs/calendar.md).
"""
from asthron.hookspecs import hookimpl
from asthron.providers.calendar import CalendarBackend


class InternalCalendar(CalendarBackend):
    """No external calendar: nothing to read, writes are no-ops that return the booking's uid."""

    name = "internal"
    label = "Internal calendar (with a private ICS feed)"

    def busy_times(self, *, settings, start, end):
        return []

    def create_event(self, *, settings, event):
        if not event.uid:
            raise ValueError("the internal calendar needs the booking's uid as the event's id")
        return event.uid

    def delete_event(self, *, settings, event_id):
        return None


@hookimpl
def register_calendar_backends(register):
    register(InternalCalendar())
