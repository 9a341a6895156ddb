"""A workspace's lead setup as admins configure it: checks for fields, stages and rules, and copying a setup.

The checks return {form field name: message} so the admin forms can show each problem beside its
field; the lead service and the rescoring hook do the rest once a change is saved.
"""
from datetime import date

from sqlalchemy import func, select

from asthron.extensions import db
from asthron.models.leads import (
    CORE_FIELD_KEYS, FieldKind, Lead, LeadField, PipelineStage, RuleOperator, ScoringRule, StageRule,
)
from asthron.services import lead_fields, lead_pipeline, leads
from asthron.services.lead_rules import SCORE_KEY

CORE_KINDS = {"name": FieldKind.text, "email": FieldKind.email, "phone": FieldKind.phone}
CHOICE_KINDS = (FieldKind.select, FieldKind.multiselect)
MAX_OPTIONS = 100
MAX_OPTION = 100
VALUE_OPERATORS = (RuleOperator.equals, RuleOperator.contains, RuleOperator.greater_than, RuleOperator.less_than)


class SetupError(ValueError):
    """A lead setup change that cannot be made; the message says why."""


def parse_options(text):
    """Return the options written one per line, trimmed, without blanks or repeats."""
    return list(dict.fromkeys(line.strip() for line in (text or "").splitlines() if line.strip()))


def check_field(workspace_id, *, key, kind, options, field_id=None):
    """Return the problems of a lead field as {"key"|"kind"|"options": message} (empty when it is fine)."""
    errors = {}
    key = (key or "").strip()
    if not lead_fields.KEY_PATTERN.match(key):
        errors["key"] = "Use a lower-case letter, then letters, digits or _ (at most 64), like budget or team_size."
    elif key == SCORE_KEY:
        errors["key"] = "score is the lead's score; choose another key."
    elif _field_key_taken(workspace_id, key, field_id):
        errors["key"] = f"This workspace already has a field {key}."
    try:
        kind = FieldKind(kind)
    except ValueError:
        kind = None
    if kind is None:
        errors["kind"] = "Choose one of the field kinds."
    elif key in CORE_KINDS and kind != CORE_KINDS[key]:
        errors["kind"] = f"The {key} field is always of kind {CORE_KINDS[key].value}."
    if kind in CHOICE_KINDS:
        if not options:
            errors["options"] = "Give the choices, one per line."
        elif len(options) > MAX_OPTIONS or any(len(o) > MAX_OPTION for o in options):
            errors["options"] = f"Give at most {MAX_OPTIONS} choices of at most {MAX_OPTION} characters each."
    return errors


def _field_key_taken(workspace_id, key, field_id):
    query = select(LeadField.id).where(LeadField.workspace_id == workspace_id, LeadField.key == key)
    if field_id is not None:
        query = query.where(LeadField.id != field_id)
    return db.session.execute(query.limit(1)).first() is not None


def check_rule(workspace_id, *, field_key, operator, value, for_stage=False):
    """Return the problems of a scoring or stage rule as {"field_key"|"operator"|"value": message}."""
    errors = {}
    known = {field.key: field for field in leads.fields(workspace_id)}
    allowed = sorted(known) + ([SCORE_KEY] if for_stage else [])
    if field_key not in allowed:
        errors["field_key"] = "Use one of this workspace's field keys: " + ", ".join(allowed) + "."
    try:
        operator = RuleOperator(operator)
    except ValueError:
        errors["operator"] = "Choose a condition."
        return errors
    value = (value or "").strip()
    if operator in VALUE_OPERATORS and not value:
        errors["value"] = "Give the value to compare with."
    elif operator in (RuleOperator.greater_than, RuleOperator.less_than) and value:
        field = known.get(field_key)
        if field is not None and field.kind == FieldKind.date:
            if not _is_date(value):
                errors["value"] = "Give a date as YYYY-MM-DD to compare this date field with."
        elif not _is_number(value):
            errors["value"] = "Give a number to compare with, like 1000."
    elif operator == RuleOperator.equals and field_key in known and known[field_key].kind in CHOICE_KINDS:
        if value not in (known[field_key].options or []):
            errors["value"] = "Choose one of the field's options: " + ", ".join(known[field_key].options) + "."
    return errors


def _is_number(value):
    try:
        float(value)
    except ValueError:
        return False
    return True


def _is_date(value):
    try:
        date.fromisoformat(value)
    except ValueError:
        return False
    return True


