"""Small validation helpers shared by the value objects."""
from datetime import datetime


def require_text(owner, **fields):
    """Raise ValueError naming the first field that is not a non-empty string."""
    for name, value in fields.items():
        if not isinstance(value, str) or not value.strip():
            raise ValueError(f"{owner}.{name} must be a non-empty string")


def require_aware(owner, **fields):
    """Raise ValueError naming the first datetime that has no time zone."""
    for name, value in fields.items():
        if not isinstance(value, datetime) or value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"{owner}.{name} must be a timezone-aware datetime")


def require_order(owner, start, end):
    """Raise ValueError unless `start` is before `end`."""
    if not start < end:
        raise ValueError(f"{owner} must start before it ends")
