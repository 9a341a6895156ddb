"""The Google Calendar backend: OAuth2 (Authlib), free/busy and booking events through Google's REST API.

A staff member connects their calendar from the admin (Bookings -> Calendars -> Connect Google
Calendar): the core sends them to Google's consent page (authorization code with PKCE and state,
offline access), and stores the token it gets back encrypted. Each call refreshes an expired access
token with the refresh token and hands the new token back to the core to store.

Configuration, read from the app's config, else the environment (docs/calendar.md):
`GOOGLE_CALENDAR_CLIENT_ID`, `GOOGLE_CALENDAR_CLIENT_SECRET` (an OAuth client of type "Web
application" whose redirect URI is `<admin URL>/calendar/oauth/callback`), and, for tests or a
proxy, `GOOGLE_OAUTH_AUTHORIZE_URL`, `GOOGLE_OAUTH_TOKEN_URL`, `GOOGLE_CALENDAR_API_URL`.
Resource settings: `calendar_id` (default "primary"), `timeout` (seconds, default 20).

Events get an id derived from the booking's uid (base32hex, as Google requires), so a retried insert
answers 409 "duplicate"; the plugin then updates that event, which also moves it on a reschedule.
Deleting an event that is gone (404, 410) is not an error. Network failures, 429, 5xx and Google's
rate-limit 403s raise a retryable CalendarError; a revoked authorisation, 401, other 403s and 404s a
non-retryable one naming the HTTP status and Google's reason code, never a token.
"""
import base64
import logging
import os
from contextlib import contextmanager
from datetime import UTC, datetime
from urllib.parse import quote

import requests
from authlib.integrations.base_client.errors import OAuthError
from authlib.integrations.requests_client import OAuth2Session

from asthron.hookspecs import hookimpl
from asthron.providers.calendar import BusyPeriod, CalendarError, OAuthCalendarBackend
from asthron.providers.subprocessors import Subprocessor

__version__ = "1.0.0"

log = logging.getLogger(__name__)

DEFAULTS = {
    "GOOGLE_OAUTH_AUTHORIZE_URL": "https://accounts.google.com/o/oauth2/v2/auth",
    "GOOGLE_OAUTH_TOKEN_URL": "https://oauth2.googleapis.com/token",
    "GOOGLE_CALENDAR_API_URL": "https://www.googleapis.com",
}
SCOPES = ("https://www.googleapis.com/auth/calendar.events https://www.googleapis.com/auth/calendar.freebusy")
DEFAULT_TIMEOUT = 20
RATE_LIMIT_REASONS = {"rateLimitExceeded", "userRateLimitExceeded", "quotaExceeded"}


class GoogleCalendar(OAuthCalendarBackend):
    """A Google calendar reached with the staff member's OAuth2 token."""

    name = "google"
    label = "Google Calendar"
    connect_label = "Connect Google Calendar"

    def authorization_url(self, *, settings, redirect_uri, state, code_verifier):
        session = _session(settings, redirect_uri=redirect_uri)
        url, _state = session.create_authorization_url(
            _config("GOOGLE_OAUTH_AUTHORIZE_URL"), state=state, code_verifier=code_verifier,
            access_type="offline", prompt="consent", include_granted_scopes="true")
        return url

    def fetch_token(self, *, settings, code, redirect_uri, code_verifier):
        session = _session(settings, redirect_uri=redirect_uri)
        with _errors_mapped():
            token = session.fetch_token(_config("GOOGLE_OAUTH_TOKEN_URL"), grant_type="authorization_code",
                                        code=code, code_verifier=code_verifier)
        if not token.get("refresh_token"):
            raise CalendarError("Google gave no refresh token; remove Asthron's access in your Google account's "
                                "security settings and connect again")
        return dict(token)

    def busy_times(self, *, settings, start, end):
        calendar_id = _calendar_id(settings)
        body = {"timeMin": _iso(start), "timeMax": _iso(end), "items": [{"id": calendar_id}]}
        answer = _call(settings, "POST", "/calendar/v3/freeBusy", json=body)
        entry = (answer.get("calendars") or {}).get(calendar_id) or {}
        for problem in entry.get("errors") or ():
            reason = problem.get("reason", "unknown")
            retryable = reason in ("backendError", "internalError")
            raise CalendarError(f"Google could not read the calendar's free/busy times ({reason})",
                                retryable=retryable)
        periods = []
        for busy in entry.get("busy") or ():
            begin, finish = _parse(busy["start"]), _parse(busy["end"])
            if begin < finish:
                periods.append(BusyPeriod(start=begin, end=finish))
        return periods

    def create_event(self, *, settings, event):
        if not event.uid:
            raise CalendarError("the Google backend needs the booking's uid to write its event")
        event_id = event_id_for(event.uid)
        body = {"id": event_id, "summary": event.summary, "description": event.description,
                "location": event.location, "status": "confirmed",
                "start": {"dateTime": _iso(event.start), "timeZone": "UTC"},
                "end": {"dateTime": _iso(event.end), "timeZone": "UTC"},
                "extendedProperties": {"private": {"asthron_uid": event.uid}}}
        path = f"/calendar/v3/calendars/{quote(_calendar_id(settings), safe='')}/events"
        try:
            _call(settings, "POST", path, json=body)
        except _Duplicate:
            # Written before (a retry, or a reschedule): make that event match the booking as it is now.
            _call(settings, "PUT", f"{path}/{event_id}", json=body)
        return event_id

    def delete_event(self, *, settings, event_id):
        path = f"/calendar/v3/calendars/{quote(_calendar_id(settings), safe='')}/events/{quote(event_id, safe='')}"
        try:
            _call(settings, "DELETE", path)
        except _Gone:
            log.info("Google event to delete was already gone")


