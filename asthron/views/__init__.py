"""Register every admin view and menu entry in one place."""
from asthron.extensions import appbuilder


def init_app(app):
    """Add the admin views to the app's builder."""
    from asthron import plugins
    from asthron.views.ai_connections import AIConnectionView
    from asthron.views.audit import AuditLogView
    from asthron.views.booking import (
        BookingSettingsView, BookingView, BookingWeekView, DateOverrideView, ResourceView, ServiceView,
        WorkingHoursView,
    )
    from asthron.views.calendar import BookingSyncView, CalendarView
    from asthron.views.chat import ConversationView, KnowledgeEntryView, MessageView
    from asthron.views.inbox import InboxView
    from asthron.views.inbox_settings import CannedReplyView, InboxSettingsView
    from asthron.views.lead_board import LeadBoardView
    from asthron.views.lead_setup import (
        CopyLeadSetupView, LeadFieldView, PipelineStageView, ScoringRuleView, StageRuleView,
    )
    from asthron.views.leads import LeadView
    from asthron.views.notifications import (
        EmailSettingsView, NotificationPreferencesView, NotificationView, OutboxEmailView,
    )
    from asthron.views.platform import PluginsView, SubprocessorView
    from asthron.views.tenancy import AddTeamMemberView, AgencyView, MembershipView, WorkspaceView
    from asthron.views.widget_settings import WidgetSettingsView

    builder = app.appbuilder
    builder.add_view(AgencyView, "Agencies", icon="fa-building", category="Platform")
    builder.add_view(WorkspaceView, "Workspaces", icon="fa-globe", category="Workspaces")
    builder.add_view(MembershipView, "Team", icon="fa-users", category="Team")
    builder.add_view(AddTeamMemberView, "Add team member", icon="fa-user-plus", category="Team")
    builder.add_view(AuditLogView, "Audit log", icon="fa-list", category="Audit")
    builder.add_view(SubprocessorView, "Sub-processors", icon="fa-handshake-o", category="Platform")
    builder.add_view(PluginsView, "Plugins", icon="fa-plug", category="Platform")
    builder.add_view(AIConnectionView, "AI connections", icon="fa-bolt", category="Platform")
    builder.add_view(InboxView, "Inbox", icon="fa-inbox", category="Conversations")
    builder.add_view(ConversationView, "Conversations", icon="fa-comments", category="Conversations")
    builder.add_view(CannedReplyView, "Canned replies", icon="fa-reply", category="Conversations")
    builder.add_view(InboxSettingsView, "Inbox settings", icon="fa-cog", category="Conversations")
    builder.add_view(LeadView, "Leads", icon="fa-address-card", category="Leads")
    builder.add_view(LeadBoardView, "Pipeline", icon="fa-columns", category="Leads")
    builder.add_view(LeadFieldView, "Lead fields", icon="fa-list-alt", category="Leads")
    builder.add_view(PipelineStageView, "Pipeline stages", icon="fa-columns", category="Leads")
    builder.add_view(ScoringRuleView, "Scoring rules", icon="fa-star-half-o", category="Leads")
    builder.add_view(StageRuleView, "Stage rules", icon="fa-random", category="Leads")
    builder.add_view(CopyLeadSetupView, "Copy lead setup", icon="fa-clone", category="Leads")
    builder.add_view_no_menu(MessageView)
    builder.add_view(BookingWeekView, "Week", icon="fa-calendar", category="Bookings")
    builder.add_view(BookingView, "Booking list", icon="fa-calendar-check-o", category="Bookings")
    builder.add_view(ServiceView, "Services", icon="fa-briefcase", category="Bookings")
    builder.add_view(ResourceView, "Staff and resources", icon="fa-user-md", category="Bookings")
    builder.add_view(BookingSettingsView, "Booking settings", icon="fa-bell", category="Bookings")
    builder.add_view(CalendarView, "Calendars", icon="fa-calendar-o", category="Bookings")
    builder.add_view(BookingSyncView, "Calendar sync", icon="fa-refresh", category="Bookings")
    builder.add_view_no_menu(WorkingHoursView)
    builder.add_view_no_menu(DateOverrideView)
    builder.add_view(KnowledgeEntryView, "Knowledge base", icon="fa-book", category="Widget")
    builder.add_view(WidgetSettingsView, "Widget settings", icon="fa-comments", category="Widget")
    builder.add_view(NotificationView, "Notifications", icon="fa-envelope", category="Email")
    builder.add_view(OutboxEmailView, "Outbox", icon="fa-inbox", category="Email")
    builder.add_view(EmailSettingsView, "Email settings", icon="fa-cog", category="Email")
    builder.add_view(NotificationPreferencesView, "My email notifications", icon="fa-bell", category="Email")
    plugins.register_admin_views(builder)


__all__ = ["init_app", "appbuilder"]
