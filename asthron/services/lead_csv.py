"""CSV export and import of leads.

Export: every cell a spreadsheet could read as a formula (starting with `=`, `+`, `-`, `@`, a tab or
a carriage return, as OWASP's "CSV Injection" page lists) gets a leading `'`, and every cell is
quoted, so opening the file runs nothing. Import reverses exactly that escaping.

Import: the header row is matched to the workspace's field keys or labels; each row is validated by
`leads.validate`; rows of the file with the same email or phone merge into one (later cells win);
a dry run reports per-row errors and writes nothing. A real import writes nothing when any row has
an error, unless the caller asks for the valid rows only; each lead is written by `leads.capture`
(source "import"), which dedupes against the workspace's existing leads.
"""
import csv
import io
from dataclasses import dataclass, field

from asthron.extensions import db
from asthron.models.leads import CORE_FIELD_KEYS, LeadSource
from asthron.services import lead_search

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
BASE_COLUMNS = ["id", "workspace", "created_at", "name", "email", "phone", "source", "stage", "owner", "score",
                "tags", "consent_version", "consented_at"]
MAX_ROWS = 5_000
MAX_CELL = 2_000


class CsvFileError(ValueError):
    """The file as a whole cannot be read (encoding, no header, too many rows)."""


def escape_cell(value):
    """Return `value` as CSV cell text that a spreadsheet shows as text, never runs as a formula."""
    if value is None:
        return ""
    text = value if isinstance(value, str) else str(value)
    if text.startswith(FORMULA_STARTS):
        return "'" + text
    return text


def unescape_cell(text):
    """Undo `escape_cell`: drop the `'` it put before a formula character."""
    if len(text) > 1 and text[0] == "'" and text[1] in "".join(FORMULA_STARTS):
        return text[1:]
    return text


def _cell(value):
    if isinstance(value, (list, tuple)):
        value = ", ".join(str(v) for v in value)
    elif isinstance(value, bool):
        value = "yes" if value else "no"
    elif hasattr(value, "isoformat"):
        value = value.isoformat()
    elif hasattr(value, "value") and not isinstance(value, (int, float)):
        value = value.value  # enums
    return escape_cell(value)


def _line(cells):
    out = io.StringIO()
    csv.writer(out, quoting=csv.QUOTE_ALL, lineterminator="\r\n").writerow(cells)
    return out.getvalue()


def export_columns(workspace_ids):
    """Return [(key, header)] for the export: the base columns, then each custom field key once."""
    columns = [(c, c) for c in BASE_COLUMNS]
    seen = set(CORE_FIELD_KEYS)
    for items in lead_search.fields_by_workspace(workspace_ids).values():
        for item in items:
            if item.key not in seen:
                seen.add(item.key)
                columns.append((f"values.{item.key}", item.key))
    return columns


def _row(lead, columns, names):
    cells = []
    for key, _header in columns:
        if key.startswith("values."):
            value = (lead.values or {}).get(key[7:])
        elif key == "workspace":
            value = names["workspaces"].get(lead.workspace_id)
        elif key == "stage":
            value = names["stages"].get(lead.stage_id)
        elif key == "owner":
            value = names["owners"].get(lead.owner_id)
        else:
            value = getattr(lead, key)
        cells.append(_cell(value))
    return cells


def _names():
    from flask_appbuilder.security.sqla.models import User
    from sqlalchemy import select

    from asthron.models.leads import PipelineStage
    from asthron.models.tenancy import Workspace

    return {"workspaces": dict(db.session.execute(select(Workspace.id, Workspace.name)).all()),
            "stages": dict(db.session.execute(select(PipelineStage.id, PipelineStage.name)).all()),
            "owners": {u.id: u.username for u in db.session.scalars(select(User))}}


def export_lines(filters, *, workspace_ids=None, batch=1000):
    """Yield the CSV of the leads matching `filters`, a line at a time, header first."""
    columns = export_columns(workspace_ids)
    yield _line([escape_cell(header) for _key, header in columns])
    names = _names()
    rows = db.session.scalars(lead_search.statement(filters).execution_options(yield_per=batch))
    for lead in rows:
        yield _line(_row(lead, columns, names))


@dataclass
class RowResult:
    """One data row of an import: its line number, the values read, errors, and rows merged into it."""

    line: int
    values: dict
    errors: dict = field(default_factory=dict)
    merged_lines: list = field(default_factory=list)
    merged_into: int | None = None  # the line this duplicate was merged into
    lead_id: int | None = None


@dataclass
class ImportReport:
    """The outcome of reading (and maybe writing) a file."""

    columns: dict  # header text -> field key
    ignored_columns: list
    rows: list
    written: bool = False

    @property
    def valid(self):
        return [r for r in self.rows if not r.errors and r.merged_into is None]

    @property
    def invalid(self):
        return [r for r in self.rows if r.errors]

    @property
    def merged(self):
        return [r for r in self.rows if r.merged_into is not None]


