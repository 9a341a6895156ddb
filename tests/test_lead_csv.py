"""CSV of leads: formula escaping on export; import with a dry run, all-or-nothing or valid rows only."""
import io

import pytest
from sqlalchemy import func, select

from asthron.extensions import db
from asthron.models.leads import FieldKind, Lead, LeadField, LeadSource
from asthron.services import lead_csv
from tests.conftest import csrf_token


@pytest.mark.parametrize("text", ["=1+1", "+4420", "-2", "@SUM(A1)", "\tx", "\rx",
                                  '=HYPERLINK("http://evil.example","click")'])
def test_cells_a_spreadsheet_would_run_get_a_leading_quote(text):
    assert lead_csv.escape_cell(text) == "'" + text
    assert lead_csv.unescape_cell(lead_csv.escape_cell(text)) == text


@pytest.mark.parametrize("text", ["Ann", "ann@example.com", "", "1,000 to 5,000", "'quoted", "a=b"])
def test_ordinary_cells_are_left_alone(text):
    assert lead_csv.escape_cell(text) == text
    assert lead_csv.unescape_cell(text) == text


def test_every_exported_cell_is_quoted():
    assert lead_csv._line([lead_csv._cell(v) for v in ("=1+1", 'say "hi"', None)]) == '"\'=1+1","say ""hi""",""\r\n'
    assert lead_csv._cell(-5) == "'-5" and lead_csv._cell(["a", "b"]) == "a, b" and lead_csv._cell(None) == ""


@pytest.fixture
def setup(app, tenants):
    """A1 with a Budget select field; return the tenant ids."""
    with app.app_context():
        db.session.add(LeadField(workspace_id=tenants["a1"], key="budget", label="Budget", kind=FieldKind.select,
                                 options=["Small", "Large"], position=5))
        db.session.commit()
    return tenants


GOOD = "Name,Email,Budget,Shoe size\nAnn,ann@example.com,Large,9\nBob,bob@example.com,Small,\n"
MIXED = GOOD + "Cid,not-an-email,Small,\nDee,dee@example.com,Huge,\n"


def _upload(client, workspace, text, *, mode="dry_run", valid_only=False, filename="leads.csv"):
    token = csrf_token(client, "/leadview/import/")
    data = {"csrf_token": token, "workspace": str(workspace), "mode": mode,
            "file": (io.BytesIO(text if isinstance(text, bytes) else text.encode()), filename)}
    if valid_only:
        data["valid_only"] = "1"
    return client.post("/leadview/import/", data=data, content_type="multipart/form-data")


def _lead_count():
    return db.session.scalar(select(func.count()).select_from(Lead))


def test_dry_run_reports_each_rows_errors_and_writes_nothing(client, auth, setup, ctx):
    auth.login("a1_staff")
    response = _upload(client, setup["a1"], MIXED)
    body = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "Dry run: 2 rows would be imported, 2 have errors" in body
    assert "email: " in body and "budget: " in body  # the messages name the field of lines 4 and 5
    assert "<code>Shoe size</code>" in body.split("ignored:")[1]
    assert _lead_count() == 0


def test_import_with_errors_writes_nothing(client, auth, setup, ctx):
    auth.login("a1_staff")
    response = _upload(client, setup["a1"], MIXED, mode="import")
    assert response.status_code == 422
    assert "Nothing was imported" in response.get_data(as_text=True)
    assert _lead_count() == 0


def test_import_of_valid_rows_only_when_chosen(client, auth, setup, ctx):
    auth.login("a1_staff")
    response = _upload(client, setup["a1"], MIXED, mode="import", valid_only=True)
    assert response.status_code == 200
    assert "Imported 2 leads; 2 rows with errors were skipped" in response.get_data(as_text=True)
    found = db.session.scalars(select(Lead).order_by(Lead.email)).all()
    assert [(lead.email, lead.values.get("budget"), lead.source) for lead in found] == [
        ("ann@example.com", "Large", LeadSource.imported), ("bob@example.com", "Small", LeadSource.imported)]


