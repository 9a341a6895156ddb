"""The append-only, hash-chained audit log."""
from sqlalchemy import JSON, BigInteger, Column, DateTime, Index, Integer, String

from asthron.models.base import Model


class AuditEntry(Model):
    """One audited action; `entry_hash` is SHA-256 over the canonical JSON of the other fields."""

    __tablename__ = "audit_entry"
    # The viewer lists newest first within a tenant, a filter or a time range: each index hands those
    # rows over in time order, so a page costs the same at any size of the log. On PostgreSQL the
    # indexes behind the list and its actor and action filters also carry the tenant columns, so the
    # tenant check and the capped count never read the table.
    __table_args__ = (
        *(Index(f"ix_audit_entry_{column}_created_at", column, "created_at")
          for column in ("workspace_id", "agency_id", "actor_id")),
        *(Index(name, *columns, postgresql_include=["id", "workspace_id", "agency_id", "actor_id"])
          for name, columns in (("ix_audit_entry_created_at_tenant", ["created_at"]),
                                ("ix_audit_entry_actor_created_at", ["actor", "created_at"]),
                                ("ix_audit_entry_action_created_at", ["action", "created_at"]))),
    )

    id = Column(Integer, primary_key=True)
    seq = Column(BigInteger, nullable=False, unique=True)
    created_at = Column(DateTime(timezone=True), nullable=False)
    actor_id = Column(Integer, nullable=True)
    actor = Column(String(256), nullable=False, default="system")
    agency_id = Column(Integer, nullable=True)
    workspace_id = Column(Integer, nullable=True)
    ip = Column(String(64), nullable=True)
    action = Column(String(64), nullable=False)
    target_type = Column(String(64), nullable=True)
    target_id = Column(String(64), nullable=True)
    details = Column(JSON, nullable=False, default=dict)
    prev_hash = Column(String(64), nullable=False)
    entry_hash = Column(String(64), nullable=False, unique=True)

    def __repr__(self):
        return f"#{self.seq} {self.action}"


class AuditHead(Model):
    """A single row holding the chain's last sequence number and hash; writers lock it in turn."""

    __tablename__ = "audit_head"

    id = Column(Integer, primary_key=True)
    seq = Column(BigInteger, nullable=False, default=0)
    last_hash = Column(String(64), nullable=False)


def _audit_tenant_clause(cls, scope):
    from sqlalchemy import or_

    from asthron.tenancy import clause

    if scope.workspace_ids is None:
        return clause(cls.id, None)
    return or_(clause(cls.workspace_id, scope.workspace_ids), clause(cls.agency_id, scope.admin_agency_ids),
               cls.actor_id == scope.user_id)


AuditEntry.tenant_clause = classmethod(_audit_tenant_clause)


# On PostgreSQL the database itself refuses to change or remove an entry. The same statements are
# run by the migration; the listener covers schemas made with `create_all` (tests).
APPEND_ONLY_DDL = [
    """CREATE OR REPLACE FUNCTION audit_entry_append_only() RETURNS trigger AS $$
BEGIN
  RAISE EXCEPTION 'audit_entry is append-only: % refused', TG_OP;
END;
$$ LANGUAGE plpgsql""",
    "DROP TRIGGER IF EXISTS audit_entry_no_change ON audit_entry",
    """CREATE TRIGGER audit_entry_no_change BEFORE UPDATE OR DELETE ON audit_entry
FOR EACH ROW EXECUTE FUNCTION audit_entry_append_only()""",
]


def _install_append_only(target, connection, **kw):
    if connection.dialect.name == "postgresql":
        from sqlalchemy import text

        for statement in APPEND_ONLY_DDL:
            connection.execute(text(statement))


from sqlalchemy import event as _event  # noqa: E402

_event.listen(AuditEntry.__table__, "after_create", _install_append_only)
