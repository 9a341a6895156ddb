"""The public sub-processor list: what loaded plugins declare plus the operator's enabled entries.

`last_changed` is the date this exact list was first published. Each time the list is built its
fingerprint (SHA-256 of its canonical JSON) is compared with the latest recorded version, and a
new version is recorded when they differ; going back to an earlier list is a change too. Operator
edits record a version at once (the admin view calls `publish`); a plugin installed or removed in
a deploy is recorded the first time the list is built afterwards (the page, the JSON or the CLI).
"""
import hashlib
import json
from datetime import UTC

from sqlalchemy import select

from asthron import registry
from asthron.extensions import db
from asthron.models.base import utcnow
from asthron.models.integrations import Subprocessor, SubprocessorListChange

OPERATOR_SOURCE = "operator"


def current_entries():
    """Return what loaded plugins declare and the enabled operator entries, sorted by name."""
    entries = [_entry(r.value.name, r.value.purpose, list(r.value.data_categories), r.value.location,
                      r.value.dpa_url, f"plugin:{r.plugin}") for r in registry.subprocessors.entries()]
    rows = db.session.scalars(select(Subprocessor).where(Subprocessor.enabled.is_(True)))
    entries += [_entry(row.name, row.purpose, row.category_list(), row.location, row.dpa_url, OPERATOR_SOURCE)
                for row in rows]
    return sorted(entries, key=lambda e: (e["name"].casefold(), e["source"]))


def _entry(name, purpose, data_categories, location, dpa_url, source):
    return {"name": name, "purpose": purpose, "data_categories": data_categories, "location": location,
            "dpa_url": dpa_url, "source": source}


def fingerprint(entries):
    """Return SHA-256 over the canonical JSON of a list of entries."""
    canonical = json.dumps(entries, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def latest_version():
    """Return the most recently recorded version of the list, or None."""
    return db.session.scalars(select(SubprocessorListChange)
                              .order_by(SubprocessorListChange.id.desc()).limit(1)).first()


def publish():
    """Return the current list and the date it last changed, recording a new version when it differs."""
    entries = current_entries()
    digest = fingerprint(entries)
    latest = latest_version()
    if latest is None or latest.fingerprint != digest:
        latest = SubprocessorListChange(fingerprint=digest, entries=entries, changed_at=utcnow())
        db.session.add(latest)
        db.session.commit()
    return {"subprocessors": entries, "last_changed": _utc_date(latest.changed_at).isoformat()}


def _utc_date(moment):
    # PostgreSQL hands back timestamptz in the session's time zone; SQLite hands back naive UTC.
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC)
    return moment.date()
