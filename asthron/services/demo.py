"""The demo data set: two agencies, three client workspaces, one user per role."""
import os
import secrets

from flask_appbuilder.security.sqla.models import User
from sqlalchemy import select

from asthron.extensions import db
from asthron.models.tenancy import Agency, Membership, Role, Workspace
from asthron.services import tenancy as tenancy_service

DEMO_ORIGINS = ["http://127.0.0.1:5000", "http://localhost:5000", "http://localhost:8000"]
AGENCIES = [
    ("Northwind Digital", [("Bluebell Dental", "Europe/London"), ("Harbour Yoga", "Europe/Berlin")]),
    ("Southpaw Studio", [("Copperleaf Law", "America/New_York")]),
]
USERS = [
    # username, role, agency index, workspace (agency index, workspace index) or None
    ("operator", Role.operator, None, None),
    ("agency.admin", Role.agency_admin, 0, None),
    ("workspace.admin", Role.workspace_admin, None, (0, 0)),
    ("staff", Role.staff, None, (0, 0)),
    ("client", Role.client, None, (0, 0)),
    ("south.admin", Role.agency_admin, 1, None),
]


def demo_password():
    """Return the demo password: ASTHRON_DEMO_PASSWORD, else a stored generated one."""
    from flask import current_app

    if os.environ.get("ASTHRON_DEMO_PASSWORD"):
        return os.environ["ASTHRON_DEMO_PASSWORD"]
    path = os.path.join(current_app.instance_path, "demo_password")
    if not os.path.exists(path):
        with open(path, "w") as fh:
            fh.write("demo-" + secrets.token_urlsafe(12))
        os.chmod(path, 0o600)
    with open(path) as fh:
        return fh.read().strip()


def _agency(name):
    return db.session.execute(select(Agency).where(Agency.name == name)).scalar() \
        or tenancy_service.create_agency(name)


def _workspace(agency, name, tz):
    from asthron.services import demo_booking, demo_content, demo_leads

    found = db.session.execute(select(Workspace).where(Workspace.agency_id == agency.id,
                                                       Workspace.name == name)).scalar()
    workspace = found or tenancy_service.create_workspace(agency=agency, name=name, origins=DEMO_ORIGINS,
                                                          time_zone=tz)
    missing = [o for o in DEMO_ORIGINS if o not in (workspace.allowed_origins or [])]
    if missing:
        workspace.allowed_origins = list(workspace.allowed_origins or []) + missing
    demo_content.seed_workspace(workspace)
    demo_leads.seed_workspace(workspace)
    demo_booking.seed_workspace(workspace)
    return workspace


def _user(username, role, password, agency, workspace):
    from flask import current_app

    user = db.session.execute(select(User).where(User.username == username)).scalar()
    if user is None:
        roles = [Role.operator] if role == Role.operator else []
        user = tenancy_service.create_user(username=username, email=f"{username}@demo.asthron.test",
                                           password=password, first_name=username.split(".")[0].title(),
                                           last_name="Demo", roles=roles)
    else:
        current_app.appbuilder.sm.reset_password(user.id, password)
    has = db.session.execute(select(Membership).where(Membership.user_id == user.id)).first()
    if role != Role.operator and not has:
        tenancy_service.add_member(user=user, role=role, agency=agency, workspace=workspace)
    return user


# Demo people who take handoffs (each only where they work): staff first, so they own the sample chat.
INBOX_AVAILABLE = ("staff", "agency.admin", "south.admin")


def _seed_inbox(workspaces):
    from asthron.services import demo_inbox

    by_name = dict(db.session.execute(select(User.username, User.id).where(User.username.in_(INBOX_AVAILABLE))).all())
    ids = [by_name[name] for name in INBOX_AVAILABLE if name in by_name]
    for workspace in workspaces:
        demo_inbox.seed_workspace(workspace, available_user_ids=ids)


def seed():
    """Create or refresh the demo data; return the logins and workspace keys."""
    password = demo_password()
    agencies, workspaces = [], []
    for name, spaces in AGENCIES:
        agency = _agency(name)
        agencies.append(agency)
        workspaces.append([_workspace(agency, ws_name, tz) for ws_name, tz in spaces])
    users = []
    for username, role, ag_index, ws_index in USERS:
        workspace = workspaces[ws_index[0]][ws_index[1]] if ws_index else None
        agency = agencies[ag_index] if ag_index is not None else (workspace.agency if workspace else None)
        _user(username, role, password, agency, workspace)
        users.append({"username": username, "email": f"{username}@demo.asthron.test", "password": password,
                      "role": role.value, "agency": agency.name if agency else None,
                      "workspace": workspace.name if workspace else None})
    _seed_inbox([w for ws in workspaces for w in ws])
    db.session.commit()
    return {"users": users,
            "workspaces": [{"name": w.name, "slug": w.slug, "agency": w.agency.name, "key": w.public_key,
                            "site": f"/demo/site/{w.slug}"} for ws in workspaces for w in ws]}
