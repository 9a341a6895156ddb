"""Admin views for conversations and their transcripts and the knowledge base (leads: views/leads.py).

All are tenant-scoped (TenantModelView and the query guard): operators get no data scope, so they
see no conversations, messages or leads. Visitor and AI text is rendered by autoescaping templates.
"""
from flask_appbuilder import expose, has_access
from flask_appbuilder.fieldwidgets import Select2Widget
from sqlalchemy import select
from wtforms import SelectField
from wtforms.validators import DataRequired, Length

from asthron.extensions import db
from asthron.models.chat import Conversation, KnowledgeEntry, Message
from asthron.views.base import TenantInterface, TenantModelView

READ_ONLY = ["can_list", "can_show"]
TRANSCRIPT_LIMIT = 1000
ROLE_LABELS = {"visitor": "Visitor", "assistant": "Assistant", "staff": "Team", "system": "System",
               "note": "Internal note"}
KINDS = [("faq", "FAQ entry"), ("document", "Document")]


def _enum_value(value):
    return getattr(value, "value", value) or ""


class ConversationView(TenantModelView):
    """Conversations of the caller's workspaces; the show page carries the transcript."""

    datamodel = TenantInterface(Conversation)
    base_permissions = READ_ONLY
    list_title = "Conversations"
    show_title = "Conversation"
    list_columns = ["workspace", "owner", "needs_human", "flag_reason", "last_message_at"]
    # The token hash and consent details stay out of lists; the show page names the consent version.
    show_columns = ["id", "workspace", "owner", "needs_human", "flag_reason", "origin", "consent_version",
                    "consented_at", "created_at", "last_message_at"]
    search_columns = ["workspace", "owner", "needs_human", "last_message_at"]
    base_order = ("last_message_at", "desc")
    formatters_columns = {"owner": _enum_value}
    label_columns = {"needs_human": "Needs a person", "flag_reason": "Why", "last_message_at": "Last message"}
    show_template = "chat/conversation_show.html"

    @expose("/show/<pk>", methods=["GET"])
    @has_access
    def show(self, pk):
        """Show the conversation and its transcript as text."""
        widgets = self._show(pk)  # 404 for a conversation outside the caller's scope
        messages = db.session.execute(
            select(Message).where(Message.conversation_id == pk).order_by(Message.id.desc())
            .limit(TRANSCRIPT_LIMIT + 1)).scalars().all()
        return self.render_template(self.show_template, pk=pk, title=self.show_title, widgets=widgets,
                                    related_views=self._related_views,
                                    transcript=list(reversed(messages[:TRANSCRIPT_LIMIT])),
                                    transcript_truncated=len(messages) > TRANSCRIPT_LIMIT, role_labels=ROLE_LABELS)


class MessageView(TenantModelView):
    """Messages, searchable across the caller's conversations (read-only)."""

    datamodel = TenantInterface(Message)
    base_permissions = READ_ONLY
    list_title = "Messages"
    list_columns = ["conversation", "role", "author", "text", "created_at"]
    show_columns = ["conversation", "role", "author", "text", "created_at"]
    search_columns = ["role", "text", "created_at"]
    base_order = ("id", "desc")
    formatters_columns = {"role": _enum_value}


class KnowledgeEntryView(TenantModelView):
    """The knowledge base the assistant answers from, per workspace."""

    datamodel = TenantInterface(KnowledgeEntry)
    list_title = "Knowledge base"
    list_columns = ["title", "kind", "workspace", "updated_at"]
    show_columns = ["title", "kind", "body", "workspace", "created_at", "updated_at"]
    add_columns = ["workspace", "kind", "title", "body"]
    edit_columns = ["kind", "title", "body"]
    search_columns = ["title", "body", "kind", "workspace"]
    base_order = ("title", "asc")
    add_form_extra_fields = edit_form_extra_fields = {
        "kind": SelectField("Kind", choices=KINDS, default="faq", validators=[DataRequired()], widget=Select2Widget(),
                            description="An FAQ entry answers one question; a document is longer reference text."),
    }
    validators_columns = {
        "title": [DataRequired(), Length(max=300)],
        "body": [DataRequired(), Length(max=20000)],
    }
    description_columns = {
        "title": "The question or topic, as a visitor would put it (for example: Opening hours).",
        "body": "The answer. The assistant quotes it, so write it as you would say it to a visitor.",
    }

    def pre_add(self, item):
        # The form sets the relationship; the tenant guard checks workspace_id before the flush fills it.
        if item.workspace is not None:
            item.workspace_id = item.workspace.id
