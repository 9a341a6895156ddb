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
