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


def test_the_wsgi_entry_point_keeps_start_up_objects_out_of_full_collections(tmp_path):
    """gunicorn imports wsgi.py in each worker; the app's start-up objects are frozen for the collector."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "DATABASE_URL": f"sqlite:///{tmp_path / 'w.db'}", "SECRET_KEY": "k" * 48,
           "REDIS_URL": "", "ASTHRON_INSTANCE_DIR": str(tmp_path)}
    out = subprocess.run([sys.executable, "-c", "import gc, wsgi; print(gc.get_freeze_count())"], env=env,
                         capture_output=True, text=True, timeout=120, check=True).stdout
    assert int(out.strip().splitlines()[-1]) > 100_000
