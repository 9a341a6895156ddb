"""Conversations with website visitors, the widget's settings, knowledge, AI connections and usage."""
import enum
import secrets

from sqlalchemy import (
    JSON, BigInteger, Boolean, Column, Date, DateTime, Enum, ForeignKey, Index, Integer, String, Text,
)
from sqlalchemy.orm import relationship

from asthron.models.base import Model, Timestamped, WorkspaceOwned, utcnow


class MessageRole(str, enum.Enum):
    visitor = "visitor"
    assistant = "assistant"
    staff = "staff"
    system = "system"
    note = "note"  # an internal note between staff; never shown to the visitor or the AI


class ConversationOwner(str, enum.Enum):
    """Who answers: the AI, nobody yet (waiting for a human), a named human, or nobody (closed)."""

    ai = "ai"
    waiting = "waiting"
    human = "human"
    closed = "closed"


def new_conversation_id():
    """Return an unguessable public conversation id."""
    return "c_" + secrets.token_urlsafe(16)


class AIConnection(Timestamped, Model):
    """An operator-defined endpoint of an AI provider (OpenAI or any compatible server)."""

    __tablename__ = "ai_connection"

    id = Column(Integer, primary_key=True)
    name = Column(String(100), nullable=False, unique=True)
    provider = Column(String(64), nullable=False, default="openai")
    base_url = Column(String(500), nullable=True)
    # A `{"$env": "VAR"}` reference, never the key itself.
    api_key_ref = Column(JSON, nullable=True)
    default_model = Column(String(200), nullable=True)
    enabled = Column(Boolean, nullable=False, default=True)

    def __repr__(self):
        return self.name


class WidgetSettings(WorkspaceOwned, Timestamped, Model):
    """A workspace's widget appearance, consent notice and AI configuration (one row per workspace)."""

    __tablename__ = "widget_settings"
    __table_args__ = (Index("uq_widget_settings_workspace", "workspace_id", unique=True),)

    id = Column(Integer, primary_key=True)
    # Appearance and text
    colour = Column(String(7), nullable=False, default="#2563eb")
    position = Column(String(5), nullable=False, default="right")
    assistant_name = Column(String(80), nullable=False, default="Assistant")
    greeting = Column(String(500), nullable=False, default="Hi! How can we help you today?")
    language = Column(String(10), nullable=False, default="en")
    strings = Column(JSON, nullable=False, default=dict)
    # Consent
    consent_required = Column(Boolean, nullable=False, default=False)
    consent_notice = Column(Text, nullable=False, default="")
    notice_version = Column(String(40), nullable=False, default="1")
    privacy_url = Column(String(500), nullable=True)
    # AI
    ai_provider = Column(String(64), nullable=False, default="offline")
    ai_connection_id = Column(Integer, ForeignKey("ai_connection.id", ondelete="SET NULL"), nullable=True)
    model = Column(String(200), nullable=True)
    instructions = Column(Text, nullable=False, default="")
    enabled_tools = Column(JSON, nullable=False, default=lambda: ["capture_lead", "handoff"])
    qualification_questions = Column(JSON, nullable=False, default=list)
    max_reply_tokens = Column(Integer, nullable=False, default=500)
    monthly_token_budget = Column(BigInteger, nullable=True)  # None: no limit
    # Leads: when the widget shows the lead form ("off", "start", "after_reply"; the AI may still ask
    # for it), and the region (ISO 3166 alpha-2) phone numbers without a +country code are read in.
    lead_form = Column(String(16), nullable=False, default="off", server_default="off")
    phone_region = Column(String(2), nullable=True)

    workspace = relationship("Workspace")
    ai_connection = relationship("AIConnection")

    def __repr__(self):
        return f"Widget settings of {self.workspace}"


class KnowledgeEntry(WorkspaceOwned, Timestamped, Model):
    """A FAQ entry or a document the assistant answers from."""

    __tablename__ = "knowledge_entry"

    id = Column(Integer, primary_key=True)
    kind = Column(String(16), nullable=False, default="faq")  # faq or document
    title = Column(String(300), nullable=False)
    body = Column(Text, nullable=False)
    workspace = relationship("Workspace")

    def __repr__(self):
        return self.title


