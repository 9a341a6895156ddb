"""The usage ledger: append-only rows per visitor message and AI reply, summed for budgets and reports."""
from datetime import UTC, date, datetime

from sqlalchemy import case, func, select

from asthron.extensions import db
from asthron.models.chat import UsageEntry

MESSAGE = "message"
REPLY = "reply"


def today():
    """Return today's date in UTC (the ledger's days are UTC days)."""
    return datetime.now(UTC).date()


def record(workspace_id, kind, *, conversation_id=None, provider=None, model=None, input_tokens=0,
           output_tokens=0, day=None):
    """Append a usage row (kind "message" or "reply") in the current transaction and return it."""
    if kind not in (MESSAGE, REPLY):
        raise ValueError(f"usage kind must be {MESSAGE!r} or {REPLY!r}, not {kind!r}")
    entry = UsageEntry(workspace_id=workspace_id, kind=kind, conversation_id=conversation_id, provider=provider,
                       model=(model or None) and str(model)[:200], input_tokens=max(0, int(input_tokens or 0)),
                       output_tokens=max(0, int(output_tokens or 0)), day=day or today())
    db.session.add(entry)
    return entry


def month_to_date_tokens(workspace_id, *, on=None):
    """Return the tokens (in + out) workspace `workspace_id` used from the 1st of the month of `on` (today)."""
    on = on or today()
    first = date(on.year, on.month, 1)
    total = db.session.execute(
        select(func.coalesce(func.sum(UsageEntry.input_tokens + UsageEntry.output_tokens), 0))
        .where(UsageEntry.workspace_id == workspace_id, UsageEntry.day >= first, UsageEntry.day <= on)).scalar()
    return int(total or 0)


def budget_left(workspace_id, budget, *, on=None):
    """Return the tokens left of a monthly `budget` (None: no limit, returns None)."""
    if budget is None:
        return None
    return max(0, int(budget) - month_to_date_tokens(workspace_id, on=on))


def daily(workspace_ids, start, end):
    """Return per-workspace, per-day totals between `start` and `end` (inclusive), oldest first.

    Each row: {"workspace_id", "day", "messages", "replies", "input_tokens", "output_tokens"}.
    """
    ids = sorted(workspace_ids)
    if not ids:
        return []
    rows = db.session.execute(
        select(UsageEntry.workspace_id, UsageEntry.day,
               func.sum(case((UsageEntry.kind == MESSAGE, 1), else_=0)),
               func.sum(case((UsageEntry.kind == REPLY, 1), else_=0)),
               func.sum(UsageEntry.input_tokens), func.sum(UsageEntry.output_tokens))
        .where(UsageEntry.workspace_id.in_(ids), UsageEntry.day >= start, UsageEntry.day <= end)
        .group_by(UsageEntry.workspace_id, UsageEntry.day)
        .order_by(UsageEntry.day, UsageEntry.workspace_id))
    return [{"workspace_id": ws, "day": day, "messages": int(m or 0), "replies": int(r or 0),
             "input_tokens": int(i or 0), "output_tokens": int(o or 0)} for ws, day, m, r, i, o in rows]
