"""Shared model pieces: the declarative base, time helpers and the tenant-owned mixin."""
from datetime import datetime, timezone

from flask_appbuilder import Model
from sqlalchemy import Column, DateTime, ForeignKey, Integer
from sqlalchemy.orm import declared_attr

__all__ = ["Model", "utcnow", "WorkspaceOwned", "Timestamped"]


def utcnow():
    """Return the current time in UTC, timezone-aware."""
    return datetime.now(timezone.utc)


class Timestamped:
    """Created and updated times, in UTC."""

    created_at = Column(DateTime(timezone=True), default=utcnow, nullable=False)
    updated_at = Column(DateTime(timezone=True), default=utcnow, onupdate=utcnow, nullable=False)


class WorkspaceOwned:
    """A row that belongs to exactly one workspace; the tenant guard filters it by the caller's scope."""

    @declared_attr
    def workspace_id(cls):
        return Column(Integer, ForeignKey("workspace.id", ondelete="CASCADE"), nullable=False, index=True)

    @classmethod
    def tenant_clause(cls, scope):
        """Return the SQL condition that limits this model to `scope`."""
        from asthron.tenancy import clause

        return clause(cls.workspace_id, scope.data_workspace_ids)
