"""Integrations: the operator's own sub-processor entries and the history of the public list."""
from sqlalchemy import JSON, Boolean, Column, DateTime, Integer, String, Text

from asthron.models.base import Model, Timestamped, utcnow


class Subprocessor(Timestamped, Model):
    """A sub-processor the operator declares by hand (hosting, support desk), beside those plugins declare."""

    __tablename__ = "subprocessor"
    __audited__ = True  # the public list is a contractual statement: who changed it matters

    id = Column(Integer, primary_key=True)
    name = Column(String(200), nullable=False)
    purpose = Column(String(500), nullable=False)
    data_categories = Column(Text, nullable=False)  # comma- or line-separated
    location = Column(String(200), nullable=False)
    dpa_url = Column(String(500), nullable=False)
    enabled = Column(Boolean, nullable=False, default=True)

    def category_list(self):
        """Return the data categories as a list of stripped, non-empty strings."""
        parts = (self.data_categories or "").replace("\n", ",").split(",")
        return [part.strip() for part in parts if part.strip()]

    def __repr__(self):
        return self.name


class SubprocessorListChange(Model):
    """A version of the public sub-processor list: its fingerprint, content and when it was first seen."""

    __tablename__ = "subprocessor_list_change"

    id = Column(Integer, primary_key=True)
    fingerprint = Column(String(64), nullable=False, index=True)
    entries = Column(JSON, nullable=False)
    changed_at = Column(DateTime(timezone=True), nullable=False, default=utcnow)

    def __repr__(self):
        return f"{self.changed_at:%Y-%m-%d} {self.fingerprint[:12]}"
