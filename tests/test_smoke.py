"""The app starts, serves its login page and reports health on both databases."""


def test_health_reports_database_ok(client):
    response = client.get("/health")
    assert response.status_code == 200
    assert response.json["database"] == "ok"


def test_login_then_workspace_list_shows_own_workspaces_only(client, auth, tenants):
    response = auth.login("a1_staff")
    assert response.status_code == 302
    html = client.get("/workspaceview/list/").get_data(as_text=True)
    assert "A One" in html
    assert "A Two" not in html and "B One" not in html


def test_dashboard_lists_the_users_workspaces(client, auth, tenants):
    assert client.get("/").status_code == 302
    auth.login("a_admin")
    body = client.get("/").get_data(as_text=True)
    assert "A One" in body and "A Two" in body and "B One" not in body
