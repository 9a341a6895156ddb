"""Roles defined in code: FAB permission patterns per role (view regex, permission regex).

FAB matches each pattern with `re.match`, so every pattern is anchored. Later capabilities add their
views here; the README's permission matrix is generated from the same table by a test.
"""
import re

from asthron.models.tenancy import Role

READ = "^(can_list|can_show|menu_access)$"
WRITE = "^(can_list|can_show|can_add|can_edit|can_delete|menu_access)$"
FORM = "^(can_this_form_get|can_this_form_post|menu_access)$"

# Every signed-in user: their own profile and password.
SELF_SERVICE = [
    ("^AsthronUserView$", "^can_userinfo$"),
    ("^UserInfoEditView$", FORM),
    ("^ResetMyPasswordView$", FORM),
    ("^(Workspaces|Team|Audit|Account|Conversations|Widget)$", "^menu_access$"),
]
# Chat capability views: conversations and their transcripts, leads, the knowledge base, widget set-up.
CHAT_READ = [("^(ConversationView|MessageView|LeadView|KnowledgeEntryView|WidgetSettingsView)$", READ),
             ("^WidgetSettingsView$", "^can_preview$")]
CHAT_ADMIN = [("^(KnowledgeEntryView)$", WRITE),
              ("^WidgetSettingsView$", "^(can_list|can_show|can_edit|can_preview|menu_access)$")]

ROLE_PERMISSIONS = {
    Role.operator.value: SELF_SERVICE + [
        ("^(AgencyView|SubprocessorView)$", WRITE),
        ("^WorkspaceView$", "^(can_list|can_show|can_edit|menu_access)$"),
        ("^(AuditLogView|PluginsView)$", READ),
        ("^AsthronUserView$", "^(can_list|can_show|can_add|can_edit|can_delete|menu_access|can_resetpasswords)$"),
        ("^RoleModelView$", READ),
        ("^ResetPasswordView$", FORM),
        ("^(Platform|Security)$", "^menu_access$"),
        ("^AIConnectionView$", WRITE),
    ],
    Role.agency_admin.value: SELF_SERVICE + [
        ("^AgencyView$", READ),
        ("^WorkspaceView$", WRITE),
        ("^MembershipView$", WRITE),
        ("^AddTeamMemberView$", FORM),
        ("^AuditLogView$", READ),
    ] + CHAT_READ + CHAT_ADMIN,
    Role.workspace_admin.value: SELF_SERVICE + [
        ("^WorkspaceView$", "^(can_list|can_show|can_edit|menu_access)$"),
        ("^MembershipView$", WRITE),
        ("^AddTeamMemberView$", FORM),
        ("^AuditLogView$", READ),
    ] + CHAT_READ + CHAT_ADMIN,
    Role.staff.value: SELF_SERVICE + [
        ("^WorkspaceView$", READ),
        ("^MembershipView$", READ),
        ("^KnowledgeEntryView$", WRITE),
    ] + CHAT_READ,
    Role.client.value: SELF_SERVICE + [
        ("^WorkspaceView$", READ),
    ] + CHAT_READ,
}

ADMIN_ROLES = (Role.agency_admin.value, Role.workspace_admin.value)

SHORT = {"can_list": "list", "can_show": "show", "can_add": "add", "can_edit": "edit", "can_delete": "delete",
         "can_this_form_get": "form", "can_this_form_post": "form", "can_userinfo": "own profile",
         "can_resetpasswords": "reset passwords", "can_get": "read", "can_preview": "preview"}
MATRIX_VIEWS_SKIPPED = ("MenuApi", "UtilView", "LocaleView", "IndexView", "AuthDBView", "SecurityApi",
                        "OpenApi", "SwaggerView")


def granted(role, view, permission):
    """Say whether a role's patterns grant `permission` on `view`."""
    return any(re.match(v, view) and re.match(p, permission) for v, p in ROLE_PERMISSIONS[role])


def permission_matrix_markdown(views):
    """Return the permission matrix as a Markdown table for `views` ({view name: [permissions]})."""
    roles = list(ROLE_PERMISSIONS)
    lines = ["| view | " + " | ".join(roles) + " |", "|---" * (len(roles) + 1) + "|"]
    for view in sorted(v for v in views if v not in MATRIX_VIEWS_SKIPPED):
        cells = []
        for role in roles:
            names = sorted({SHORT.get(p, p) for p in views[view] if p != "menu_access" and granted(role, view, p)})
            cells.append(", ".join(names) or "-")
        if any(c != "-" for c in cells):
            lines.append(f"| {view} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def registered_views(appbuilder):
    """Return {view name: [permission names]} for every view registered on a builder."""
    views = {}
    for view in appbuilder.baseviews:
        name = getattr(view, "class_permission_name", None) or type(view).__name__
        views.setdefault(name, set()).update(getattr(view, "base_permissions", None) or [])
    return {k: sorted(v) for k, v in views.items()}
