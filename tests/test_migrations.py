"""The migrations build exactly the schema the models declare, on SQLite and PostgreSQL."""
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, text

from tests.conftest import PG_URL, require_service

MIGRATIONS_DB = "asthron_migrations_test"


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