def test_duplicates_inside_the_file_merge_and_existing_leads_are_updated(client, auth, setup, ctx):
    from asthron.services import leads

    leads.capture(setup["a1"], source="widget", values={"email": "bob@example.com", "name": "Robert"})
    db.session.commit()
    auth.login("a1_staff")
    text = ("email,name,budget,phone\nann@example.com,Ann,,\nANN@example.com,,Large,'+442071838750\n"
            "bob@example.com,Bob,,\n")
    body = _upload(client, setup["a1"], text).get_data(as_text=True)
    assert "merged into line 2" in body and "1 merge into earlier rows" in body
    response = _upload(client, setup["a1"], text, mode="import")
    assert response.status_code == 200
    db.session.expire_all()
    found = {lead.email: lead for lead in db.session.scalars(select(Lead))}
    assert set(found) == {"ann@example.com", "bob@example.com"}
    ann = found["ann@example.com"]
    assert (ann.name, ann.values["budget"], ann.phone) == ("Ann", "Large", "+442071838750")
    assert found["bob@example.com"].name == "Bob"


def test_semicolon_files_and_labels_are_understood(client, auth, setup, ctx):
    auth.login("a1_staff")
    response = _upload(client, setup["a1"], "EMAIL;Budget\nann@example.com;Small\n", mode="import")
    assert response.status_code == 200
    assert db.session.scalars(select(Lead.values)).one() == {"budget": "Small"}


@pytest.mark.parametrize("content, message", [
    (b"\xff\xfe\x00n\x00a", "not UTF-8"),
    (b"shoe,hat\n1,2\n", "No column matches"),
    (b"email\n" + b"x@example.com\n" * 3, None),
])
def test_unreadable_files_are_a_400_with_a_reason(client, auth, setup, ctx, content, message, monkeypatch):
    if message is None:
        monkeypatch.setattr(lead_csv, "MAX_ROWS", 2)
        message = "more than 2 rows"
    auth.login("a1_staff")
    response = _upload(client, setup["a1"], content, mode="import")
    assert response.status_code == 400
    assert message in response.get_data(as_text=True)
    assert _lead_count() == 0


def test_missing_file_or_workspace_is_a_400(client, auth, setup):
    auth.login("a1_staff")
    token = csrf_token(client, "/leadview/import/")
    response = client.post("/leadview/import/", data={"csrf_token": token, "mode": "dry_run"},
                           content_type="multipart/form-data")
    body = response.get_data(as_text=True)
    assert response.status_code == 400 and "Choose a CSV file" in body and "Choose the workspace" in body


def test_a_file_over_the_limit_is_a_413(app, client, auth, setup, ctx, monkeypatch):
    monkeypatch.setitem(app.config, "ASTHRON_LEAD_IMPORT_MAX_BYTES", 100)
    auth.login("a1_staff")
    response = _upload(client, setup["a1"], "email\n" + "someone@example.com\n" * 20, mode="import")
    assert response.status_code == 413
    assert _lead_count() == 0


def test_a_body_over_the_request_limit_is_refused_before_it_is_read(app, client, auth, setup, ctx, monkeypatch):
    monkeypatch.setitem(app.config, "MAX_CONTENT_LENGTH", 2000)
    auth.login("a1_staff")
    response = _upload(client, setup["a1"], "email\n" + "someone@example.com\n" * 200, mode="import")
    assert response.status_code == 413
    assert _lead_count() == 0


def test_client_cannot_import(client, auth, setup, ctx):
    auth.login("a1_client")
    assert client.get("/leadview/import/").status_code == 403


def test_another_tenant_cannot_import_into_a_workspace_not_theirs(client, auth, setup, ctx):
    auth.login("b1_staff")
    for mode in ("dry_run", "import"):
        assert _upload(client, setup["a1"], GOOD, mode=mode).status_code == 404
    assert _lead_count() == 0


def test_exported_file_imports_back_unchanged(client, auth, setup, ctx):
    from asthron.services import leads

    leads.capture(setup["a1"], source="api", values={"email": "ann@example.com", "name": "=cmd|' /C calc'!A0",
                                                    "phone": "+442071838750", "budget": "Large"})
    db.session.commit()
    auth.login("a1_staff")
    exported = client.get("/leadview/export.csv").get_data()
    db.session.execute(Lead.__table__.delete())
    db.session.commit()
    response = _upload(client, setup["a1"], exported, mode="import")
    assert response.status_code == 200, response.get_data(as_text=True)
    lead = db.session.scalars(select(Lead)).one()
    assert (lead.name, lead.phone, lead.values["budget"]) == ("=cmd|' /C calc'!A0", "+442071838750", "Large")
