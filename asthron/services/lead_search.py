"""Find leads: the filters of the leads list, its capped count and one page, shared by the list and the CSV export.

Like the audit log list, the leads list never counts further than it can show: with a million
leads a full `COUNT(*)` per page would cost more than the page. The count stops at `COUNT_CAP`
(the page then says "more than 1,000") and one ordered walk of the
`(workspace_id, stage_id, created_at)` index yields both that count and the page's ids.
"""
from dataclasses import dataclass, fields
from datetime import date, datetime, time, timedelta, timezone

from sqlalchemy import String, cast, func, or_, select, text
from sqlalchemy.orm import selectinload

from asthron.extensions import db
from asthron.models.leads import Lead, LeadField, LeadSource, PipelineStage

COUNT_CAP = 1_000
PAGE_SIZE = 50
MAX_SEARCH = 200


class FilterError(ValueError):
    """A filter value the list cannot use; `.errors` maps the parameter to a message."""

    def __init__(self, errors):
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))
        self.errors = errors


@dataclass(frozen=True)
class LeadFilters:
    """What the list is narrowed to; every attribute is optional."""

    workspace: int | None = None
    stage: int | None = None
    owner: int | None = None  # 0: no owner
    source: str | None = None
    score_min: int | None = None
    score_max: int | None = None
    created_from: date | None = None
    created_to: date | None = None  # inclusive
    q: str | None = None  # name, email or phone contains
    field: str | None = None  # a custom field's key ...
    value: str | None = None  # ... and the value it must equal (case-insensitive)

    def as_args(self):
        """Return the filters as query-string arguments (the list, export and board links carry them)."""
        args = {}
        for spec in fields(self):
            value = getattr(self, spec.name)
            if value is not None and value != "":
                args[spec.name] = value.isoformat() if isinstance(value, date) else str(value)
        return args


def _int(errors, name, raw, *, minimum=None):
    try:
        value = int(raw)
    except (TypeError, ValueError):
        errors[name] = "Enter a whole number."
        return None
    if minimum is not None and value < minimum:
        errors[name] = f"Enter a number of at least {minimum}."
        return None
    return value


def _date(errors, name, raw):
    try:
        return date.fromisoformat(raw)
    except (TypeError, ValueError):
        errors[name] = "Enter a date as YYYY-MM-DD."
        return None


def parse_filters(args):
    """Read filters from a mapping of strings (query arguments); raise FilterError for bad values."""
    errors, values = {}, {}
    for name in ("workspace", "stage", "owner"):
        if (args.get(name) or "").strip():
            values[name] = _int(errors, name, args[name].strip(), minimum=0)
    for name in ("score_min", "score_max"):
        if (args.get(name) or "").strip():
            values[name] = _int(errors, name, args[name].strip())
    for name in ("created_from", "created_to"):
        if (args.get(name) or "").strip():
            values[name] = _date(errors, name, args[name].strip())
    source = (args.get("source") or "").strip()
    if source:
        if source not in {s.value for s in LeadSource}:
            errors["source"] = "Choose one of: " + ", ".join(s.value for s in LeadSource) + "."
        values["source"] = source
    for name in ("q", "field", "value"):
        raw = (args.get(name) or "").strip()
        if len(raw) > MAX_SEARCH:
            errors[name] = f"Use at most {MAX_SEARCH} characters."
        values[name] = raw or None
    if values.get("field") and values.get("value") is None:
        errors["value"] = "Enter the value the field must have."
    if errors:
        raise FilterError(errors)
    return LeadFilters(**values)


def _start_of(day):
    return datetime.combine(day, time.min, tzinfo=timezone.utc)


def _field_value(key):
    """Return a SQL expression for a custom field's value as lower-case text, on PostgreSQL and SQLite."""
    return func.lower(cast(Lead.values[key].as_string(), String))


def statement(filters, *, columns=(Lead,)):
    """Return a SELECT of leads matching `filters`, newest first (the tenant guard adds the scope)."""
    stmt = select(*columns)
    f = filters
    if f.workspace is not None:
        stmt = stmt.where(Lead.workspace_id == f.workspace)
    if f.stage is not None:
        stmt = stmt.where(Lead.stage_id == f.stage)
    if f.owner is not None:
        stmt = stmt.where(Lead.owner_id.is_(None) if f.owner == 0 else Lead.owner_id == f.owner)
    if f.source:
        stmt = stmt.where(Lead.source == LeadSource(f.source))
    if f.score_min is not None:
        stmt = stmt.where(Lead.score >= f.score_min)
    if f.score_max is not None:
        stmt = stmt.where(Lead.score <= f.score_max)
    if f.created_from:
        stmt = stmt.where(Lead.created_at >= _start_of(f.created_from))
    if f.created_to:
        stmt = stmt.where(Lead.created_at < _start_of(f.created_to + timedelta(days=1)))
    if f.q:
        pattern = "%" + f.q.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        stmt = stmt.where(or_(func.lower(Lead.name).like(pattern, escape="\\"),
                              Lead.email.like(pattern, escape="\\"), Lead.phone.like(pattern, escape="\\")))
    if f.field:
        stmt = stmt.where(_field_value(f.field) == f.value.lower())
    return stmt.order_by(Lead.created_at.desc(), Lead.id.desc())


def page(filters, *, number=0, size=PAGE_SIZE, cap=None, related=("workspace", "stage", "owner")):
    """Return (count capped at `cap` (default COUNT_CAP) + 1, the leads of page `number`) for `filters`.

    `related` names the relationships the page shows, loaded in one query each rather than per row.
    """
    cap = COUNT_CAP if cap is None else cap
    _one_process_for_this_read()
    first = number * size
    ids = db.session.scalars(statement(filters, columns=(Lead.id,)).limit(max(cap + 1, first + size))).all()
    shown = ids[first:first + size]
    rows = {}
    if shown:
        load = [selectinload(getattr(Lead, name)) for name in related]
        rows = {lead.id: lead for lead in db.session.scalars(select(Lead).where(Lead.id.in_(shown)).options(*load))}
    return min(len(ids), cap + 1), [rows[i] for i in shown if i in rows]


def _one_process_for_this_read():
    """Keep PostgreSQL from starting parallel workers for a page that reads a few thousand index entries.

    The tenant clause, applied by the guard, makes the planner expect far more rows than a page
    reads; the workers it would start cost more than the scan (the audit list does the same).
    """
    if db.session.get_bind().dialect.name == "postgresql":
        db.session.execute(text("SET LOCAL max_parallel_workers_per_gather = 0"))


def stages_by_workspace(workspace_ids=None):
    """Return {workspace_id: [PipelineStage, ...]} in board order, for the visible workspaces."""
    return _ordered_by_workspace(PipelineStage, workspace_ids)


def fields_by_workspace(workspace_ids=None):
    """Return {workspace_id: [LeadField, ...]} in form order."""
    return _ordered_by_workspace(LeadField, workspace_ids)


def _ordered_by_workspace(model, workspace_ids):
    stmt = select(model).order_by(model.workspace_id, model.position, model.id)
    if workspace_ids is not None:
        stmt = stmt.where(model.workspace_id.in_(list(workspace_ids)))
    found = {}
    for item in db.session.scalars(stmt):
        found.setdefault(item.workspace_id, []).append(item)
    return found