class Conversation(WorkspaceOwned, Timestamped, Model):
    """One visitor's conversation with a workspace."""

    __tablename__ = "conversation"
    # Bumped by every message; auditing it would log each message again.
    # visitor_email is personal data: it must stay erasable, so it is not copied into the audit log.
    __audit_ignore__ = ("last_message_at", "updated_at", "visitor_email")

    id = Column(String(40), primary_key=True, default=new_conversation_id)
    token_hash = Column(String(64), nullable=False)
    owner = Column(Enum(ConversationOwner, name="conversation_owner", native_enum=False, length=16),
                   nullable=False, default=ConversationOwner.ai)
    needs_human = Column(Boolean, nullable=False, default=False)
    flag_reason = Column(String(200), nullable=True)
    origin = Column(String(300), nullable=True)
    consent_version = Column(String(40), nullable=True)
    consented_at = Column(DateTime(timezone=True), nullable=True)
    last_message_at = Column(DateTime(timezone=True), nullable=True, index=True)
    # Handoff and inbox (asthron/services/handoff.py changes these with conditional updates).
    assignee_id = Column(Integer, ForeignKey("ab_user.id", ondelete="SET NULL"), nullable=True, index=True)
    handoff_at = Column(DateTime(timezone=True), nullable=True)
    closed_at = Column(DateTime(timezone=True), nullable=True)
    visitor_email = Column(String(254), nullable=True)
    transcript_sent_at = Column(DateTime(timezone=True), nullable=True)
    workspace = relationship("Workspace")
    assignee = relationship("User", foreign_keys=[assignee_id])
    messages = relationship("Message", back_populates="conversation", order_by="Message.id",
                            passive_deletes=True)

    def __repr__(self):
        return self.id


class Message(WorkspaceOwned, Model):
    """One message in a conversation; its integer id orders the conversation and resumes streams."""

    __tablename__ = "message"
    # Visitor text is personal data that must stay erasable: it is not copied into the append-only audit log.
    __audited__ = False
    __table_args__ = (Index("ix_message_conversation_id_id", "conversation_id", "id"),)

    id = Column(Integer, primary_key=True)
    conversation_id = Column(String(40), ForeignKey("conversation.id", ondelete="CASCADE"), nullable=False)
    role = Column(Enum(MessageRole, name="message_role", native_enum=False, length=16), nullable=False)
    text = Column(Text, nullable=False)
    author = Column(String(120), nullable=True)  # the staff member's display name, or the assistant's
    meta = Column(JSON, nullable=False, default=dict)
    created_at = Column(DateTime(timezone=True), nullable=False, default=utcnow)
    conversation = relationship("Conversation", back_populates="messages")

    def __repr__(self):
        return f"{self.role.value}: {self.text[:40]}"


class ConsentRecord(WorkspaceOwned, Model):
    """A visitor's acceptance of a workspace's notice, kept as evidence."""

    __tablename__ = "consent_record"

    id = Column(Integer, primary_key=True)
    conversation_id = Column(String(40), ForeignKey("conversation.id", ondelete="CASCADE"), nullable=False,
                             index=True)
    notice_version = Column(String(40), nullable=False)
    accepted_at = Column(DateTime(timezone=True), nullable=False, default=utcnow)


class UsageEntry(WorkspaceOwned, Model):
    """An append-only usage record: a visitor message, an AI reply and its tokens."""

    __tablename__ = "usage_entry"
    __audited__ = False  # itself an append-only ledger
    __table_args__ = (Index("ix_usage_entry_workspace_day", "workspace_id", "day"),)

    id = Column(Integer, primary_key=True)
    day = Column(Date, nullable=False)
    kind = Column(String(16), nullable=False)  # message or reply
    conversation_id = Column(String(40), nullable=True)
    provider = Column(String(64), nullable=True)
    model = Column(String(200), nullable=True)
    input_tokens = Column(Integer, nullable=False, default=0)
    output_tokens = Column(Integer, nullable=False, default=0)
    created_at = Column(DateTime(timezone=True), nullable=False, default=utcnow)
