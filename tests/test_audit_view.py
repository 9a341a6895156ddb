"""The audit log list: scoped to the caller's tenant, filtered, and bounded in what it reads."""
import re
from datetime import UTC, datetime, timedelta

import pytest
from flask_appbuilder.models.sqla.filters import (
    FilterEqual,
    FilterGreater,
    FilterSmaller,
)

from asthron import audit

LIST = "/auditlogview/list/"
MARK = re.compile(r"\bmark-(\d{3})\b")


def _record(app, count, *, workspace_id=None, action="test.event", actor="tester", prefix="mark"):
    """Append `count` entries whose target ids are `<prefix>-000`, `<prefix>-001`, ... in time order."""
    with app.app_context():
        for n in range(count):
            audit.record(action, target_type="Test", target_id=f"{prefix}-{n:03d}", workspace_id=workspace_id,
                         actor=actor, actor_id=None)


def _page(client, url):
    """Return the mark numbers listed at `url` in page order, and the "Older entries" link or None."""
    response = client.get(url)
    assert response.status_code == 200, response.status_code
    body = response.get_data(as_text=True)
    older = re.search(r'class="[^"]*audit-older" href="([^"]+)"', body)
    return [int(n) for n in MARK.findall(body)], older and older.group(1).replace("&amp;", "&")


def _marks(client, url):
    return _page(client, url)[0]


def _arg(app, column, filter_class, value):
    from asthron.views.audit import AuditLogView

    view = next(v for v in app.appbuilder.baseviews if isinstance(v, AuditLogView))
    return f"_flt_{view._filter_index(column, filter_class)}_{column}={value}"


@pytest.fixture
def small_cap(monkeypatch):
    """Count no further than 5 entries, so the cap is reached with a handful of rows."""
    from asthron.views.audit import (
        AuditInterface,  # views import once the app has set up FAB's models
    )

    monkeypatch.setattr(AuditInterface, "count_cap", 5)
    return 5


def test_operator_sees_every_tenants_entries_newest_first(app, client, auth, tenants):
    _record(app, 2, workspace_id=tenants["a1"])
    _record(app, 2, workspace_id=tenants["b1"], prefix="bbbb")
    auth.login("operator")
    body = client.get(LIST).get_data(as_text=True)
    assert _marks(client, LIST) == [1, 0]
    assert "bbbb-001" in body and "bbbb-000" in body


def test_agency_admin_sees_only_their_agencys_entries(app, client, auth, tenants):
    _record(app, 2, workspace_id=tenants["a1"])
    _record(app, 2, workspace_id=tenants["b1"], prefix="bbbb")
    auth.login("a_admin")
    body = client.get(LIST).get_data(as_text=True)
    assert _marks(client, LIST) == [1, 0]
    assert "bbbb-" not in body


def test_count_stops_at_the_cap_and_says_more_than(app, client, auth, tenants, small_cap):
    _record(app, 12, workspace_id=tenants["a1"])
    auth.login("a_admin")
    body = client.get(LIST + "?psize_AuditLogView=5").get_data(as_text=True)
    assert re.search(r"more than\s+5\b", body)


def test_count_below_the_cap_is_exact(app, client, auth, tenants):
    _record(app, 3, action="rare.event", workspace_id=tenants["a1"])
    auth.login("a_admin")
    body = client.get(LIST + "?" + _arg(app, "action", FilterEqual, "rare.event")).get_data(as_text=True)
    assert re.search(r'class="audit-count">3<', body)
    assert "Older entries" not in body


def test_older_entries_continue_below_the_last_row_without_gaps(app, client, auth, tenants, small_cap):
    _record(app, 12, workspace_id=tenants["a1"])
    auth.login("a_admin")
    url = LIST + "?psize_AuditLogView=5&" + _arg(app, "action", FilterEqual, "test.event")
    seen = []
    for _ in range(5):  # 12 rows in pages of 5: three pages, the last without a link
        marks, url = _page(client, url)
        seen += marks
        if url is None:
            break
    assert seen == list(range(11, -1, -1))


def test_filters_by_actor_action_and_time(app, client, auth, tenants):
    _record(app, 2, workspace_id=tenants["a1"], actor="alice", action="lead.create")
    _record(app, 2, workspace_id=tenants["a1"], actor="bob", action="lead.update", prefix="bbbb")
    auth.login("a_admin")
    assert _marks(client, LIST + "?" + _arg(app, "actor", FilterEqual, "alice")) == [1, 0]
    assert _marks(client, LIST + "?" + _arg(app, "action", FilterEqual, "lead.update")) == []
    future = (datetime.now(UTC) + timedelta(days=1)).strftime("%Y-%m-%d")
    assert _marks(client, LIST + "?" + _arg(app, "created_at", FilterGreater, future)) == []
    assert _marks(client, LIST + "?" + _arg(app, "created_at", FilterSmaller, future)) == [1, 0]


def test_pages_beyond_the_cap_are_refused(app, client, auth, tenants, small_cap):
    auth.login("operator")
    assert client.get(LIST + "?psize_AuditLogView=5&page_AuditLogView=1").status_code == 200
    assert client.get(LIST + "?psize_AuditLogView=5&page_AuditLogView=2").status_code == 400


def test_page_size_is_capped_at_one_hundred(app, client, auth, tenants):
    _record(app, 105, workspace_id=tenants["a1"])
    auth.login("a_admin")
    url = LIST + "?psize_AuditLogView=1000&" + _arg(app, "action", FilterEqual, "test.event")
    assert len(_marks(client, url)) == 100
