"""Leads: a visitor's details captured in a workspace (the lead pipeline builds on this)."""
from sqlalchemy import JSON, Column, ForeignKey, Integer, String, Text
from sqlalchemy.orm import relationship

from asthron.models.base import Model, Timestamped, WorkspaceOwned


class Lead(WorkspaceOwned, Timestamped, Model):
    __tablename__ = "lead"

    id = Column(Integer, primary_key=True)
    conversation_id = Column(String(40), ForeignKey("conversation.id", ondelete="SET NULL"), nullable=True,
                             index=True)
    source = Column(String(20), nullable=False)  # widget, ai, import, api
    name = Column(String(200), nullable=True)
    email = Column(String(320), nullable=True, index=True)
    phone = Column(String(40), nullable=True)
    notes = Column(Text, nullable=True)
    fields = Column(JSON, nullable=False, default=dict)
    workspace = relationship("Workspace")

    def __repr__(self):
        return self.name or self.email or self.phone or f"Lead {self.id}"