def check_stage(workspace_id, *, name, qualified, stage_id=None):
    """Return the problems of a pipeline stage as {"name"|"qualified": message}."""
    errors = {}
    others = [s for s in lead_pipeline.stages(workspace_id) if s.id != stage_id]
    if not (name or "").strip():
        errors["name"] = "Give the stage a name."
    elif any(s.name.strip().lower() == name.strip().lower() for s in others):
        errors["name"] = "This workspace already has a stage of that name."
    if qualified and any(s.qualified for s in others):
        errors["qualified"] = "Only one stage is the qualified stage; untick it on " + \
            next(s.name for s in others if s.qualified) + " first."
    return errors


def check_field_delete(field):
    """Raise SetupError when `field` cannot be deleted (a core field, or one that rules use)."""
    if field.key in CORE_FIELD_KEYS:
        raise SetupError(f"The {field.key} field is needed to find duplicate leads; make it optional instead.")
    used = _rules_using(field.workspace_id, field.key)
    if used:
        raise SetupError(f"{used} rule(s) use the field {field.key}; delete or change them first.")


def _rules_using(workspace_id, key):
    return sum(db.session.scalar(select(func.count(model.id)).where(model.workspace_id == workspace_id,
                                                                    model.field_key == key))
               for model in (ScoringRule, StageRule))


def check_stage_delete(stage):
    """Raise SetupError when `stage` still holds leads or is the target of stage rules."""
    count = db.session.scalar(select(func.count(Lead.id)).where(Lead.stage_id == stage.id))
    if count:
        raise SetupError(f"{count} lead(s) are in {stage.name}; move them to another stage first.")
    if db.session.scalar(select(func.count(StageRule.id)).where(StageRule.stage_id == stage.id)):
        raise SetupError(f"Stage rules move leads to {stage.name}; delete or change them first.")


def copy_setup(*, source_id, target_id):
    """Replace the target workspace's fields, stages and rules with copies of the source's; return counts.

    The target's leads keep their values; each keeps its stage when the copy has a stage of the
    same name, else it goes to the first stage. Scores are recomputed with the new rules.
    """
    if source_id == target_id:
        raise SetupError("Choose two different workspaces.")
    fields, stages = leads.ensure_default_fields(source_id), lead_pipeline.ensure_default_stages(source_id)
    scoring, moving = lead_pipeline.scoring_rules(source_id), lead_pipeline.stage_rules(source_id)
    placed = _clear_target(target_id)
    copies = {}
    for stage in stages:
        copies[stage.id] = PipelineStage(workspace_id=target_id, name=stage.name, position=stage.position,
                                         qualified=stage.qualified)
        db.session.add(copies[stage.id])
    for field in fields:
        db.session.add(LeadField(workspace_id=target_id, key=field.key, label=field.label, kind=field.kind,
                                 required=field.required, help_text=field.help_text, options=list(field.options or []),
                                 question=field.question, position=field.position))
    db.session.flush()
    for rule in scoring:
        db.session.add(ScoringRule(workspace_id=target_id, field_key=rule.field_key, operator=rule.operator,
                                   value=rule.value, points=rule.points, position=rule.position))
    for rule in moving:
        db.session.add(StageRule(workspace_id=target_id, field_key=rule.field_key, operator=rule.operator,
                                 value=rule.value, stage_id=copies[rule.stage_id].id, position=rule.position))
    by_name = {copy.name.strip().lower(): copy for copy in copies.values()}
    first = copies[stages[0].id]
    for name, lead_ids in placed.items():
        _place(lead_ids, by_name.get(name, first).id)
    _place(placed.get(None, []), first.id)
    for obj in list(db.session.identity_map.values()):  # their stage changed behind the ORM's back
        if isinstance(obj, Lead) and obj.workspace_id == target_id:
            db.session.expire(obj, ["stage_id", "stage"])
    db.session.flush()
    return {"fields": len(fields), "stages": len(stages), "scoring_rules": len(scoring), "stage_rules": len(moving)}


def _clear_target(target_id):
    """Delete the target's setup (audited, row by row); return {old stage name: ids of its leads}."""
    names = {s.id: s.name.strip().lower() for s in lead_pipeline.stages(target_id)}
    placed = {}
    for lead_id, stage_id in db.session.execute(select(Lead.id, Lead.stage_id).where(Lead.workspace_id == target_id)):
        placed.setdefault(names.get(stage_id), []).append(lead_id)
    # Leads leave their stages first: the old stages go, and their names are free for the copies.
    db.session.execute(Lead.__table__.update().where(Lead.workspace_id == target_id).values(stage_id=None))
    for model in (StageRule, ScoringRule, LeadField, PipelineStage):
        for row in db.session.scalars(select(model).where(model.workspace_id == target_id)):
            db.session.delete(row)
        db.session.flush()
    return placed


def _place(lead_ids, stage_id):
    for start in range(0, len(lead_ids), 500):
        db.session.execute(Lead.__table__.update().where(Lead.id.in_(lead_ids[start:start + 500]))
                           .values(stage_id=stage_id))
