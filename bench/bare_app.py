"""The baseline: the smallest Flask app, served the same way as the target.

`GET /bare` returns a tiny JSON document. `POST /bare/insert` reads a JSON body and inserts one row
into `bench_bare_row` of the database in `BARE_DATABASE_URL` (the benchmark's own database), the
least a web endpoint that stores something can do.
"""
import os

from flask import Flask, jsonify, request
from sqlalchemy import (
    Column,
    DateTime,
    Integer,
    MetaData,
    Table,
    Text,
    create_engine,
    func,
    insert,
)

app = Flask(__name__)
metadata = MetaData()
rows = Table("bench_bare_row", metadata, Column("id", Integer, primary_key=True), Column("text", Text, nullable=False),
             Column("created_at", DateTime(timezone=True), server_default=func.now()))
_engine = []


def engine():
    """Return the engine for BARE_DATABASE_URL, creating the table on first use."""
    if not _engine:
        created = create_engine(os.environ["BARE_DATABASE_URL"], pool_size=5)
        metadata.create_all(created)
        _engine.append(created)
    return _engine[0]


@app.get("/bare")
def bare():
    """Return a tiny JSON document."""
    return jsonify(ok=True)


@app.post("/bare/insert")
def bare_insert():
    """Insert one row with the posted text and return its id."""
    text = (request.get_json(silent=True) or {}).get("text", "")
    with engine().begin() as conn:
        row_id = conn.execute(insert(rows).values(text=text).returning(rows.c.id)).scalar()
    return jsonify(id=row_id), 201
