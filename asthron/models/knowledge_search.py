"""Full-text search structures for knowledge entries, created with the `knowledge_entry` table.

SQLite: an FTS5 table `knowledge_fts` with external content, kept in sync by triggers. PostgreSQL: a
GIN expression index on `to_tsvector('english', title || ' ' || body)` (queries must repeat that
expression exactly). The migration runs the same statements; these listeners cover `create_all`.
"""
from sqlalchemy import event, text

from asthron.models.chat import KnowledgeEntry

SQLITE_DDL = [
    "DROP TABLE IF EXISTS knowledge_fts",
    ("CREATE VIRTUAL TABLE knowledge_fts USING fts5(title, body, content='knowledge_entry', "
     "content_rowid='id', tokenize='porter unicode61 remove_diacritics 2')"),
    ("CREATE TRIGGER knowledge_entry_fts_insert AFTER INSERT ON knowledge_entry BEGIN "
     "INSERT INTO knowledge_fts(rowid, title, body) VALUES (new.id, new.title, new.body); END"),
    ("CREATE TRIGGER knowledge_entry_fts_delete AFTER DELETE ON knowledge_entry BEGIN "
     "INSERT INTO knowledge_fts(knowledge_fts, rowid, title, body) VALUES ('delete', old.id, old.title, old.body); "
     "END"),
    ("CREATE TRIGGER knowledge_entry_fts_update AFTER UPDATE OF title, body ON knowledge_entry BEGIN "
     "INSERT INTO knowledge_fts(knowledge_fts, rowid, title, body) VALUES ('delete', old.id, old.title, old.body); "
     "INSERT INTO knowledge_fts(rowid, title, body) VALUES (new.id, new.title, new.body); END"),
    # Entries that existed before the index (a migration on a filled database) are indexed too.
    "INSERT INTO knowledge_fts(knowledge_fts) VALUES ('rebuild')",
]
SQLITE_DROP_DDL = ["DROP TABLE IF EXISTS knowledge_fts"]
POSTGRESQL_DDL = [
    ("CREATE INDEX IF NOT EXISTS ix_knowledge_entry_fts ON knowledge_entry "
     "USING gin (to_tsvector('english', title || ' ' || body))"),
]
POSTGRESQL_DROP_DDL = ["DROP INDEX IF EXISTS ix_knowledge_entry_fts"]


def _create(target, connection, **kw):
    for statement in {"sqlite": SQLITE_DDL, "postgresql": POSTGRESQL_DDL}.get(connection.dialect.name, []):
        connection.execute(text(statement))


def _drop(target, connection, **kw):
    # The FTS table is not in the metadata, so dropping knowledge_entry would leave it behind.
    if connection.dialect.name == "sqlite":
        for statement in SQLITE_DROP_DDL:
            connection.execute(text(statement))


event.listen(KnowledgeEntry.__table__, "after_create", _create)
event.listen(KnowledgeEntry.__table__, "after_drop", _drop)


def is_search_object(name):
    """Say whether a table or index is one of these structures (Alembic's autogenerate must skip them)."""
    return bool(name) and (name.startswith("knowledge_fts") or name == "ix_knowledge_entry_fts")
