"""Builders for booking tests: a service with resources, their weekly hours and overrides."""
from datetime import time

from asthron.extensions import db
from asthron.models.booking import DateOverride, OverrideKind, Resource, Service, WorkingHours

WEEKDAYS = range(7)


def make_resource(workspace_id, *, name="Ada", tz="UTC", hours=((9, 17),), days=WEEKDAYS):
    """Add a resource working `hours` (local (start hour, end hour) pairs) on `days`."""
    resource = Resource(workspace_id=workspace_id, name=name, time_zone=tz)
    db.session.add(resource)
    db.session.flush()
    for day in days:
        for start, end in hours:
            db.session.add(WorkingHours(workspace_id=workspace_id, resource_id=resource.id, weekday=day,
                                        start_time=_t(start), end_time=_t(end)))
    db.session.flush()
    return resource


def make_service(workspace_id, resources, *, name="Consultation", duration=60, step=None, before=0, after=0,
                 notice=0, ahead=365):
    """Add an active service delivered by `resources`."""
    service = Service(workspace_id=workspace_id, name=name, duration_minutes=duration,
                      slot_step_minutes=step or duration, buffer_before_minutes=before, buffer_after_minutes=after,
                      min_notice_minutes=notice, max_days_ahead=ahead, location_text="Main street 1")
    service.resources = list(resources)
    db.session.add(service)
    db.session.flush()
    return service


def add_override(resource, day, kind, start=None, end=None, label=None):
    """Add a date override to `resource`."""
    db.session.add(DateOverride(workspace_id=resource.workspace_id, resource_id=resource.id, date=day,
                                kind=OverrideKind(kind), start_time=_t(start) if start is not None else None,
                                end_time=_t(end) if end is not None else None, label=label))
    db.session.flush()


def _t(hour):
    if isinstance(hour, time):
        return hour
    return time(int(hour) % 24, int(round((hour % 1) * 60)))
