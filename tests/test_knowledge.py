"""Knowledge retrieval: full-text search (SQLite FTS5, PostgreSQL), one workspace only, with a relevance threshold."""
from sqlalchemy import text

from asthron.extensions import db
from asthron.models.chat import KnowledgeEntry
from asthron.services import knowledge

SALON = [
    ("Opening hours", "We are open Monday to Friday from 9:00 to 18:00 and on Saturday from 10:00 to 14:00."),
    ("Prices", "A haircut costs 35 EUR; colouring starts at 60 EUR."),
    ("Address", "You find us at Main Street 12, Springfield, next to the bakery."),
]


def _add(workspace_id, entries):
    for title, body in entries:
        db.session.add(KnowledgeEntry(workspace_id=workspace_id, title=title, body=body))
    db.session.commit()


def test_finds_the_entry_that_answers_the_question(ctx, tenants):
    _add(tenants["a1"], SALON)
    found = knowledge.search(tenants["a1"], "When are you open on Saturday?")
    assert found and found[0].title == "Opening hours"
    assert knowledge.search(tenants["a1"], "How much is a haircut?")[0].title == "Prices"
    assert knowledge.search(tenants["a1"], "what's your address")[0].title == "Address"


def test_word_forms_match(ctx, tenants):
    _add(tenants["a1"], SALON)
    assert knowledge.search(tenants["a1"], "opening hour")[0].title == "Opening hours"
    assert knowledge.search(tenants["a1"], "price")[0].title == "Prices"


def test_unrelated_question_finds_nothing(ctx, tenants):
    _add(tenants["a1"], SALON)
    assert knowledge.search(tenants["a1"], "Do you repair bicycles?") == []
    assert knowledge.search(tenants["a1"], "hello") == []
    assert knowledge.search(tenants["a1"], "") == []


def test_a_weak_match_is_below_the_threshold(ctx, tenants):
    _add(tenants["a1"], SALON)
    # One word of five in common ("street") is not an answer to this question.
    assert knowledge.search(tenants["a1"], "Which street food festival trucks parking permits?") == []
    assert knowledge.coverage(["street", "food", "festival"], "Main Street 12") < knowledge.MIN_COVERAGE


def test_only_the_workspace_own_entries_are_searched(ctx, tenants):
    _add(tenants["a1"], SALON)
    _add(tenants["b1"], [("Secret menu", "The zebracorn special costs 99 EUR.")])
    assert knowledge.search(tenants["a1"], "zebracorn special") == []
    assert [p.title for p in knowledge.search(tenants["b1"], "zebracorn special")] == ["Secret menu"]
    assert all(p.title != "Secret menu" for p in knowledge.search(tenants["a1"], "special prices menu"))


def test_edits_and_deletions_reach_the_index(ctx, tenants):
    _add(tenants["a1"], SALON)
    entry = db.session.query(KnowledgeEntry).filter_by(title="Prices").one()
    entry.body = "Beard trims cost 15 EUR."
    db.session.commit()
    assert knowledge.search(tenants["a1"], "haircut colouring") == []
    assert knowledge.search(tenants["a1"], "beard trim")[0].title == "Prices"
    db.session.delete(entry)
    db.session.commit()
    assert knowledge.search(tenants["a1"], "beard trim") == []


def test_search_syntax_in_a_question_is_plain_text(ctx, tenants):
    _add(tenants["a1"], SALON)
    for question in ['"open" OR NEAR(', "hours*) AND -price", "'; DROP TABLE knowledge_entry; --", "a:b c^d"]:
        knowledge.search(tenants["a1"], question)  # must not raise
    assert db.session.query(KnowledgeEntry).count() == 3


def test_the_best_match_comes_first_and_results_are_bounded(ctx, tenants):
    _add(tenants["a1"], SALON + [(f"Haircut tip {n}", "Wash your hair before a haircut.") for n in range(5)])
    found = knowledge.search(tenants["a1"], "haircut price")
    assert found[0].title == "Prices"
    assert len(found) <= knowledge.MAX_PASSAGES


def test_long_documents_give_a_bounded_passage(ctx, tenants):
    _add(tenants["a1"], [("Handbook", "Parking is behind the building. " * 200)])
    found = knowledge.search(tenants["a1"], "where is parking")
    assert found and len(found[0].body) <= knowledge.PASSAGE_CHARS


def test_the_database_search_structure_exists(ctx, tenants):
    if db.engine.dialect.name == "postgresql":
        indexes = db.session.execute(text("SELECT indexname FROM pg_indexes WHERE tablename = 'knowledge_entry'"))
        assert "ix_knowledge_entry_fts" in {row[0] for row in indexes}
    else:
        tables = db.session.execute(text("SELECT name FROM sqlite_master WHERE name = 'knowledge_fts'"))
        assert tables.scalar() == "knowledge_fts"
