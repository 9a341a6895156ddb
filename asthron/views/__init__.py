"""Register every admin view and menu entry in one place."""
from asthron.extensions import appbuilder


def init_app(app):
    """Add the admin views to the app's builder."""
    from asthron import plugins
    from asthron.views.ai_connections import AIConnectionView
    from asthron.views.audit import AuditLogView
    from asthron.views.chat import ConversationView, KnowledgeEntryView, LeadView, MessageView
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
    builder.add_view(ConversationView, "Conversations", icon="fa-comments", category="Conversations")
    builder.add_view(LeadView, "Leads", icon="fa-address-card", category="Conversations")
    builder.add_view_no_menu(MessageView)
    builder.add_view(KnowledgeEntryView, "Knowledge base", icon="fa-book", category="Widget")
    builder.add_view(WidgetSettingsView, "Widget settings", icon="fa-comments", category="Widget")
    plugins.register_admin_views(builder)


__all__ = ["init_app", "appbuilder"]
