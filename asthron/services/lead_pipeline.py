"""A workspace's pipeline: its stages, the score and stage rules applied to leads, and rescoring.

`apply_rules(lead)` recomputes a lead's score and lets the stage rules move it forward; the lead
service calls it whenever a lead's data changes, and `rescore_workspace` when the rules change.
"""
import logging

from sqlalchemy import event as sa_event
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from asthron.extensions import db
from asthron.models.base import utcnow
from asthron.models.leads import ActivityKind, Lead, LeadActivity, PipelineStage, ScoringRule, StageRule
from asthron.providers.events import LeadQualified, LeadUpdated
from asthron.services import events, lead_rules

log = logging.getLogger(__name__)

DEFAULT_STAGES = (("New", False), ("Contacted", False), ("Qualified", True), ("Won", False), ("Lost", False))
# Up to this many leads are rescored in the request that changed a rule; more go to a maintenance job.
INLINE_RESCORE_LIMIT = 200
RESCORE_BATCH = 500


def stages(workspace_id):
    """Return the workspace's pipeline stages in order."""
    return list(db.session.scalars(select(PipelineStage).where(PipelineStage.workspace_id == workspace_id)
                                   .order_by(PipelineStage.position, PipelineStage.id)))


def ensure_default_stages(workspace_id):
    """Return the workspace's stages, creating New, Contacted, Qualified, Won and Lost when it has none."""
    found = stages(workspace_id)
    if found:
        return found
    for position, (name, qualified) in enumerate(DEFAULT_STAGES):
        db.session.add(PipelineStage(workspace_id=workspace_id, name=name, position=position, qualified=qualified))
    db.session.flush()
    return stages(workspace_id)


def scoring_rules(workspace_id):
    """Return the workspace's scoring rules in order."""
    return list(db.session.scalars(select(ScoringRule).where(ScoringRule.workspace_id == workspace_id)
                                   .order_by(ScoringRule.position, ScoringRule.id)))


def stage_rules(workspace_id):
    """Return the workspace's stage rules in order."""
    return list(db.session.scalars(select(StageRule).where(StageRule.workspace_id == workspace_id)
                                   .order_by(StageRule.position, StageRule.id)))


def record_activity(lead, kind, summary, *, meta=None, actor_id=None):
    """Add an entry to `lead`'s timeline and return it."""
    if lead.id is None:
        db.session.flush()
    activity = LeadActivity(workspace_id=lead.workspace_id, lead_id=lead.id, kind=ActivityKind(kind),
                            summary=(summary or "")[:500], meta=meta or {}, actor_id=actor_id, created_at=utcnow())
    db.session.add(activity)
    return activity


def manual_floor(lead):
    """Return the position of the stage a person last moved `lead` back from, or None."""
    if lead.id is None:
        return None
    rows = db.session.scalars(select(LeadActivity.meta).where(
        LeadActivity.lead_id == lead.id, LeadActivity.kind == ActivityKind.stage,
        LeadActivity.actor_id.is_not(None)).order_by(LeadActivity.id.desc()).limit(50))
    for meta in rows:
        if (meta or {}).get("backward"):
            return meta.get("from_position")
    return None


def move(lead, stage, *, actor_id=None, rule_id=None, all_stages=None, quiet=False):
    """Put `lead` in `stage`, write the timeline entry, emit lead.updated and lead.qualified; return True if it moved.

    `quiet` leaves out lead.updated, for a lead whose lead.created is emitted in the same transaction.
    """
    if stage is None or lead.stage_id == stage.id:
        return False
    by_id = {s.id: s for s in (all_stages if all_stages is not None else stages(lead.workspace_id))}
    before = by_id.get(lead.stage_id)
    backward = before is not None and stage.position < before.position
    meta = {"from": before.id if before else None, "to": stage.id, "manual": actor_id is not None}
    if backward and actor_id is not None:
        meta.update(backward=True, from_position=before.position)
    if rule_id is not None:
        meta["rule_id"] = rule_id
    lead.stage_id, lead.stage = stage.id, stage
    why = " (by a stage rule)" if actor_id is None and rule_id is not None else ""
    record_activity(lead, ActivityKind.stage, f"Moved from {before.name if before else 'no stage'} to {stage.name}"
                    f"{why}", meta=meta, actor_id=actor_id)
    if not quiet:
        events.emit(LeadUpdated(workspace_id=lead.workspace_id, lead_id=lead.id, fields=("stage",)))
    if stage.qualified:
        emit_qualified(lead, stage)
    return True


