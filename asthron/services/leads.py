"""Leads: capture from the widget, the AI, imports and the API; validation, dedupe and merge, the timeline.

One lead per person per workspace: a capture whose normalised email or phone (or conversation)
matches existing leads updates the first match and merges the others into it. The partial unique
indexes on (workspace, email) and (workspace, phone) make a concurrent duplicate fail; `capture`
then retries once, finding the row the other transaction wrote. Scores and stages are recomputed on
every change (asthron/services/lead_pipeline.py); events reach plugins after commit.
"""
import logging
from collections.abc import Mapping
from contextlib import contextmanager

from flask import current_app
from sqlalchemy import String, cast, select
from sqlalchemy.exc import IntegrityError

from asthron.extensions import db
from asthron.models.leads import (
    CORE_FIELD_KEYS, ActivityKind, FieldKind, Lead, LeadActivity, LeadField, LeadSource,
)
from asthron.providers.events import LeadCreated, LeadUpdated
from asthron.services import events, lead_fields, lead_merge, lead_pipeline
from asthron.services.lead_fields import FieldError

log = logging.getLogger(__name__)

__all__ = ["LeadValidationError", "capture", "validate", "update", "set_stage", "add_note", "record_activity",
           "lead_for_conversation", "fields", "ensure_default_fields", "missing_required", "ActivityKind"]

DEFAULT_FIELDS = (("name", "Name", FieldKind.text, False), ("email", "Email", FieldKind.email, True),
                  ("phone", "Phone", FieldKind.phone, False))
CONTACT_NEEDED = "Give an email address or a phone number."
NOTE_MAX = 500
record_activity = lead_pipeline.record_activity


class LeadValidationError(ValueError):
    """Values that do not fit the workspace's lead fields; `.errors` maps each field key to a sentence."""

    def __init__(self, errors):
        self.errors = dict(errors)
        super().__init__("; ".join(f"{key}: {message}" for key, message in self.errors.items()))


# --- Fields -------------------------------------------------------------------------------------------

def fields(workspace_id):
    """Return the workspace's lead fields in form order; core fields it has not saved yet come as unsaved defaults."""
    saved = list(db.session.scalars(select(LeadField).where(LeadField.workspace_id == workspace_id)
                                    .order_by(LeadField.position, LeadField.id)))
    have = {field.key for field in saved}
    defaults = [_default_field(workspace_id, position, spec) for position, spec in enumerate(DEFAULT_FIELDS)
                if spec[0] not in have]
    return sorted(defaults + saved, key=lambda f: (f.position or 0, f.id is not None, f.id or 0))


def _default_field(workspace_id, position, spec):
    key, label, kind, required = spec
    return LeadField(workspace_id=workspace_id, key=key, label=label, kind=kind, required=required,
                     options=[], position=position)


def ensure_default_fields(workspace_id):
    """Save the core fields (name, email, phone) a workspace does not have yet; return all its fields."""
    for field in fields(workspace_id):
        if field.id is None:
            db.session.add(field)
    db.session.flush()
    return fields(workspace_id)


def phone_region(workspace_id):
    """Return the region phone numbers without a country code are read in, or None."""
    from asthron.services import widget_settings

    return (widget_settings.current(workspace_id).phone_region
            or current_app.config.get("ASTHRON_LEADS_PHONE_REGION") or None)


def validate(workspace_id, values, *, partial=False):
    """Return `values` cleaned against the workspace's fields; raise LeadValidationError naming each bad one.

    With `partial`, fields that are not given are left alone; otherwise every required field must be given.
    """
    if not isinstance(values, Mapping):
        raise LeadValidationError({"fields": "Send the fields as an object of key: value."})
    known = {field.key: field for field in fields(workspace_id)}
    region = phone_region(workspace_id)
    errors, cleaned = {}, {}
    for key, value in values.items():
        field = known.get(key)
        if field is None:
            errors[str(key)[:64]] = "There is no such field."
            continue
        try:
            cleaned[key] = lead_fields.clean(field, value, phone_region=region)
        except FieldError as exc:
            errors[key] = str(exc)
    for key, field in known.items():
        if key in errors or not field.required or (partial and key not in values):
            continue
        if field.kind == FieldKind.checkbox and cleaned.get(key) is not True:
            errors[key] = "Tick this box to continue."
        elif cleaned.get(key) is None:
            errors[key] = "This field is required."
    if errors:
        raise LeadValidationError(errors)
    return cleaned


def missing_required(lead):
    """Return the keys of the required fields `lead` has no value for, in form order."""
    from asthron.services.lead_rules import is_set, lead_value

    return [field.key for field in fields(lead.workspace_id)
            if field.required and not is_set(lead_value(lead, field.key))]


# --- Capture and update -------------------------------------------------------------------------------

