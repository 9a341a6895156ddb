"""Leads and their per-workspace configuration: custom fields, scoring rules, pipeline stages and stage rules."""
import enum

from sqlalchemy import (
    JSON, Boolean, Column, DateTime, Enum, ForeignKey, Index, Integer, String, Text, UniqueConstraint, text,
)
from sqlalchemy.orm import relationship

from asthron.models.base import Model, Timestamped, WorkspaceOwned, utcnow


class LeadSource(str, enum.Enum):
    widget = "widget"  # the widget's lead form
    ai = "ai"  # the AI's capture_lead tool
    imported = "import"  # CSV import
    api = "api"  # the REST API or an admin typing it in


class FieldKind(str, enum.Enum):
    text = "text"
    email = "email"
    phone = "phone"
    number = "number"
    select = "select"
    multiselect = "multiselect"
    date = "date"
    checkbox = "checkbox"


class RuleOperator(str, enum.Enum):
    equals = "equals"
    contains = "contains"
    greater_than = "gt"
    less_than = "lt"
    is_set = "is_set"


# Keys whose values live in the Lead's own columns; every other field's value lives in Lead.values.
CORE_FIELD_KEYS = ("name", "email", "phone")


def _enum(kind, name, length=16):
    """Store the member name, like the other enums of the schema."""
    return Enum(kind, name=name, native_enum=False, length=length)


class LeadField(WorkspaceOwned, Timestamped, Model):
    """A field of the workspace's lead form; `question` makes it a qualification question the AI asks too."""

    __tablename__ = "lead_field"
    __table_args__ = (UniqueConstraint("workspace_id", "key", name="uq_lead_field_workspace_key"),)

    id = Column(Integer, primary_key=True)
    key = Column(String(64), nullable=False)  # [a-z][a-z0-9_]*, stable once leads carry values
    label = Column(String(120), nullable=False)
    kind = Column(_enum(FieldKind, "lead_field_kind"), nullable=False, default=FieldKind.text)
    required = Column(Boolean, nullable=False, default=False)
    help_text = Column(String(300), nullable=True)
    options = Column(JSON, nullable=False, default=list)  # choices of select and multiselect
    question = Column(String(300), nullable=True)  # how the widget and the AI ask for it
    position = Column(Integer, nullable=False, default=0)
    workspace = relationship("Workspace")

    def __repr__(self):
        return self.label


class PipelineStage(WorkspaceOwned, Timestamped, Model):
    """A column of the workspace's lead pipeline; stages are ordered by position and may be renamed."""

    __tablename__ = "pipeline_stage"
    __table_args__ = (UniqueConstraint("workspace_id", "name", name="uq_pipeline_stage_workspace_name"),)

    id = Column(Integer, primary_key=True)
    name = Column(String(80), nullable=False)
    position = Column(Integer, nullable=False, default=0)
    # The stage whose entry emits lead.qualified (at most one per workspace, enforced by the service).
    qualified = Column(Boolean, nullable=False, default=False)
    workspace = relationship("Workspace")

    def __repr__(self):
        return self.name


class ScoringRule(WorkspaceOwned, Timestamped, Model):
    """A condition on a lead field that adds (or, when negative, takes away) points."""

    __tablename__ = "scoring_rule"

    id = Column(Integer, primary_key=True)
    field_key = Column(String(64), nullable=False)
    operator = Column(_enum(RuleOperator, "rule_operator"), nullable=False)
    value = Column(String(200), nullable=True)  # unused by is_set
    points = Column(Integer, nullable=False)
    position = Column(Integer, nullable=False, default=0)
    workspace = relationship("Workspace")


class StageRule(WorkspaceOwned, Timestamped, Model):
    """Move a lead to `stage` when a condition holds; `field_key` may be "score"."""

    __tablename__ = "stage_rule"

    id = Column(Integer, primary_key=True)
    field_key = Column(String(64), nullable=False)
    operator = Column(_enum(RuleOperator, "stage_rule_operator"), nullable=False)
    value = Column(String(200), nullable=True)
    stage_id = Column(Integer, ForeignKey("pipeline_stage.id", ondelete="CASCADE"), nullable=False, index=True)
    position = Column(Integer, nullable=False, default=0)
    workspace = relationship("Workspace")
    stage = relationship("PipelineStage")


