"""Roles defined in code: FAB permission patterns per role (view regex, permission regex).

FAB matches each pattern with `re.match`, so every pattern is anchored. Later capabilities add their
views here; the README's permission matrix is generated from the same table by a test.
"""
from asthron.models.tenancy import Role

READ = "^(can_list|can_show|menu_access)$"
WRITE = "^(can_list|can_show|can_add|can_edit|can_delete|menu_access)$"
FORM = "^(can_this_form_get|can_this_form_post|menu_access)$"

# Every signed-in user: their own profile and password.
SELF_SERVICE = [
    ("^UserDBModelView$", "^can_userinfo$"),
    ("^UserInfoEditView$", FORM),
    ("^ResetMyPasswordView$", FORM),
    ("^(Workspaces|Team|Audit|Account)$", "^menu_access$"),
]

ROLE_PERMISSIONS = {
    Role.operator.value: SELF_SERVICE + [
        ("^(AgencyView|SubprocessorView)$", WRITE),
        ("^WorkspaceView$", "^(can_list|can_show|can_edit|menu_access)$"),
        ("^(AuditLogView|PluginsView)$", READ),
        ("^UserDBModelView$", "^(can_list|can_show|can_add|can_edit|can_delete|menu_access|can_resetpasswords)$"),
        ("^RoleModelView$", READ),
        ("^ResetPasswordView$", FORM),
        ("^(Platform|Security)$", "^menu_access$"),
    ],
    Role.agency_admin.value: SELF_SERVICE + [
        ("^AgencyView$", READ),
        ("^WorkspaceView$", WRITE),
        ("^MembershipView$", WRITE),
        ("^AddTeamMemberView$", FORM),
        ("^AuditLogView$", READ),
    ],
    Role.workspace_admin.value: SELF_SERVICE + [
        ("^WorkspaceView$", "^(can_list|can_show|can_edit|menu_access)$"),
        ("^MembershipView$", WRITE),
        ("^AddTeamMemberView$", FORM),
        ("^AuditLogView$", READ),
    ],
    Role.staff.value: SELF_SERVICE + [
        ("^WorkspaceView$", READ),
        ("^MembershipView$", READ),
    ],
    Role.client.value: SELF_SERVICE + [
        ("^WorkspaceView$", READ),
    ],
}

ADMIN_ROLES = (Role.agency_admin.value, Role.workspace_admin.value)
