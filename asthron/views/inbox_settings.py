"""Admin views of the inbox's per-workspace configuration: canned replies and handoff settings."""
from wtforms import BooleanField, IntegerField
from wtforms.validators import DataRequired, Length, NumberRange, Optional

from asthron.models.inbox import CannedReply, InboxSettings
from asthron.views.base import OneRowPerWorkspaceView, TenantInterface, TenantModelView


class CannedReplyView(TenantModelView):
    """Replies staff insert in the inbox with one click, per workspace."""

    datamodel = TenantInterface(CannedReply)
    list_title = "Canned replies"
    list_columns = ["title", "workspace", "updated_at"]
    show_columns = ["title", "body", "workspace", "created_at", "updated_at"]
    add_columns = ["workspace", "title", "body"]
    edit_columns = ["title", "body"]
    search_columns = ["title", "body", "workspace"]
    base_order = ("title", "asc")
    validators_columns = {"title": [DataRequired(), Length(max=120)], "body": [DataRequired(), Length(max=4000)]}
    description_columns = {"title": "A short name staff pick it by, e.g. Opening hours.",
                           "body": "The text put in the reply box; staff can edit it before sending."}

    def pre_add(self, item):
        # The form sets the relationship; the tenant guard checks workspace_id before the flush fills it.
        if item.workspace is not None:
            item.workspace_id = item.workspace.id


class InboxSettingsView(OneRowPerWorkspaceView):
    """Each workspace's handoff rules: automatic assignment, promised reply time, lead-score trigger."""

    datamodel = TenantInterface(InboxSettings)
    list_title = "Inbox settings"
    base_permissions = ["can_list", "can_show", "can_edit"]
    list_columns = ["workspace", "auto_assign", "expected_reply", "handoff_score_threshold"]
    show_columns = ["workspace", "auto_assign", "expected_reply", "ask_email_when_away", "handoff_score_threshold"]
    edit_columns = ["auto_assign", "expected_reply", "ask_email_when_away", "handoff_score_threshold"]
    label_columns = {"auto_assign": "Assign automatically", "expected_reply": "Reply time promised",
                     "ask_email_when_away": "Ask for an email when nobody is available",
                     "handoff_score_threshold": "Hand off leads scoring at least"}
    # FAB makes a non-null boolean "required", which refuses an unticked box.
    edit_form_extra_fields = {
        "auto_assign": BooleanField("Assign automatically",
                                    description="Give each handoff to the available staff member who waited longest."),
        "ask_email_when_away": BooleanField("Ask for an email when nobody is available",
                                            description="The transcript is emailed when the team replies."),
        "handoff_score_threshold": IntegerField("Hand off leads scoring at least",
                                                validators=[Optional(), NumberRange(min=0, max=100000)],
                                                description="Empty: leads never trigger a handoff."),
    }
    validators_columns = {"expected_reply": [DataRequired(), Length(max=200)]}
    description_columns = {"expected_reply": "Shown to visitors when nobody is available, e.g. "
                                             "We usually reply within a few hours."}
