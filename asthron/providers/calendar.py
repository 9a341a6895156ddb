"""The calendar backend contract: read busy times, create and delete the events of bookings."""
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import ClassVar

from asthron.providers._checks import require_aware, require_order, require_text


class CalendarError(Exception):
    """The external calendar refused or failed a request.

    :param retryable: True when trying again later may succeed.
    """

    def __init__(self, message, *, retryable=False):
        super().__init__(message)
        self.retryable = retryable


@dataclass(frozen=True)
class BusyPeriod:
    """A time range the external calendar reports as taken.

    :param start: when it starts (timezone-aware).
    :param end: when it ends (timezone-aware, after start).
    """

    start: datetime
    end: datetime

    def __post_init__(self):
        require_aware("BusyPeriod", start=self.start, end=self.end)
        require_order("BusyPeriod", self.start, self.end)


@dataclass(frozen=True)
class CalendarEvent:
    """An event to write to the external calendar for a booking.

    :param summary: the title.
    :param start: when it starts (timezone-aware).
    :param end: when it ends (timezone-aware, after start).
    :param description: free text.
    :param location: a place or meeting link.
    :param uid: a stable id from the core, so creating the same booking twice makes one event.
    """

    summary: str
    start: datetime
    end: datetime
    description: str = ""
    location: str = ""
    uid: str | None = None

    def __post_init__(self):
        require_text("CalendarEvent", summary=self.summary)
        require_aware("CalendarEvent", start=self.start, end=self.end)
        require_order("CalendarEvent", self.start, self.end)


class CalendarBackend(ABC):
    """An external calendar (CalDAV, Google, the internal calendar).

    Subclasses set `name` (unique among installed backends). `settings` is the resource's
    configuration for this backend, with `$env` references already resolved.
    """

    name: ClassVar[str]
    label: ClassVar[str] = ""

    @abstractmethod
    def busy_times(self, *, settings: Mapping, start: datetime, end: datetime) -> list[BusyPeriod]:
        """Return the busy periods that overlap [start, end).

        :param settings: the resource's settings for this backend.
        :param start: the range's start (timezone-aware).
        :param end: the range's end (timezone-aware).
        """

    @abstractmethod
    def create_event(self, *, settings: Mapping, event: CalendarEvent) -> str:
        """Write `event` and return the calendar's id for it (the same id again for the same uid).

        :param settings: the resource's settings for this backend.
        :param event: the event to write.
        """

    @abstractmethod
    def delete_event(self, *, settings: Mapping, event_id: str) -> None:
        """Delete an event this backend created; deleting one that is already gone is not an error.

        :param settings: the resource's settings for this backend.
        :param event_id: the id `create_event` returned.
        """


class OAuthToken:
    """A resource's stored OAuth2 token, handed to an OAuth backend in `settings["oauth"]`.

    The backend reads `token` (a dict in RFC 6749 shape: access_token, refresh_token, expires_at, ...)
    and calls `save(new_token)` after it refreshed it, so the core stores the new one (encrypted).

    :param token: the token as last stored.
    :param on_save: called with the new token dict; the core writes it to the resource.
    """

    def __init__(self, token, on_save=None):
        self._token = dict(token or {})
        self._on_save = on_save

    @property
    def token(self):
        """Return a copy of the current token."""
        return dict(self._token)

    def save(self, token):
        """Keep `token` as the current one and hand it to the core to store."""
        merged = {**self._token, **dict(token)}  # a refresh answer may omit the refresh_token
        self._token = merged
        if self._on_save is not None:
            self._on_save(dict(merged))

    def __repr__(self):
        return "OAuthToken(<redacted>)"


class OAuthCalendarBackend(CalendarBackend):
    """A calendar a staff member connects with OAuth2 (authorization code flow with PKCE and state).

    The core runs the browser side: it makes `state` and `code_verifier`, redirects to
    `authorization_url(...)`, checks `state` on the callback, calls `fetch_token(...)` and stores the
    token encrypted. `busy_times`, `create_event` and `delete_event` then find it in `settings["oauth"]`
    (an :class:`OAuthToken`), refresh it when it has expired and `save` the new one.
    """

    connect_label: ClassVar[str] = "Connect calendar"

    @abstractmethod
    def authorization_url(self, *, settings: Mapping, redirect_uri: str, state: str, code_verifier: str) -> str:
        """Return the provider's consent page address to send the staff member to.

        :param settings: the resource's settings for this backend.
        :param redirect_uri: the core's callback address the provider returns to.
        :param state: an opaque value the callback must bring back (CSRF protection).
        :param code_verifier: the PKCE verifier; send its S256 challenge.
        """

    @abstractmethod
    def fetch_token(self, *, settings: Mapping, code: str, redirect_uri: str, code_verifier: str) -> dict:
        """Exchange the callback's authorization code for a token dict; raise CalendarError when refused.

        :param settings: the resource's settings for this backend.
        :param code: the authorization code from the callback.
        :param redirect_uri: the same callback address as in the authorization request.
        :param code_verifier: the PKCE verifier the authorization request's challenge came from.
        """