def capture(workspace_id, *, source, values, conversation_id=None, consent_version=None, consented_at=None,
            actor_id=None, require_all=True, note=None):
    """Validate `values`, then create the person's lead or update (and merge) the matching ones; return it.

    `require_all=False` accepts a capture that lacks required fields (the AI collects them one by one).
    """
    cleaned = validate(workspace_id, values, partial=not require_all)
    given = {key: value for key, value in cleaned.items() if value is not None}
    consent = (consent_version, consented_at) if consent_version else None
    context = {"source": LeadSource(source), "conversation_id": conversation_id, "consent": consent,
               "actor_id": actor_id}
    for attempt in (1, 2):
        try:
            with _savepoint():
                lead, created, merged, changed = _write(workspace_id, given, context)
            break
        except IntegrityError:
            # Another transaction saved this email or phone since we looked: look again and update it.
            if attempt == 2:
                raise
            log.info("lead capture in workspace %s met a concurrent duplicate; retrying as an update", workspace_id)
    _settle(lead, changed, created=created, merged=merged, actor_id=actor_id, note=note)
    return lead


def update(lead, values, *, actor_id=None, note=None):
    """Change some of `lead`'s values (validated, partial), merging any other lead the new email or phone names."""
    given = {key: value for key, value in validate(lead.workspace_id, values, partial=True).items()}
    with _savepoint():
        others = [m for m in _matches(lead.workspace_id, given, None) if m.id != lead.id]
        merged = lead_merge.absorb(lead, others, actor_id=actor_id)
        changed = _assign(lead, given, clear=True)
        if not (lead.email or lead.phone):
            raise LeadValidationError({"email": CONTACT_NEEDED, "phone": CONTACT_NEEDED})
        db.session.flush()
    _settle(lead, {k: given[k] for k in changed}, created=False, merged=merged, actor_id=actor_id, note=note)
    return lead


@contextmanager
def _savepoint():
    connection = db.session.connection()
    if connection.dialect.name == "sqlite" and not connection.connection.dbapi_connection.in_transaction:
        # pysqlite begins its transaction lazily, so a SAVEPOINT would start (and RELEASE commit) one alone.
        connection.exec_driver_sql("BEGIN")
    with db.session.begin_nested():
        yield


def _write(workspace_id, given, context):
    matches = _matches(workspace_id, given, context["conversation_id"])
    if not matches:
        if not (given.get("email") or given.get("phone")):
            raise LeadValidationError({"email": CONTACT_NEEDED, "phone": CONTACT_NEEDED})
        lead = Lead(workspace_id=workspace_id, source=context["source"], conversation_id=context["conversation_id"],
                    values={}, tags=[], score=0)
        _assign(lead, given)
        _consent(lead, context["consent"])
        db.session.add(lead)
        db.session.flush()
        return lead, True, [], given
    lead = matches[0]
    merged = lead_merge.absorb(lead, matches[1:], actor_id=context["actor_id"])
    changed = _assign(lead, given)
    _consent(lead, context["consent"])
    _link_conversation(lead, context["conversation_id"], actor_id=context["actor_id"])
    db.session.flush()
    return lead, False, merged, changed


def _matches(workspace_id, given, conversation_id):
    """Return the leads this capture names, by email, then phone, then conversation, without repeats.

    The conversation's lead joins only when its email and phone do not contradict the others': a
    visitor who names someone else's known address must not merge two people.
    """
    found = []
    for column, value in ((Lead.email, given.get("email")), (Lead.phone, given.get("phone")),
                          (Lead.conversation_id, conversation_id)):
        if not value:
            continue
        lead = db.session.scalars(select(Lead).where(Lead.workspace_id == workspace_id, column == value)
                                  .order_by(Lead.id).limit(1)).first()
        if lead is None or lead in found:
            continue
        if column is Lead.conversation_id and any(_contradicts(lead, other) for other in found):
            continue
        found.append(lead)
    return found


def _contradicts(one, other):
    return any(getattr(one, key) and getattr(other, key) and getattr(one, key) != getattr(other, key)
               for key in ("email", "phone"))


def _assign(lead, given, *, clear=False):
    """Set the given values on `lead` (the newer value wins); return {key: value} of those that changed."""
    changed, values = {}, dict(lead.values or {})
    for key, value in given.items():
        if value is None and not clear:
            continue
        if key in CORE_FIELD_KEYS:
            if getattr(lead, key) != value:
                setattr(lead, key, value)
                changed[key] = value
        elif values.get(key) != value:
            if value is None:
                values.pop(key, None)
            else:
                values[key] = value
            changed[key] = value
    lead.values = values  # a new dict, so the JSON column sees the change
    return changed


def _consent(lead, consent):
    if consent:
        lead.consent_version, lead.consented_at = consent