class Lead(WorkspaceOwned, Timestamped, Model):
    """A person who left details in a workspace; one per normalised email or phone per workspace."""

    __tablename__ = "lead"
    # The score follows from the lead's (audited) values and the workspace's (audited) rules; a rule
    # change rescoring every lead would otherwise write one audit entry per lead.
    __audit_ignore__ = ("score",)
    __table_args__ = (
        # Dedupe is done by the service; these make a concurrent duplicate fail instead of slipping in.
        Index("uq_lead_workspace_email", "workspace_id", "email", unique=True,
              postgresql_where=text("email IS NOT NULL"), sqlite_where=text("email IS NOT NULL")),
        Index("uq_lead_workspace_phone", "workspace_id", "phone", unique=True,
              postgresql_where=text("phone IS NOT NULL"), sqlite_where=text("phone IS NOT NULL")),
        # The leads list and board read newest first per workspace (and stage); with `id` as the last
        # key the index gives the list's exact order (created_at, id), so a page stops after its rows.
        Index("ix_lead_workspace_stage_created", "workspace_id", "stage_id", "created_at", "id"),
        Index("ix_lead_workspace_created", "workspace_id", "created_at", "id"),
    )

    id = Column(Integer, primary_key=True)
    conversation_id = Column(String(40), ForeignKey("conversation.id", ondelete="SET NULL"), nullable=True,
                             index=True)
    source = Column(_enum(LeadSource, "lead_source"), nullable=False)
    name = Column(String(200), nullable=True)
    email = Column(String(320), nullable=True)  # lower-cased
    phone = Column(String(20), nullable=True)  # E.164
    notes = Column(Text, nullable=True)
    values = Column("field_values", JSON, nullable=False, default=dict)  # custom field key -> validated value
    tags = Column(JSON, nullable=False, default=list)
    score = Column(Integer, nullable=False, default=0, index=True)
    stage_id = Column(Integer, ForeignKey("pipeline_stage.id", ondelete="SET NULL"), nullable=True, index=True)
    owner_id = Column(Integer, ForeignKey("ab_user.id", ondelete="SET NULL"), nullable=True, index=True)
    consent_version = Column(String(40), nullable=True)
    consented_at = Column(DateTime(timezone=True), nullable=True)
    workspace = relationship("Workspace")
    stage = relationship("PipelineStage")
    owner = relationship("User", foreign_keys=[owner_id])
    activities = relationship("LeadActivity", back_populates="lead", order_by="LeadActivity.id",
                              passive_deletes=True)

    def __repr__(self):
        return self.name or self.email or self.phone or f"Lead {self.id}"


class ActivityKind(str, enum.Enum):
    created = "created"
    updated = "updated"
    stage = "stage"
    note = "note"
    merged = "merged"
    conversation = "conversation"
    booking = "booking"


class LeadActivity(WorkspaceOwned, Model):
    """One entry of a lead's timeline: created, updated, stage change, note, merge, booking."""

    __tablename__ = "lead_activity"
    # Timeline text may quote personal data; the audited Lead row already records who changed what.
    __audited__ = False
    __table_args__ = (Index("ix_lead_activity_lead_id_id", "lead_id", "id"),)

    id = Column(Integer, primary_key=True)
    lead_id = Column(Integer, ForeignKey("lead.id", ondelete="CASCADE"), nullable=False)
    kind = Column(_enum(ActivityKind, "lead_activity_kind"), nullable=False)
    summary = Column(String(500), nullable=False)
    meta = Column(JSON, nullable=False, default=dict)  # e.g. {"from": 1, "to": 2}, {"booking_id": 5}
    actor_id = Column(Integer, ForeignKey("ab_user.id", ondelete="SET NULL"), nullable=True)
    created_at = Column(DateTime(timezone=True), nullable=False, default=utcnow)
    lead = relationship("Lead", back_populates="activities")
    actor = relationship("User", foreign_keys=[actor_id])
