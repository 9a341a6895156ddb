"""Demo leads: each demo workspace gets lead fields, scoring rules, stages, a stage rule and a few dozen leads.

Idempotent: fields and rules are added only when missing, and leads only to a workspace that has
none, so `flask asthron demo` can run again without duplicating anything. Leads are written through
`asthron.services.leads` like any other capture (scored, staged, with a timeline), then spread over
the last 60 days so the board and reports have history to show.
"""
import random
from datetime import timedelta

from sqlalchemy import func, select

from asthron.extensions import db
from asthron.models.base import utcnow
from asthron.models.leads import FieldKind, Lead, LeadField, LeadSource, RuleOperator, ScoringRule, StageRule
from asthron.services import lead_pipeline, leads

LEADS_PER_WORKSPACE = 36
BUDGETS = ["Under 1,000", "1,000 to 5,000", "Over 5,000"]
FIELDS = [  # key, label, kind, required, options, question
    ("name", "Name", FieldKind.text, False, [], None),
    ("email", "Email", FieldKind.email, True, [], None),
    ("phone", "Phone", FieldKind.phone, False, [], None),
    ("budget", "Budget", FieldKind.select, False, BUDGETS, "What budget do you have in mind?"),
    ("team_size", "Team size", FieldKind.number, False, [], "How many people are in your team?"),
]
SCORING = [  # field key, operator, value, points
    ("budget", RuleOperator.equals, "Over 5,000", 40),
    ("budget", RuleOperator.equals, "1,000 to 5,000", 20),
    ("phone", RuleOperator.is_set, None, 10),
    ("team_size", RuleOperator.greater_than, "10", 20),
]
FIRST = ["Alex", "Sam", "Priya", "Jonas", "Maria", "Tom", "Lena", "Omar", "Chloe", "Ben", "Yuki", "Nadia"]
LAST = ["Parker", "Schmidt", "Okafor", "Rossi", "Nguyen", "Fischer", "Hughes", "Santos", "Kowalski", "Ahmed"]
SOURCES = [LeadSource.widget, LeadSource.widget, LeadSource.ai, LeadSource.ai, LeadSource.imported, LeadSource.api]
# Where the leads end up on the board beyond what their score gives them: (stage name, share of leads).
SPREAD = [("Contacted", 0.25), ("Won", 0.12), ("Lost", 0.1)]


def seed_workspace(workspace):
    """Give a demo workspace its lead set-up and, when it has no leads yet, a few dozen leads."""
    _fields(workspace.id)
    stages = lead_pipeline.ensure_default_stages(workspace.id)
    _rules(workspace.id, stages)
    db.session.flush()
    if db.session.scalar(select(func.count()).select_from(Lead).where(Lead.workspace_id == workspace.id)):
        return
    _leads(workspace, stages)


def _fields(workspace_id):
    have = set(db.session.scalars(select(LeadField.key).where(LeadField.workspace_id == workspace_id)))
    for position, (key, label, kind, required, options, question) in enumerate(FIELDS):
        if key not in have:
            db.session.add(LeadField(workspace_id=workspace_id, key=key, label=label, kind=kind, required=required,
                                     options=options, question=question, position=position))


def _rules(workspace_id, stages):
    if not db.session.scalar(select(func.count()).select_from(ScoringRule)
                             .where(ScoringRule.workspace_id == workspace_id)):
        for position, (key, operator, value, points) in enumerate(SCORING):
            db.session.add(ScoringRule(workspace_id=workspace_id, field_key=key, operator=operator, value=value,
                                       points=points, position=position))
    if not db.session.scalar(select(func.count()).select_from(StageRule).where(StageRule.workspace_id == workspace_id)):
        qualified = next(s for s in stages if s.qualified)
        # "score >= 50": the rule operators compare strictly.
        db.session.add(StageRule(workspace_id=workspace_id, field_key="score", operator=RuleOperator.greater_than,
                                 value="49", stage_id=qualified.id, position=0))


def _person(rng, n, domain):
    first, last = rng.choice(FIRST), rng.choice(LAST)
    values = {"name": f"{first} {last}", "email": f"{first}.{last}.{n}@{domain}".lower()}
    if rng.random() < 0.6:
        values["phone"] = f"+4420794600{n:02d}"  # Ofcom's numbers reserved for drama: never a real person
    if rng.random() < 0.8:
        values["budget"] = rng.choice(BUDGETS)
    if rng.random() < 0.7:
        values["team_size"] = str(rng.choice([1, 2, 4, 8, 12, 25, 60]))
    return values


def _leads(workspace, stages):
    rng = random.Random(workspace.name)
    by_name = {s.name: s for s in stages}
    now = utcnow()
    for n in range(LEADS_PER_WORKSPACE):
        lead = leads.capture(workspace.id, source=rng.choice(SOURCES), values=_person(rng, n, "demo.example"))
        roll, floor = rng.random(), 0.0
        for name, share in SPREAD:
            floor += share
            if roll < floor:
                # Only forward: a lead the stage rule qualified is not sent back to Contacted.
                if by_name[name].position > lead.stage.position:
                    leads.set_stage(lead, by_name[name].id)
                break
        lead.created_at = now - timedelta(days=rng.uniform(0, 60))
    db.session.flush()
