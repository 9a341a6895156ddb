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
    ("^(Workspaces|Team|Audit|Account|Conversations|Widget|Leads|Bookings|Email)$", "^menu_access$"),
]
# Chat capability views: conversations and their transcripts, leads, the knowledge base, widget set-up.
CHAT_READ = [("^(ConversationView|MessageView|KnowledgeEntryView|WidgetSettingsView)$", READ),
             ("^WidgetSettingsView$", "^can_preview$")]
CHAT_ADMIN = [("^(KnowledgeEntryView)$", WRITE),
              ("^WidgetSettingsView$", "^(can_list|can_show|can_edit|can_preview|menu_access)$")]
# Leads (views/leads.py, views/lead_board.py): Client reads list, lead page and board; staff and admins work them.
LEADS_READ = [("^LeadView$", "^(can_list|can_show|menu_access)$"), ("^LeadBoardView$", "^(can_board|menu_access)$")]
LEADS_WORK = [("^LeadView$", "^(can_list|can_show|can_edit|can_export|can_import|menu_access)$"),
              ("^LeadBoardView$", "^(can_board|can_move|menu_access)$")]
# Lead setup (views/lead_setup.py): everyone with leads reads it; workspace and agency admins configure it;
# only agency admins copy a setup between their workspaces.
LEAD_SETUP_VIEWS = "^(LeadFieldView|PipelineStageView|ScoringRuleView|StageRuleView)$"
LEAD_SETUP_READ = [(LEAD_SETUP_VIEWS, "^(can_list|can_show)$"),
                   ("^(Lead fields|Pipeline stages|Scoring rules|Stage rules)$", "^menu_access$")]
LEAD_SETUP_ADMIN = LEAD_SETUP_READ + [(LEAD_SETUP_VIEWS, WRITE)]
LEAD_SETUP_COPY = [("^CopyLeadSetupView$", FORM), ("^Copy lead setup$", "^menu_access$")]

# Inbox (views/inbox.py, views/inbox_settings.py): Client reads; staff and admins answer; admins configure.
INBOX_READ = [("^InboxView$", "^can_read$"), ("^Inbox$", "^menu_access$")]
INBOX_WORK = [("^InboxView$", "^(can_read|can_work)$"), ("^CannedReplyView$", "^(can_list|can_show)$"),
              ("^(Inbox|Canned replies)$", "^menu_access$")]
INBOX_ADMIN = [("^CannedReplyView$", WRITE), ("^InboxSettingsView$", "^(can_list|can_show|can_edit)$"),
               ("^Inbox settings$", "^menu_access$")]
# Booking (views/booking.py): Client reads bookings and set-up; staff also cancel; admins configure.
BOOKING_READ = [("^(BookingView|ServiceView|ResourceView|WorkingHoursView|DateOverrideView)$", "^(can_list|can_show)$"),
                ("^BookingWeekView$", "^can_week$"),
                ("^(Week|Booking list|Services|Staff and resources)$", "^menu_access$")]
BOOKING_WORK = BOOKING_READ + [("^BookingView$", "^cancel$")]  # FAB names an action's permission by the action
BOOKING_ADMIN = [("^(ServiceView|ResourceView|WorkingHoursView|DateOverrideView|BookingSettingsView)$", WRITE),
                 ("^Booking settings$", "^menu_access$")]
# Calendar sync (views/calendar.py): Client reads calendars and sync state; staff retry syncs; admins configure.
CALENDAR_READ = [("^(CalendarView|BookingSyncView)$", "^(can_list|can_show)$"),
                 ("^(Calendars|Calendar sync)$", "^menu_access$")]
CALENDAR_WORK = CALENDAR_READ + [("^BookingSyncView$", "^can_retry_sync$")]
CALENDAR_ADMIN = [("^CalendarView$", "^can_edit$")]
# Email (views/notifications.py): staff and admins read their workspaces' notifications and outbox and
# choose their own emails; admins retry failed ones and edit sender settings; Client and Operator: none.
NOTIFY_READ = [("^(NotificationView|OutboxEmailView)$", "^(can_list|can_show)$"),
               ("^NotificationPreferencesView$", "^can_preferences$"),
               ("^(Notifications|Outbox|My email notifications)$", "^menu_access$")]
NOTIFY_ADMIN = [("^NotificationView$", "^can_retry$"), ("^EmailSettingsView$", "^(can_list|can_show|can_edit)$"),
                ("^Email settings$", "^menu_access$")]

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
    ] + CHAT_READ + CHAT_ADMIN + LEADS_WORK + INBOX_WORK + INBOX_ADMIN + BOOKING_WORK + BOOKING_ADMIN \
        + CALENDAR_WORK + CALENDAR_ADMIN + NOTIFY_READ + NOTIFY_ADMIN + LEAD_SETUP_ADMIN + LEAD_SETUP_COPY,
    Role.workspace_admin.value: SELF_SERVICE + [
        ("^WorkspaceView$", "^(can_list|can_show|can_edit|menu_access)$"),
        ("^MembershipView$", WRITE),
        ("^AddTeamMemberView$", FORM),
        ("^AuditLogView$", READ),
    ] + CHAT_READ + CHAT_ADMIN + LEADS_WORK + INBOX_WORK + INBOX_ADMIN + BOOKING_WORK + BOOKING_ADMIN \
        + CALENDAR_WORK + CALENDAR_ADMIN + NOTIFY_READ + NOTIFY_ADMIN + LEAD_SETUP_ADMIN,
    Role.staff.value: SELF_SERVICE + [
        ("^WorkspaceView$", READ),
        ("^MembershipView$", READ),
        ("^KnowledgeEntryView$", WRITE),
    ] + CHAT_READ + LEADS_WORK + INBOX_WORK + BOOKING_WORK + CALENDAR_WORK + NOTIFY_READ + LEAD_SETUP_READ,
    Role.client.value: SELF_SERVICE + [
        ("^WorkspaceView$", READ),
    ] + CHAT_READ + LEADS_READ + INBOX_READ + BOOKING_READ + CALENDAR_READ + LEAD_SETUP_READ,
}

ADMIN_ROLES = (Role.agency_admin.value, Role.workspace_admin.value)
WORKING_ROLES = (Role.staff.value, *ADMIN_ROLES)  # who works a workspace's data; a client only reads it

SHORT = {"can_list": "list", "can_show": "show", "can_add": "add", "can_edit": "edit", "can_delete": "delete",
         "can_this_form_get": "form", "can_this_form_post": "form", "can_userinfo": "own profile",
         "can_resetpasswords": "reset passwords", "can_get": "read", "can_preview": "preview",
         "can_export": "export", "can_import": "import", "can_board": "board", "can_move": "move",
         "can_read": "read", "can_work": "work",
         "can_retry": "retry", "can_preferences": "own preferences",
         "can_retry_sync": "retry sync", "cancel": "cancel", "can_week": "week"}
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
