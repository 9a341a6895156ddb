"""Merge duplicate leads: one person's leads become one, keeping every timeline entry and link."""
from sqlalchemy import select

from asthron.extensions import db
from asthron.models.base import Model
from asthron.models.leads import CORE_FIELD_KEYS, ActivityKind, PipelineStage
from asthron.services.lead_pipeline import record_activity


def absorb(target, others, *, actor_id=None):
    """Merge each of `others` into `target` and delete it; return the merged leads' ids.

    Values `target` lacks come from the other lead (the target's win where both have one); tags,
    notes, timeline, bookings and anything else that points at the other lead move to the target; the
    further pipeline stage and the newer consent are kept. A `merged` entry names what was merged.
    """
    merged = []
    for other in others:
        if other is target or other.id == target.id:
            continue
        snapshot = _snapshot(other)
        _repoint(other.id, target.id)
        db.session.expire(other, ["activities"])
        db.session.delete(other)
        db.session.flush()  # the other's email and phone are free only once its row is gone
        _combine(target, snapshot)
        label = snapshot["email"] or snapshot["phone"] or snapshot["name"] or "no contact details"
        record_activity(target, ActivityKind.merged, f"Merged lead {snapshot['id']} ({label}) into this lead",
                        meta={"merged_lead_id": snapshot["id"], "source": snapshot["source"],
                              "conversation_id": snapshot["conversation_id"],
                              **{key: snapshot[key] for key in CORE_FIELD_KEYS}}, actor_id=actor_id)
        merged.append(snapshot["id"])
    if merged:
        db.session.expire(target, ["activities"])
    return merged


def _snapshot(lead):
    return {"id": lead.id, "source": getattr(lead.source, "value", lead.source),
            "conversation_id": lead.conversation_id, "values": dict(lead.values or {}), "tags": list(lead.tags or []),
            "notes": lead.notes, "owner_id": lead.owner_id, "stage_id": lead.stage_id,
            "consent_version": lead.consent_version, "consented_at": lead.consented_at,
            **{key: getattr(lead, key) for key in CORE_FIELD_KEYS}}


def _repoint(old_id, new_id):
    """Point every row that references lead `old_id` (timeline, bookings, plugins' tables) at `new_id`."""
    lead_table = Model.metadata.tables["lead"]
    for table in Model.metadata.tables.values():
        if table is lead_table:
            continue
        for fk in table.foreign_keys:
            if fk.column.table is lead_table:
                db.session.execute(table.update().where(fk.parent == old_id).values({fk.parent.name: new_id}))
                _expire_loaded(table, fk.parent, old_id)


def _expire_loaded(table, column, old_id):
    """Expire rows already loaded in the session whose `column` the bulk update just changed."""
    for obj in list(db.session.identity_map.values()):
        mapper = getattr(type(obj), "__mapper__", None)
        if mapper is None or table not in mapper.tables:
            continue
        key = mapper.get_property_by_column(column).key
        if obj.__dict__.get(key) == old_id:
            # Whole rows, so relationships to the deleted lead go too; a row with unsaved changes keeps them.
            db.session.expire(obj, None if obj not in db.session.dirty else [key])


def _combine(target, other):
    for key in CORE_FIELD_KEYS:
        if getattr(target, key) in (None, "") and other[key]:
            setattr(target, key, other[key])
    target.values = {**other["values"], **(target.values or {})}
    target.tags = list(dict.fromkeys([*(target.tags or []), *other["tags"]]))
    if other["notes"]:
        target.notes = "\n\n".join(n for n in (target.notes, other["notes"]) if n)
    target.owner_id = target.owner_id or other["owner_id"]
    target.conversation_id = target.conversation_id or other["conversation_id"]
    if other["consented_at"] and (target.consented_at is None or _aware(other["consented_at"]) >
                                  _aware(target.consented_at)):
        target.consent_version, target.consented_at = other["consent_version"], other["consented_at"]
    stage_id = _further_stage(target.stage_id, other["stage_id"])
    if stage_id != target.stage_id:
        target.stage_id = stage_id
        db.session.expire(target, ["stage"])


def _aware(moment):
    from datetime import UTC

    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def _further_stage(mine, theirs):
    if mine is None or theirs is None:
        return mine or theirs
    positions = dict(db.session.execute(select(PipelineStage.id, PipelineStage.position)
                                        .where(PipelineStage.id.in_([mine, theirs]))).all())
    return theirs if positions.get(theirs, -1) > positions.get(mine, -1) else mine
