"""Creating agencies and workspaces, and adding people to them."""
import re

from flask_appbuilder.security.sqla.models import Role as FabRole, User
from sqlalchemy import select

from asthron.extensions import db
from asthron.models.tenancy import Agency, Membership, Role, Workspace


class TenancyError(ValueError):
    """A user-caused problem with a tenancy change; the message is shown as is."""


def slugify(text):
    """Return a URL-safe slug for a name."""
    slug = re.sub(r"[^a-z0-9]+", "-", (text or "").lower()).strip("-")
    return slug[:80] or "workspace"


def normalise_origin(origin):
    """Return a website origin as scheme://host[:port], or raise TenancyError."""
    value = (origin or "").strip().rstrip("/")
    if not re.fullmatch(r"https?://[A-Za-z0-9.-]+(:\d{1,5})?", value):
        raise TenancyError(f"{origin!r} is not a website origin like https://example.com")
    return value.lower()


def create_agency(name):
    """Create an agency."""
    agency = Agency(name=name, slug=slugify(name))
    db.session.add(agency)
    db.session.flush()
    return agency


def check_time_zone(name):
    """Raise TenancyError unless `name` is an IANA time zone."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(name or "")
    except (ZoneInfoNotFoundError, ValueError):
        raise TenancyError(f"{name!r} is not an IANA time zone, like Europe/London") from None


def create_workspace(*, agency, name, origins=(), time_zone="UTC"):
    """Create a client workspace in an agency."""
    check_time_zone(time_zone)
    workspace = Workspace(agency=agency, name=name, slug=slugify(name), time_zone=time_zone,
                          allowed_origins=[normalise_origin(o) for o in origins])
    db.session.add(workspace)
    db.session.flush()
    return workspace


def fab_role(role):
    """Return the FAB role row for one of our roles."""
    found = db.session.execute(select(FabRole).where(FabRole.name == Role(role).value)).scalar()
    if found is None:
        raise TenancyError(f"role {Role(role).value!r} is not synced yet: run `flask asthron sync-roles`")
    return found


def sync_user_roles(user):
    """Give a user exactly the FAB roles of their memberships (operators keep Operator)."""
    roles = {m.role for m in db.session.scalars(select(Membership).where(Membership.user_id == user.id))}
    keep = [r for r in user.roles if r.name == Role.operator.value]
    user.roles = keep + [fab_role(r) for r in sorted(roles, key=lambda r: r.value)]


def add_member(*, user, role, agency=None, workspace=None):
    """Give a user a role in an agency (agency admins) or in one workspace (everyone else)."""
    role = Role(role)
    if role == Role.operator:
        raise TenancyError("Operators are platform staff, not members of a tenant.")
    if role == Role.agency_admin and agency is None:
        raise TenancyError("An agency admin belongs to an agency.")
    if role != Role.agency_admin and workspace is None:
        raise TenancyError(f"A {role.value} belongs to a workspace.")
    membership = Membership(user_id=user.id, role=role,
                            agency_id=agency.id if role == Role.agency_admin else None,
                            workspace_id=workspace.id if role != Role.agency_admin else None)
    db.session.add(membership)
    db.session.flush()
    sync_user_roles(user)
    return membership


def create_user(*, username, email, password, first_name="", last_name="", roles=()):
    """Create an active user with a policy-checked, scrypt-hashed password."""
    from flask import current_app

    from asthron.passwords import check_password_policy

    check_password_policy(password)
    if db.session.execute(select(User).where((User.username == username) | (User.email == email))).first():
        raise TenancyError("A user with that username or email already exists.")
    user = current_app.appbuilder.sm.add_user(username=username, first_name=first_name or username,
                                              last_name=last_name or "-", email=email,
                                              role=[fab_role(r) for r in roles], password=password)
    if not user:
        raise TenancyError("The user could not be created.")
    return user


def ensure_workspace_rows(model, workspace_ids):
    """Give each workspace without a `model` row (one per workspace) a default one; return how many were made."""
    ids = set(workspace_ids)
    if not ids:
        return 0
    have = set(db.session.scalars(select(model.workspace_id).where(model.workspace_id.in_(ids))))
    for workspace_id in sorted(ids - have):
        db.session.add(model(workspace_id=workspace_id))
    return len(ids - have)