def _link_conversation(lead, conversation_id, *, actor_id=None):
    """Point `lead` at its newest conversation; the timeline keeps the earlier one."""
    if not conversation_id or lead.conversation_id == conversation_id:
        return
    previous = lead.conversation_id
    lead.conversation_id = conversation_id
    record_activity(lead, ActivityKind.conversation, "Linked to a new conversation",
                    meta={"conversation_id": conversation_id, "previous_conversation_id": previous},
                    actor_id=actor_id)


def _settle(lead, changed, *, created, merged, actor_id, note):
    """Write the timeline, recompute score and stage, emit events and hand the lead to the rules of others."""
    stages = lead_pipeline.ensure_default_stages(lead.workspace_id)
    if created:
        lead.stage_id, lead.stage = stages[0].id, stages[0]
        record_activity(lead, ActivityKind.created, f"Captured from {_SOURCE_LABEL[LeadSource(lead.source)]}",
                        meta={"source": LeadSource(lead.source).value, "fields": sorted(changed)}, actor_id=actor_id)
        events.emit(LeadCreated(workspace_id=lead.workspace_id, lead_id=lead.id,
                                conversation_id=lead.conversation_id))
        if stages[0].qualified:
            lead_pipeline.emit_qualified(lead, stages[0])
    elif changed:
        record_activity(lead, ActivityKind.updated, "Updated " + ", ".join(sorted(changed)),
                        meta={"fields": sorted(changed)}, actor_id=actor_id)
    if note:
        add_note(lead, note, actor_id=actor_id)
    before = lead.score
    lead_pipeline.apply_rules(lead, all_stages=stages, quiet=created)
    if created:
        _notify_new_lead(lead)
    else:
        keys = sorted(changed) + (["score"] if lead.score != before else [])
        if keys or merged:
            events.emit(LeadUpdated(workspace_id=lead.workspace_id, lead_id=lead.id, fields=tuple(keys),
                                    merged_lead_ids=tuple(merged)))
    db.session.flush()
    _check_handoff_rule(lead)


_SOURCE_LABEL = {LeadSource.widget: "the widget's form", LeadSource.ai: "the AI assistant",
                 LeadSource.imported: "an import", LeadSource.api: "the API or the admin"}


def _notify_new_lead(lead):
    from asthron.services import notifications

    notifications.notify_staff(workspace_id=lead.workspace_id, template="new_lead", context={"lead_id": lead.id})


def _check_handoff_rule(lead):
    from asthron.services import handoff  # imported here: handoff imports the conversation services

    handoff.check_lead_rule(lead)


# --- Stage, notes, conversation ------------------------------------------------------------------------

def set_stage(lead, stage_id, *, actor_id=None):
    """Move `lead` to stage `stage_id` of its workspace (a person's choice: backwards too); return True if it moved."""
    stages = lead_pipeline.stages(lead.workspace_id)
    stage = next((s for s in stages if s.id == stage_id), None)
    if stage is None:
        raise LeadValidationError({"stage": "Choose one of this workspace's pipeline stages."})
    moved = lead_pipeline.move(lead, stage, actor_id=actor_id, all_stages=stages)
    db.session.flush()
    return moved


def add_note(lead, text, *, actor_id):
    """Add a note to `lead`'s timeline and return the activity."""
    text = (text or "").strip() if isinstance(text, str) else ""
    if not text:
        raise LeadValidationError({"note": "Write the note first."})
    if len(text) > NOTE_MAX:
        raise LeadValidationError({"note": f"Keep a note under {NOTE_MAX} characters."})
    return record_activity(lead, ActivityKind.note, text, actor_id=actor_id)


def lead_for_conversation(conversation):
    """Return the lead of a conversation (or conversation id): the one pointing at it, else one linked to it before."""
    conversation_id = conversation if isinstance(conversation, str) else conversation.id
    lead = db.session.scalars(select(Lead).where(Lead.conversation_id == conversation_id)
                              .order_by(Lead.id).limit(1)).first()
    if lead is not None:
        return lead
    # The conversation's id is random and 20+ characters long, so a text match in the timeline's JSON is exact.
    activity = db.session.scalars(select(LeadActivity).where(
        LeadActivity.kind.in_([ActivityKind.conversation, ActivityKind.merged]),
        cast(LeadActivity.meta, String).contains(conversation_id, autoescape=True))
        .order_by(LeadActivity.id.desc()).limit(1)).first()
    return activity.lead if activity is not None else None


def assign_owner(lead, user_id, *, actor_id=None):
    """Make user `user_id` (None: nobody) the owner of `lead`; return True if the owner changed."""
    # Added by the leads admin (H2): the view checks that the user works in the lead's workspace.
    if lead.owner_id == user_id:
        return False
    lead.owner_id = user_id
    record_activity(lead, ActivityKind.updated, "Owner changed" if user_id else "Owner removed",
                    meta={"owner_id": user_id}, actor_id=actor_id)
    events.emit(LeadUpdated(workspace_id=lead.workspace_id, lead_id=lead.id, fields=("owner",)))
    db.session.flush()
    return True
