"""The migrations build exactly the schema the models declare, on SQLite and PostgreSQL."""
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, text

from tests.conftest import PG_URL, WORKER, require_service

MIGRATIONS_DB = f"asthron_migrations_test{WORKER or ''}"


def _fresh_url(kind, tmp_path):
    if kind == "sqlite":
        return f"sqlite:///{tmp_path / 'migrated.db'}"
    require_service("PostgreSQL", "127.0.0.1", 5432)
    admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{MIGRATIONS_DB}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{MIGRATIONS_DB}"'))
    admin.dispose()
    return PG_URL.rsplit("/", 1)[0] + "/" + MIGRATIONS_DB


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_upgrade_matches_the_models(kind, tmp_path):
    from flask_appbuilder import Model
    from flask_migrate import upgrade

    import asthron.models  # noqa: F401
    from asthron.app import create_app
    from asthron.extensions import db

    url = _fresh_url(kind, tmp_path)
    app = create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": url, "SECRET_KEY": "x" * 40})
    with app.app_context():
        upgrade()
        with db.engine.connect() as conn:
            from asthron.models.knowledge_search import is_search_object

            context = MigrationContext.configure(conn, opts={
                "include_object": lambda obj, name, *rest: not is_search_object(name)})
            diff = compare_metadata(context, Model.metadata)
        if kind == "postgresql":
            from asthron import audit

            audit.record("test.event")  # the trigger acts per row: give it one
            with pytest.raises(Exception, match="append-only"), db.engine.begin() as conn:
                conn.execute(text("DELETE FROM audit_entry"))
        db.engine.dispose()
    assert diff == [], "the models changed without a migration: run `flask db migrate` and review it"


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_upgrading_existing_leads_keeps_them_and_frees_duplicate_addresses(kind, tmp_path):
    from flask_migrate import upgrade

    from asthron.app import create_app
    from asthron.extensions import db

    url = _fresh_url(kind, tmp_path)
    app = create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": url, "SECRET_KEY": "x" * 40})
    with app.app_context():
        upgrade(revision="d5a76509f643")  # the first release: leads had free-form fields and no dedupe
        now = "2026-01-01 00:00:00+00:00"
        with db.engine.begin() as conn:
            conn.execute(text("INSERT INTO agency (id, name, slug, created_at, updated_at) "
                              "VALUES (1, 'A', 'a', :now, :now)"), {"now": now})
            conn.execute(text("INSERT INTO workspace (id, agency_id, name, slug, public_key, allowed_origins, "
                              "time_zone, status, created_at, updated_at) VALUES "
                              "(1, 1, 'W', 'w', 'pk_1', '[]', 'UTC', 'active', :now, :now)"), {"now": now})
            for lead_id, email, phone in ((1, "Ann@Example.com", "+4420"), (2, "ann@example.com", None),
                                          (3, None, "+4420")):
                conn.execute(text("INSERT INTO lead (id, workspace_id, source, email, phone, notes, fields, "
                                  "created_at, updated_at) VALUES (:id, 1, 'ai', :email, :phone, NULL, "
                                  "'{\"budget\": \"high\"}', :now, :now)"),
                             {"id": lead_id, "email": email, "phone": phone, "now": now})
        upgrade()
        with db.engine.connect() as conn:
            rows = conn.execute(text("SELECT id, email, phone, notes, field_values, score, tags FROM lead "
                                     "ORDER BY id")).all()
        db.engine.dispose()
    assert [(r.id, r.email, r.phone) for r in rows] == [(1, "ann@example.com", "+4420"), (2, None, None),
                                                       (3, None, None)]
    assert "Duplicate email ann@example.com of lead 1" in rows[1].notes
    assert "Duplicate phone +4420 of lead 1" in rows[2].notes
    assert all(r.score == 0 for r in rows)
    assert "budget" in str(rows[0].field_values)