def emit_qualified(lead, stage):
    """Emit lead.qualified for `lead`, which has just entered the qualified `stage`."""
    db.session.flush()
    events.emit(LeadQualified(workspace_id=lead.workspace_id, lead_id=lead.id, stage_id=stage.id, score=lead.score))


def apply_rules(lead, *, rules=None, moves=None, all_stages=None, quiet=False):
    """Recompute `lead`'s score, then let the stage rules move it forward; return True if anything changed."""
    rules = scoring_rules(lead.workspace_id) if rules is None else rules
    moves = stage_rules(lead.workspace_id) if moves is None else moves
    new_score = lead_rules.score(lead, rules)
    changed = new_score != (lead.score or 0)
    lead.score = new_score
    if not moves:
        return changed
    all_stages = stages(lead.workspace_id) if all_stages is None else all_stages
    target = lead_rules.target_stage(lead, moves, all_stages, floor_position=manual_floor(lead))
    if target is not None:
        rule = next(r for r in moves if r.stage_id == target.id)
        changed = move(lead, target, rule_id=rule.id, all_stages=all_stages, quiet=quiet) or changed
    return changed


def rescore_workspace(workspace_id):
    """Recompute the score and stage of every lead of a workspace; return how many changed."""
    rules, moves, all_stages = scoring_rules(workspace_id), stage_rules(workspace_id), stages(workspace_id)
    changed, after = 0, 0
    while True:
        batch = list(db.session.scalars(select(Lead).where(Lead.workspace_id == workspace_id, Lead.id > after)
                                        .order_by(Lead.id).limit(RESCORE_BATCH)))
        if not batch:
            return changed
        for lead in batch:
            before = lead.score
            if apply_rules(lead, rules=rules, moves=moves, all_stages=all_stages):
                changed += 1
                if lead.score != before:
                    events.emit(LeadUpdated(workspace_id=workspace_id, lead_id=lead.id, fields=("score",)))
        db.session.flush()
        after = batch[-1].id


def rules_changed(workspace_id):
    """Rescore the workspace's leads now when they are few, else in a `maintenance` job after commit."""
    from asthron import jobs

    count = db.session.scalar(select(func.count(Lead.id)).where(Lead.workspace_id == workspace_id))
    if count <= INLINE_RESCORE_LIMIT:
        return rescore_workspace(workspace_id)
    jobs.add(db.session, "maintenance.rescore_leads", workspace_id=workspace_id)
    return None


# Rules may change through any door (admin views, the setup copy, the API): the session notes the
# workspaces whose rules changed and rescores their leads just before the transaction commits.
_RULES_CHANGED = "asthron_lead_rules_changed"


def _note_rule_changes(session, flush_context, instances):
    for obj in (*session.new, *session.dirty, *session.deleted):
        if isinstance(obj, (ScoringRule, StageRule)) and obj.workspace_id is not None:
            session.info.setdefault(_RULES_CHANGED, set()).add(obj.workspace_id)


def _rescore_before_commit(session):
    if session.info.get(_RULES_CHANGED) or any(isinstance(o, (ScoringRule, StageRule))
                                               for o in (*session.new, *session.dirty, *session.deleted)):
        session.flush()
    for workspace_id in sorted(session.info.pop(_RULES_CHANGED, ())):
        rules_changed(workspace_id)


if not getattr(Session, "_asthron_lead_rules", False):
    sa_event.listen(Session, "before_flush", _note_rule_changes)
    sa_event.listen(Session, "before_commit", _rescore_before_commit)
    sa_event.listen(Session, "after_soft_rollback", lambda session, tx: session.info.pop(_RULES_CHANGED, None))
    Session._asthron_lead_rules = True
