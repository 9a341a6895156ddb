"""The CalDAV calendar backend: busy times from, and booking events in, a staff member's CalDAV calendar.

Works with any CalDAV server (Nextcloud, Fastmail, iCloud with an app password, Radicale, Baïkal)
through the `caldav` library. Settings (secrets as `$env` references, resolved by the core):

- `url`: the server's CalDAV address, e.g. `https://cloud.example/remote.php/dav`.
- `username`, `password` (`{"$env": "VAR"}`).
- `calendar_url` (the calendar's own address) or `calendar` (its display name); neither means the
  account's first calendar.
- `freebusy` (default true): read busy times with a free-busy report; false, or a server that refuses
  the report, searches the events in the range instead (transparent and cancelled events skipped).
- `time_zone` (default "UTC"): the zone all-day events are placed in.
- `timeout` (seconds, default 20).

An event is written with a PUT under the booking's uid, so writing the same booking twice updates
one event; deleting an event that is already gone is not an error. Network failures, timeouts, 429
and 5xx answers raise a retryable CalendarError; 401/403 (credentials), 404 (no such calendar) and
other refusals a non-retryable one. Messages name the HTTP status, never a password or the server's
own text. The CalDAV server is the customer's own choice of calendar, so no sub-processor is declared.
"""
import logging
from contextlib import contextmanager
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import caldav
import icalendar
from caldav.lib import error as dav_error
from caldav.lib.http_sync import requests as dav_http

from asthron.hookspecs import hookimpl
from asthron.providers.calendar import BusyPeriod, CalendarBackend, CalendarError

__version__ = "1.0.0"

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 20
BUSY_TYPES = {"BUSY", "BUSY-UNAVAILABLE", "BUSY-TENTATIVE"}
PRODID = "-//Asthron//Bookings//EN"


class CalDAVCalendar(CalendarBackend):
    """A CalDAV calendar reached with a user name and password."""

    name = "caldav"
    label = "CalDAV (Nextcloud, Fastmail, iCloud, Radicale, ...)"

    def busy_times(self, *, settings, start, end):
        with _errors_mapped():
            calendar = _calendar(settings)
            periods = None
            if settings.get("freebusy", True) not in (False, "false", "0", 0):
                periods = _freebusy(calendar, start, end)
            if periods is None:
                periods = _searched(calendar, start, end, _zone(settings))
        return sorted((p for p in periods if p.start < end and p.end > start), key=lambda p: (p.start, p.end))

    def create_event(self, *, settings, event):
        if not event.uid:
            raise CalendarError("the CalDAV backend needs the booking's uid to write its event")
        with _errors_mapped():
            # add_event PUTs to <calendar>/<uid>.ics: a second write replaces the first.
            _calendar(settings).add_event(_ics(event))
        return event.uid

    def delete_event(self, *, settings, event_id):
        with _errors_mapped():
            calendar = _calendar(settings)
            try:
                calendar.event_by_uid(event_id).delete()
            except dav_error.NotFoundError:
                calendar.get_display_name()  # a missing calendar is an error (404); a missing event is not
                log.info("CalDAV event to delete was already gone")


def _client(settings):
    url = (settings.get("url") or "").strip()
    if not url.startswith(("http://", "https://")):
        raise CalendarError("the CalDAV settings need the server's http(s) address in `url`")
    return caldav.DAVClient(url=url, username=settings.get("username") or None,
                            password=settings.get("password") or None,
                            timeout=float(settings.get("timeout") or DEFAULT_TIMEOUT))


def _calendar(settings):
    client = _client(settings)
    if settings.get("calendar_url"):
        return client.calendar(url=settings["calendar_url"])
    principal = client.principal()
    if settings.get("calendar"):
        return principal.calendar(name=settings["calendar"])
    calendars = principal.calendars()
    if not calendars:
        raise CalendarError("the CalDAV account has no calendar; create one or name it in `calendar_url`")
    return calendars[0]


def _freebusy(calendar, start, end):
    """Return the busy periods of a free-busy report, or None when the server does not offer the report."""
    try:
        answer = calendar.freebusy_request(start.astimezone(UTC), end.astimezone(UTC))
        parsed = icalendar.Calendar.from_ical(answer.data)
    except dav_error.AuthorizationError:
        raise
    except (dav_error.ReportError, dav_error.ResponseError, ValueError) as exc:
        if getattr(exc, "status", None) and exc.status >= 500:
            raise
        log.info("the CalDAV server refused the free-busy report (%s); searching events instead",
                 type(exc).__name__)
        return None
    periods = []
    for component in parsed.walk("VFREEBUSY"):
        lines = component.get("FREEBUSY") or []
        for line in lines if isinstance(lines, list) else [lines]:
            if str(line.params.get("FBTYPE", "BUSY")).upper() not in BUSY_TYPES:
                continue
            for value in _period_values(line):
                periods.append(value)
    return periods


