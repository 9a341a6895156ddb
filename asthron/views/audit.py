"""The audit log viewer: tenant-scoped for customers, platform-wide for operators."""
from flask_appbuilder import ModelView

from asthron.models.audit import AuditEntry
from asthron.views.base import FilterInScope, TenantInterface


class AuditLogView(ModelView):
    datamodel = TenantInterface(AuditEntry)
    base_permissions = ["can_list", "can_show"]
    base_filters = [["id", FilterInScope, lambda: None]]
    base_order = ("seq", "desc")
    list_title = "Audit log"
    list_columns = ["created_at", "actor", "action", "target_type", "target_id", "workspace_id", "ip"]
    show_columns = ["seq", "created_at", "actor", "actor_id", "action", "target_type", "target_id",
                    "agency_id", "workspace_id", "ip", "details", "prev_hash", "entry_hash"]
    search_columns = ["actor", "action", "created_at", "workspace_id"]
    page_size = 50
