"""Print what a visitor's browser downloads before the first message, gzipped, against the 12 KB goal.

Serves the real app in-process on a throwaway SQLite database with the demo data, and fetches what
the widget fetches on a client's page: the script, the config of the demo workspace that asks for
consent (the largest config), then creating the conversation and accepting the notice. Sizes are of
the response bodies compressed with gzip level 6 (what nginx and most CDNs use); headers are left out.

    .venv/bin/python bench/widget_size.py
"""
import gzip
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

GOAL = 12 * 1024
# For scale only, not measured here: Chatwoot's widget loads about 170 KiB (gzipped) before it can chat.
CHATWOOT_REFERENCE_KIB = 170
ORIGIN = "http://localhost:8000"


def _app():
    os.environ.setdefault("ASTHRON_INSTANCE_DIR", tempfile.mkdtemp(prefix="asthron-bench-"))
    from flask_appbuilder import Model

    import asthron.models  # noqa: F401  (register every table)
    from asthron.app import create_app
    from asthron.extensions import db

    path = os.path.join(tempfile.mkdtemp(prefix="asthron-bench-db-"), "size.db")
    app = create_app({"SQLALCHEMY_DATABASE_URI": f"sqlite:///{path}", "SECRET_KEY": "bench-" + "x" * 40,
                      "REDIS_URL": None, "RATELIMIT_STORAGE_URI": "memory://", "ASTHRON_JOBS_EMBEDDED": "inline"})
    with app.app_context():
        Model.metadata.create_all(db.engine)
        app.appbuilder.sm.sync_roles()
    return app


def _downloads(app):
    from asthron.services import demo

    os.environ.setdefault("ASTHRON_DEMO_PASSWORD", "bench-demo-password-0123")  # not the instance's own
    with app.app_context():
        key = demo.seed()["workspaces"][0]["key"]  # Bluebell Dental: consent required
    client = app.test_client()
    head = {"Origin": ORIGIN}
    script = client.get("/widget.js")
    config = client.get(f"/widget/api/v1/config?key={key}", headers=head)
    created = client.post("/widget/api/v1/conversations", json={"key": key}, headers=head)
    auth = {**head, "Authorization": "Bearer " + created.get_json()["token"]}
    version = config.get_json()["consent"]["version"]
    consent = client.post(f"/widget/api/v1/conversations/{created.get_json()['id']}/consent",
                          json={"notice_version": version}, headers=auth)
    return [("widget.js", script), ("config (consent required)", config),
            ("POST conversations", created), ("POST consent", consent)]


def main():
    """Measure and print the sizes."""
    rows = []
    for label, response in _downloads(_app()):
        if response.status_code >= 400:
            sys.exit(f"{label}: HTTP {response.status_code}: {response.get_data(as_text=True)[:200]}")
        body = response.get_data()
        rows.append((label, len(body), len(gzip.compress(body, 6))))
    print(f"{'download':<28}{'raw bytes':>11}{'gzip bytes':>12}")
    for label, raw, packed in rows:
        print(f"{label:<28}{raw:>11}{packed:>12}")
    first_paint = sum(packed for label, _raw, packed in rows[:2])
    total = sum(packed for _label, _raw, packed in rows)
    print(f"script + config (before the widget shows): {first_paint} B = {first_paint / 1024:.1f} KiB")
    print(f"everything before the first message:       {total} B = {total / 1024:.1f} KiB "
          f"({total / GOAL:.0%} of the 12 KB goal: {'met' if total <= GOAL else 'MISSED'})")
    print(f"reference, not measured: Chatwoot's widget is about {CHATWOOT_REFERENCE_KIB} KiB gzipped "
          f"(~{CHATWOOT_REFERENCE_KIB * 1024 / total:.0f}x this)")


if __name__ == "__main__":
    main()