def _period_values(line):
    # One FREEBUSY line may list several comma-separated periods; icalendar gives them as vPeriods.
    values = line if isinstance(line, list) else [line]
    for value in values:
        begin, finish = value.dt if hasattr(value, "dt") else value
        if isinstance(finish, timedelta):
            finish = begin + finish
        if begin < finish:
            yield BusyPeriod(start=_utc(begin), end=_utc(finish))


def _searched(calendar, start, end, zone):
    periods = []
    for found in calendar.search(start=start, end=end, event=True, expand=True):
        component = found.icalendar_component
        if str(component.get("TRANSP", "OPAQUE")).upper() == "TRANSPARENT":
            continue
        if str(component.get("STATUS", "")).upper() == "CANCELLED":
            continue
        span = _span(component, zone)
        if span is not None:
            periods.append(BusyPeriod(start=span[0], end=span[1]))
    return periods


def _span(component, zone):
    """Return an event's (start, end) as aware UTC datetimes, or None for an event of no length."""
    begin = component.get("DTSTART").dt
    if component.get("DTEND") is not None:
        finish = component.get("DTEND").dt
    elif component.get("DURATION") is not None:
        finish = begin + component.get("DURATION").dt
    else:
        finish = begin + timedelta(days=1) if not isinstance(begin, datetime) else begin
    begin, finish = _moment(begin, zone), _moment(finish, zone)
    return (begin, finish) if begin < finish else None


def _moment(value, zone):
    if not isinstance(value, datetime) and isinstance(value, date):  # all-day: midnight where the staff are
        value = datetime.combine(value, time.min, tzinfo=zone)
    elif value.tzinfo is None:  # floating time: wall-clock time where the staff are
        value = value.replace(tzinfo=zone)
    return value.astimezone(UTC)


def _utc(value):
    return _moment(value, UTC)


def _zone(settings):
    try:
        return ZoneInfo(settings.get("time_zone") or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        raise CalendarError("the CalDAV setting `time_zone` is not a known time zone") from None


def _ics(event):
    calendar = icalendar.Calendar()
    calendar.add("prodid", PRODID)
    calendar.add("version", "2.0")
    vevent = icalendar.Event()
    vevent.add("uid", event.uid)
    vevent.add("dtstamp", datetime.now(UTC))
    vevent.add("dtstart", event.start.astimezone(UTC))
    vevent.add("dtend", event.end.astimezone(UTC))
    vevent.add("summary", event.summary)
    if event.description:
        vevent.add("description", event.description)
    if event.location:
        vevent.add("location", event.location)
    calendar.add_component(vevent)
    return calendar.to_ical().decode()


@contextmanager
def _errors_mapped():
    """Turn library and network errors into CalendarError with a safe message and the right retryability."""
    try:
        yield
    except CalendarError:
        raise
    except dav_error.DAVError as exc:
        mapped = _map_dav_error(exc)
        log.warning("CalDAV request failed: %s", mapped)
        raise mapped from None
    except (dav_http.exceptions.RequestException, OSError) as exc:
        log.warning("CalDAV server unreachable: %s", type(exc).__name__)
        raise CalendarError("could not reach the CalDAV server", retryable=True) from None


def _map_dav_error(exc):
    status = getattr(exc, "status", None)
    if isinstance(exc, dav_error.RateLimitError) or status == 429:
        return CalendarError("the CalDAV server asks to slow down (HTTP 429)", retryable=True)
    if isinstance(exc, dav_error.AuthorizationError) or status in (401, 403):
        return CalendarError(f"the CalDAV server refused the user name or password (HTTP {status or 401}); "
                             "check the username and the password variable")
    if isinstance(exc, dav_error.NotFoundError) or status == 404:
        return CalendarError("the CalDAV calendar was not found (HTTP 404); check `calendar_url` or `calendar`")
    if status is None or status >= 500:
        shown = f" (HTTP {status})" if status else ""
        return CalendarError(f"the CalDAV server failed{shown}", retryable=True)
    return CalendarError(f"the CalDAV server refused the request (HTTP {status})")


@hookimpl
def register_calendar_backends(register):
    register(CalDAVCalendar())