def read_rows(data, *, max_rows=None):
    """Return (header, [(line number, cells)]) of a CSV file given as bytes; raise CsvFileError when unreadable."""
    max_rows = MAX_ROWS if max_rows is None else max_rows
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise CsvFileError("The file is not UTF-8 text: save it as \"CSV UTF-8\" and try again.") from None
    try:
        dialect = csv.Sniffer().sniff(text[:4096], delimiters=",;\t")
    except csv.Error:
        dialect = csv.excel
    reader = csv.reader(io.StringIO(text), dialect)
    try:
        header = next(reader, None)
        if not header or not any(h.strip() for h in header):
            raise CsvFileError("The file is empty: the first row must name the columns.")
        rows = []
        for cells in reader:
            if not any(c.strip() for c in cells):
                continue
            if len(rows) >= max_rows:
                raise CsvFileError(f"The file has more than {max_rows:,} rows: split it and import each part.")
            rows.append((reader.line_num, cells))
    except csv.Error as exc:
        raise CsvFileError(f"The file is not valid CSV (line {reader.line_num}): {exc}.") from None
    return [h.strip() for h in header], rows


def match_header(header, workspace_fields):
    """Return ({header: field key}, [ignored headers]) matching keys or labels, case-insensitively."""
    by_name = {key: key for key in CORE_FIELD_KEYS}
    for item in workspace_fields:
        by_name[item.key.lower()] = item.key
        by_name[item.label.strip().lower()] = item.key
    columns, ignored = {}, []
    for name in header:
        key = by_name.get(name.lower())
        if key and key not in columns.values():
            columns[name] = key
        elif name:
            ignored.append(name)
    return columns, ignored


def _dedupe_key(values):
    if values.get("email"):
        return ("email", str(values["email"]).lower())
    if values.get("phone"):
        return ("phone", str(values["phone"]))
    return None


def plan(workspace_id, data, *, max_rows=None):
    """Read and validate a file without writing anything; return the ImportReport."""
    from asthron.services import leads

    header, rows = read_rows(data, max_rows=max_rows)
    columns, ignored = match_header(header, leads.fields(workspace_id))
    if not columns:
        raise CsvFileError("No column matches a lead field: name the columns by field key or label "
                           "(for example name, email, phone).")
    positions = [(header.index(name), key) for name, key in columns.items()]
    results, first_of = [], {}
    for line, cells in rows:
        raw = {key: unescape_cell(cells[i].strip()) for i, key in positions if i < len(cells) and cells[i].strip()}
        result = RowResult(line=line, values=raw)
        too_long = {k: f"Use at most {MAX_CELL} characters." for k, v in raw.items() if len(v) > MAX_CELL}
        try:
            result.values = leads.validate(workspace_id, raw) if not too_long else raw
            result.errors = too_long
        except leads.LeadValidationError as exc:
            result.errors = dict(exc.errors)
        results.append(result)
        if not result.errors:
            _merge_duplicate(result, first_of)
    return ImportReport(columns=columns, ignored_columns=ignored, rows=results)


def _merge_duplicate(result, first_of):
    """Fold a row into the earlier row of the file with the same email or phone (its filled cells win)."""
    key = _dedupe_key(result.values)
    if key is None:
        return
    first = first_of.get(key)
    if first is None:
        first_of[key] = result
        other = ("phone", str(result.values["phone"])) if key[0] == "email" and result.values.get("phone") else None
        if other:
            first_of.setdefault(other, result)
        return
    first.values.update({k: v for k, v in result.values.items() if v not in (None, "", [])})
    first.merged_lines.append(result.line)
    result.merged_into = first.line


def run(workspace_id, data, *, valid_only=False, actor_id=None, max_rows=None):
    """Import a file: all rows or nothing, or only the valid rows when `valid_only`; return the report.

    The caller commits when `report.written`, and rolls back otherwise: an all-or-nothing import
    that meets an error while writing (a row invalid against the leads already stored) stops there.
    """
    from asthron.services import leads

    report = plan(workspace_id, data, max_rows=max_rows)
    if report.invalid and not valid_only:
        return report
    for result in report.valid:
        try:
            # capture validates before it writes, and writes inside its own savepoint.
            lead = leads.capture(workspace_id, source=LeadSource.imported, values=result.values, actor_id=actor_id)
            result.lead_id = lead.id
        except leads.LeadValidationError as exc:
            # A row can still fail against leads already stored (say, a merge makes it invalid).
            result.errors = dict(exc.errors)
            if not valid_only:
                return report
    report.written = True
    return report
