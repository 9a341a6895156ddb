"""Agencies, their client workspaces, and who may act in which of them."""
import enum
import secrets

from sqlalchemy import (
    JSON, CheckConstraint, Column, Enum, ForeignKey, Integer, String, UniqueConstraint,
)
from flask_appbuilder.security.sqla.models import User  # noqa: F401  (resolves relationship("User"))
from sqlalchemy.orm import relationship

from asthron.models.base import Model, Timestamped
from asthron.tenancy import clause


class WorkspaceStatus(str, enum.Enum):
    active = "active"
    suspended = "suspended"
    closed = "closed"


class Role(str, enum.Enum):
    """Roles defined in code; FAB roles of the same names carry the permissions."""

    operator = "Operator"
    agency_admin = "Agency admin"
    workspace_admin = "Workspace admin"
    staff = "Staff"
    client = "Client"


def new_public_key():
    """Return a fresh public widget key (safe to publish on a website)."""
    return "pk_" + secrets.token_urlsafe(18)


class Agency(Timestamped, Model):
    __tablename__ = "agency"

    id = Column(Integer, primary_key=True)
    name = Column(String(200), nullable=False, unique=True)
    slug = Column(String(80), nullable=False, unique=True)
    workspaces = relationship("Workspace", back_populates="agency", passive_deletes=True)

    @classmethod
    def tenant_clause(cls, scope):
        return clause(cls.id, scope.agency_ids)

    def __repr__(self):
        return self.name


class Workspace(Timestamped, Model):
    __tablename__ = "workspace"
    __table_args__ = (UniqueConstraint("agency_id", "slug", name="uq_workspace_agency_slug"),)

    id = Column(Integer, primary_key=True)
    agency_id = Column(Integer, ForeignKey("agency.id", ondelete="CASCADE"), nullable=False, index=True)
    name = Column(String(200), nullable=False)
    slug = Column(String(80), nullable=False)
    public_key = Column(String(64), nullable=False, unique=True, default=new_public_key)
    allowed_origins = Column(JSON, nullable=False, default=list)
    time_zone = Column(String(64), nullable=False, default="UTC")
    status = Column(Enum(WorkspaceStatus, name="workspace_status", native_enum=False, length=16),
                    nullable=False, default=WorkspaceStatus.active)
    agency = relationship("Agency", back_populates="workspaces")

    @classmethod
    def tenant_clause(cls, scope):
        return clause(cls.id, scope.workspace_ids)

    def __repr__(self):
        return self.name


class Membership(Timestamped, Model):
    """A user's role in one agency (all its workspaces) or in one workspace."""

    __tablename__ = "membership"
    __table_args__ = (
        CheckConstraint("(agency_id IS NULL) <> (workspace_id IS NULL)", name="ck_membership_one_scope"),
        UniqueConstraint("user_id", "agency_id", "workspace_id", name="uq_membership"),
    )

    id = Column(Integer, primary_key=True)
    user_id = Column(Integer, ForeignKey("ab_user.id", ondelete="CASCADE"), nullable=False, index=True)
    agency_id = Column(Integer, ForeignKey("agency.id", ondelete="CASCADE"), nullable=True, index=True)
    workspace_id = Column(Integer, ForeignKey("workspace.id", ondelete="CASCADE"), nullable=True, index=True)
    role = Column(Enum(Role, name="membership_role", native_enum=False, length=32), nullable=False)
    user = relationship("User", foreign_keys=[user_id])
    agency = relationship("Agency")
    workspace = relationship("Workspace")

    @classmethod
    def tenant_clause(cls, scope):
        from sqlalchemy import or_

        return or_(clause(cls.agency_id, scope.admin_agency_ids), clause(cls.workspace_id, scope.workspace_ids),
                   cls.user_id == scope.user_id)

    def __repr__(self):
        where = self.workspace or self.agency
        return f"{self.user} - {self.role.value if self.role else ''} - {where}"
