"""Knowledge retrieval: full-text search over one workspace's knowledge entries.

SQLite uses an FTS5 table (`knowledge_fts`, external content, kept in sync by triggers); PostgreSQL
uses a GIN expression index on `to_tsvector('english', title || ' ' || body)` (both made in
asthron/models/knowledge_search.py). The database finds and orders candidates; a
relevance threshold computed the same way on both (the share of the question's content words an
entry contains) decides whether any of them answers the question, so an unrelated question gets
"I don't know" rather than the least bad entry.
"""
import re
from dataclasses import dataclass

from sqlalchemy import text

from asthron.extensions import db
from asthron.models.chat import KnowledgeEntry

MAX_TERMS = 12  # words of a question used for the search; more only slows it down
MAX_PASSAGES = 3
PASSAGE_CHARS = 1500  # a long document contributes its beginning, not all of it
CANDIDATES = 20
MIN_COVERAGE = 0.34  # share of the question's content words an entry must contain

# Words that say nothing about what the visitor wants; they neither search nor count for coverage.
STOPWORDS = frozenset("""
a about above after again all am an and any are as at be been before being below between both but by can
could did do does doing down during each few for from further had has have having he her here hers him his
how i if in into is it its itself just me more most my no nor not now of off on once only or other our ours
out over own please same she should so some such than thank thanks that the their theirs them then there
these they this those through to too under until up very was we were what when where which while who whom
why will with would you your yours hi hello hey tell know want like need get got much many also ok okay
""".split())  # noqa: SIM905  (a list of 150 quoted words would be harder to read)

_WORD = re.compile(r"[^\W_]+", re.UNICODE)


@dataclass(frozen=True)
class Passage:
    """A knowledge entry that answers a question, with its relevance."""

    entry_id: int
    title: str
    body: str
    coverage: float

    def as_dict(self):
        """Return the passage as providers receive it in their settings."""
        return {"title": self.title, "body": self.body}


def terms(question):
    """Return the content words of `question`, lower-cased, in order, without repeats."""
    seen = []
    for word in _WORD.findall(question.lower()):
        if word not in STOPWORDS and (len(word) > 1 or word.isdigit()) and word not in seen:
            seen.append(word)
    return seen[:MAX_TERMS]


def search(workspace_id, question, *, limit=MAX_PASSAGES):
    """Return up to `limit` passages of workspace `workspace_id` that answer `question`, best first."""
    words = terms(question)
    if not words:
        return []
    dialect = db.session.get_bind().dialect.name
    ids = _candidates_postgresql(workspace_id, words) if dialect == "postgresql" else \
        _candidates_sqlite(workspace_id, words)
    if not ids:
        return []
    entries = {e.id: e for e in db.session.query(KnowledgeEntry).filter(
        KnowledgeEntry.id.in_(ids), KnowledgeEntry.workspace_id == workspace_id)}
    scored = []
    for position, entry_id in enumerate(ids):
        entry = entries.get(entry_id)
        if entry is not None:
            share = coverage(words, f"{entry.title} {entry.body}")
            if share >= MIN_COVERAGE:
                scored.append((-share, position, entry))
    scored.sort(key=lambda item: item[:2])
    return [Passage(e.id, e.title, e.body[:PASSAGE_CHARS], -s) for s, _p, e in scored[:limit]]


def _candidates_sqlite(workspace_id, words):
    # Each word quoted (FTS5 syntax in a visitor's text must not become an operator), any may match;
    # bm25 ranks, with the title worth twice the body. Lower bm25 is better.
    match = " OR ".join('"{}"'.format(w.replace('"', "")) for w in words)
    rows = db.session.execute(text(
        "SELECT k.id FROM knowledge_fts JOIN knowledge_entry k ON k.id = knowledge_fts.rowid "
        "WHERE knowledge_fts MATCH :match AND k.workspace_id = :ws "
        "ORDER BY bm25(knowledge_fts, 2.0, 1.0) LIMIT :n"), {"match": match, "ws": workspace_id, "n": CANDIDATES})
    return [row[0] for row in rows]


def _candidates_postgresql(workspace_id, words):
    # The document expression is written exactly as in the index so the planner uses it;
    # websearch_to_tsquery never raises on user text, and "or" between words makes any of them match.
    rows = db.session.execute(text(
        "SELECT k.id FROM knowledge_entry k, websearch_to_tsquery('english', :query) q "
        "WHERE k.workspace_id = :ws AND to_tsvector('english', k.title || ' ' || k.body) @@ q "
        "ORDER BY ts_rank(to_tsvector('english', k.title || ' ' || k.body), q) DESC, k.id LIMIT :n"),
        {"query": " or ".join(words), "ws": workspace_id, "n": CANDIDATES})
    return [row[0] for row in rows]


def coverage(words, document):
    """Return the share of `words` found in `document`, matching simple word forms (hours ~ hour)."""
    if not words:
        return 0.0
    stems = {_stem(w) for w in _WORD.findall(document.lower())}
    found = sum(1 for w in words if _stem(w) in stems)
    return found / len(words)


def _stem(word):
    # A light suffix stripper, the same on both databases: enough to equate opening/open, prices/price.
    for suffix in ("ings", "ing", "ies", "ied", "es", "ed", "s", "e", "y"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            return word[: -len(suffix)]
    return word