def event_id_for(uid):
    """Return Google's event id for a booking uid: its base32hex encoding, lower case, no padding."""
    return base64.b32hexencode(uid.encode()).decode().rstrip("=").lower()


def _config(name):
    try:
        from flask import current_app, has_app_context

        if has_app_context() and current_app.config.get(name):
            return current_app.config[name]
    except ImportError:  # pragma: no cover - the core always has Flask
        pass
    return os.environ.get(name) or DEFAULTS.get(name) or ""


def _session(settings, *, redirect_uri=None):
    client_id, secret = _config("GOOGLE_CALENDAR_CLIENT_ID"), _config("GOOGLE_CALENDAR_CLIENT_SECRET")
    if not client_id or not secret:
        raise CalendarError("Google Calendar is not set up on this platform: the operator must set "
                            "GOOGLE_CALENDAR_CLIENT_ID and GOOGLE_CALENDAR_CLIENT_SECRET")
    oauth = settings.get("oauth")
    # Google documents the client's credentials in the token request's body (client_secret_post).
    session = OAuth2Session(client_id, secret, scope=SCOPES, redirect_uri=redirect_uri,
                            token_endpoint_auth_method="client_secret_post",
                            code_challenge_method="S256", token_endpoint=_config("GOOGLE_OAUTH_TOKEN_URL"),
                            token=oauth.token if oauth is not None else None,
                            update_token=_saver(oauth))
    session.default_timeout = float(settings.get("timeout") or DEFAULT_TIMEOUT)
    return session


def _saver(oauth):
    def update_token(token, refresh_token=None, access_token=None):
        if oauth is not None:
            oauth.save(dict(token))
    return update_token


def _calendar_id(settings):
    return (settings.get("calendar_id") or "primary").strip()


def _call(settings, method, path, *, json=None):
    """Send one API request with the resource's token (refreshed when expired); return the JSON answer."""
    if settings.get("oauth") is None or not settings["oauth"].token:
        raise CalendarError("this Google calendar is not connected; connect it in the admin")
    session = _session(settings)
    with _errors_mapped():
        response = session.request(method, _config("GOOGLE_CALENDAR_API_URL").rstrip("/") + path, json=json)
    if response.status_code < 300:
        return response.json() if response.content else {}
    raise _api_error(response)


class _Duplicate(CalendarError):
    """Google already has an event with this id (409 duplicate)."""


class _Gone(CalendarError):
    """The event is not there (404 notFound or 410 deleted)."""


def _api_error(response):
    status = response.status_code
    reason = _reason(response)
    log.warning("Google Calendar answered HTTP %s (%s)", status, reason)
    if status == 409 and reason in ("duplicate", "unknown"):
        return _Duplicate(f"Google already has this event (HTTP 409 {reason})")
    if status in (404, 410) and response.request.method == "DELETE":
        return _Gone(f"the Google event is gone (HTTP {status} {reason})")
    retryable = status == 429 or status >= 500 or (status == 403 and reason in RATE_LIMIT_REASONS)
    if status == 401:
        message = "Google refused the calendar's authorisation (HTTP 401); connect the calendar again"
    elif status == 404:
        message = f"Google does not know this calendar (HTTP 404 {reason}); check the calendar id"
    else:
        message = f"Google Calendar refused the request (HTTP {status} {reason})"
    return CalendarError(message, retryable=retryable)


def _reason(response):
    try:
        error = response.json().get("error") or {}
    except ValueError:
        return "unknown"
    if isinstance(error, str):  # OAuth-style {"error": "invalid_grant"}
        return error
    details = error.get("errors") or [{}]
    return str(details[0].get("reason") or error.get("status") or "unknown")


@contextmanager
def _errors_mapped():
    """Turn network and OAuth failures into CalendarError with a safe message and the right retryability."""
    try:
        yield
    except CalendarError:
        raise
    except OAuthError as exc:
        log.warning("Google refused the OAuth request: %s", exc.error)
        if exc.error in ("invalid_grant", "invalid_client", "unauthorized_client", "token_invalid", "token_expired",
                         "missing_token", "unsupported_token_type"):
            raise CalendarError(f"Google refused the calendar's authorisation ({exc.error}); "
                                "connect the calendar again") from None
        raise CalendarError(f"Google's sign-in service failed ({exc.error})", retryable=True) from None
    except requests.HTTPError as exc:  # a token endpoint answering 5xx or non-JSON
        status = exc.response.status_code if exc.response is not None else None
        raise CalendarError(f"Google's sign-in service failed (HTTP {status})",
                            retryable=status is None or status >= 500 or status == 429) from None
    except (requests.RequestException, OSError) as exc:
        log.warning("Google Calendar unreachable: %s", type(exc).__name__)
        raise CalendarError("could not reach Google Calendar", retryable=True) from None


def _iso(moment):
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _parse(text):
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


@hookimpl
def register_calendar_backends(register):
    register(GoogleCalendar())


@hookimpl
def register_subprocessors(register):
    register(Subprocessor(
        name="Google LLC (Google Calendar)",
        purpose="Staff calendars: reading busy times and writing booking events",
        data_categories=("booking times", "booking titles and references", "staff calendar busy times"),
        location="United States",
        dpa_url="https://cloud.google.com/terms/data-processing-addendum",
    ))
