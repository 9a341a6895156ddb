"""Scoring and stage rules: conditions on a lead's values, the score they add up to, the stage they pick.

Pure functions over plain values, so the service, the admin's rule check and the rescore job agree.
"""
from datetime import date

from asthron.models.leads import CORE_FIELD_KEYS, RuleOperator

SCORE_KEY = "score"  # stage rules may test the lead's score as if it were a field


def lead_value(lead, key):
    """Return the value of field `key` of `lead` (core columns, the score, or a custom value)."""
    if key in CORE_FIELD_KEYS:
        return getattr(lead, key)
    if key == SCORE_KEY:
        return lead.score
    return (lead.values or {}).get(key)


def is_set(value):
    """Say whether a lead value counts as given (0 does; None, blank text, an empty list and False do not)."""
    return not (value is None or value is False or value == "" or value == [])


def _number(value):
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    try:
        return float(str(value).strip())
    except (TypeError, ValueError):
        return None


def _date(value):
    try:
        return date.fromisoformat(str(value).strip()[:10])
    except ValueError:
        return None


def _comparable(actual, expected):
    """Return (actual, expected) as numbers, else as dates, else None when they cannot be ordered."""
    a, e = _number(actual), _number(expected)
    if a is not None and e is not None:
        return a, e
    a, e = _date(actual), _date(expected)
    if a is not None and e is not None:
        return a, e
    return None


def _text(value):
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value).strip().lower()


def holds(operator, actual, expected):
    """Say whether `actual` (a lead's value) meets the condition `operator expected`."""
    operator = RuleOperator(operator)
    if operator == RuleOperator.is_set:
        return is_set(actual)
    if actual is None or actual == "" or actual == []:
        return False
    items = actual if isinstance(actual, list) else [actual]
    wanted = _text(expected or "")
    if operator == RuleOperator.equals:
        pair = None if isinstance(actual, (list, bool, str)) else _comparable(actual, expected)
        return pair[0] == pair[1] if pair else any(_text(item) == wanted for item in items)
    if operator == RuleOperator.contains:
        return any(wanted in _text(item) for item in items)
    pair = _comparable(actual, expected)
    if pair is None:
        return False
    return pair[0] > pair[1] if operator == RuleOperator.greater_than else pair[0] < pair[1]


def score(lead, rules):
    """Return the sum of the points of the scoring `rules` that hold for `lead`."""
    return sum(rule.points for rule in rules if holds(rule.operator, lead_value(lead, rule.field_key), rule.value))


def target_stage(lead, rules, stages, *, floor_position=None):
    """Return the furthest stage a holding stage rule names beyond the lead's current stage, or None.

    Rules only move a lead forward: to a stage positioned after its current one and after
    `floor_position` (the stage a person last moved it back from), so they never undo a person's choice.
    """
    by_id = {stage.id: stage for stage in stages}
    current = by_id.get(lead.stage_id)
    limit = max(p for p in (current.position if current else None, floor_position) if p is not None) \
        if (current or floor_position is not None) else None
    best = None
    for rule in rules:
        stage = by_id.get(rule.stage_id)
        if stage is None or (limit is not None and stage.position <= limit):
            continue
        if not holds(rule.operator, lead_value(lead, rule.field_key), rule.value):
            continue
        if best is None or stage.position > best.position:
            best = stage
    return best
