"""Admin views for email: notifications and their delivery, the outbox, sender settings, personal preferences.

All tenant views are scoped (TenantModelView and the query guard). Email bodies are data: the
outbox shows the text part as text and the HTML part in a sandboxed frame that runs no script.
Transport settings only ever hold `$env` references, so no page shows a secret.
"""
import json

from flask import abort, flash, redirect, request, url_for
from flask_appbuilder import BaseView, expose, has_access
from flask_appbuilder.actions import action
from flask_appbuilder.fieldwidgets import BS3TextAreaFieldWidget, BS3TextFieldWidget, Select2Widget
from wtforms import SelectField, StringField, TextAreaField
from wtforms.validators import ValidationError

from asthron import audit
from asthron.extensions import db
from asthron.models.notifications import EmailSettings, Notification, NotificationStatus, OutboxEmail
from asthron.services import email_settings as settings_service
from asthron.services import notifications as service
from asthron.tenancy import current_scope
from asthron.views.base import (
    OneRowPerWorkspaceView, RejectedFormIs400, TenantInterface, TenantModelView, action_rows,
)

READ_ONLY = ["can_list", "can_show"]


def _status(value):
    return getattr(value, "value", value) or ""


class NotificationView(TenantModelView):
    """Emails of the caller's workspaces: status, attempts, last error; admins retry failed ones."""

    datamodel = TenantInterface(Notification)
    base_permissions = ["can_list", "can_show"]
    method_permission_name = {"retry": "retry"}
    list_title = "Notifications"
    show_title = "Notification"
    list_columns = ["created_at", "workspace", "template", "recipient", "subject", "status", "attempts", "last_error"]
    show_columns = ["workspace", "template", "recipient", "subject", "status", "attempts", "last_error", "transport",
                    "message_id", "created_at", "last_attempt_at", "sent_at"]
    search_columns = ["status", "template", "recipient", "workspace", "created_at"]
    base_order = ("created_at", "desc")
    formatters_columns = {"status": _status, "subject": lambda value: value or "",
                          "last_error": lambda value: value or ""}
    label_columns = {"last_error": "Last error", "last_attempt_at": "Last attempt", "message_id": "Message-ID"}
    list_template = "notifications/list.html"

    @action("retry", "Retry now", "Send the selected failed emails again?", "fa-repeat", single=False)
    def retry(self, items):
        """Queue the selected failed notifications again (404 when one is outside the caller's scope)."""
        items = action_rows(items)
        if not items:
            abort(404)
        queued = 0
        for item in items:
            if item.status == NotificationStatus.failed:
                service.retry(item)
                audit.record("notification.retry", target_type="Notification", target_id=item.id,
                             workspace_id=item.workspace_id, details={"template": item.template})
                queued += 1
        db.session.commit()
        skipped = len(items) - queued
        flash(f"{queued} queued again." + (f" {skipped} were not failed and were left as they are." if skipped
                                            else ""), "info" if queued else "warning")
        return redirect(url_for("NotificationView.list"))


class OutboxEmailView(TenantModelView):
    """Emails the outbox transport kept instead of sending (development, the demo)."""

    datamodel = TenantInterface(OutboxEmail)
    base_permissions = READ_ONLY
    list_title = "Outbox"
    show_title = "Email in the outbox"
    list_columns = ["created_at", "workspace", "to", "subject"]
    show_columns = ["workspace", "to", "from_addr", "reply_to", "subject", "message_id", "created_at", "attachments"]
    search_columns = ["to", "subject", "workspace", "created_at"]
    base_order = ("created_at", "desc")
    label_columns = {"from_addr": "From", "reply_to": "Reply-To", "message_id": "Message-ID"}
    formatters_columns = {"attachments": lambda files: ", ".join(
        f"{f.get('filename')} ({f.get('content_type')}, {f.get('size')} bytes)" for f in files or []) or "none"}
    show_template = "notifications/outbox_show.html"

    @expose("/show/<pk>", methods=["GET"])
    @has_access
    def show(self, pk):
        """Show the email: headers, the text part as text, the HTML part in a sandboxed frame."""
        widgets = self._show(pk)
        item = self.datamodel.get(pk, self._base_filters)
        if item is None:
            abort(404)
        return self.render_template(self.show_template, pk=pk, title=self.show_title, widgets=widgets,
                                    related_views=self._related_views, email=item)


def _settings_check(key):
    """A validator that reports the email settings service's message for one field."""
    def validator(form, field):
        try:
            settings_service.clean(from_name=form.from_name.data, from_address=form.from_address.data,
                                   reply_to=form.reply_to.data, transport=form.transport.data,
                                   transport_settings=form.settings_json.data)
        except settings_service.SettingsError as exc:
            if key in exc.errors:
                if key == "transport_settings":
                    # A refused literal secret is not shown again in the re-rendered form.
                    field.data = settings_service.without_literal_secrets(field.data)
                raise ValidationError(exc.errors[key]) from None
    return validator


def _transport_choices():
    return [("", "Platform default")] + settings_service.transport_choices()


SETTINGS_FIELDS = {
    "from_name": StringField("From name", widget=BS3TextFieldWidget(), validators=[_settings_check("from_name")],
                             description="Empty: the workspace's name."),
    "from_address": StringField("From address", widget=BS3TextFieldWidget(),
                                validators=[_settings_check("from_address")],
                                description="Empty: the platform's address. The transport must be allowed to send "
                                            "as this address (SPF and DKIM of its domain)."),
    "reply_to": StringField("Reply-To", widget=BS3TextFieldWidget(), validators=[_settings_check("reply_to")],
                            description="Where replies go, e.g. the client's front desk."),
    "transport": SelectField("Transport", choices=_transport_choices, widget=Select2Widget(),
                             validators=[_settings_check("transport")],
                             description="How email leaves: the installed transports. Platform default: the "
                                         "operator's choice (ASTHRON_EMAIL_TRANSPORT)."),
    "settings_json": TextAreaField("Transport settings (JSON)", widget=BS3TextAreaFieldWidget(),
                                   validators=[_settings_check("transport_settings")],
                                   description='For example {"host": "smtp.example.com", "port": 587, '
                                               '"security": "starttls", "username": "mailer", '
                                               '"password": {"$env": "SMTP_PASSWORD"}}. Secrets are '
                                               'written as {"$env": "VARIABLE"} and set in the environment '
                                               "of the web process and the workers, never here."),
}


def _describe_settings(settings):
    text = json.dumps(settings or {}, sort_keys=True)
    missing = settings_service.missing_variables(settings)
    return text + (f" (not set in this process: {', '.join(missing)})" if missing else "")


class EmailSettingsView(OneRowPerWorkspaceView):
    """Each workspace's sender identity and transport; agency and workspace admins edit them."""

    datamodel = TenantInterface(EmailSettings)
    base_permissions = ["can_list", "can_show", "can_edit"]
    list_title = "Email settings"
    show_title = "Email settings"
    edit_title = "Edit email settings"
    list_columns = ["workspace", "from_name", "from_address", "reply_to", "transport"]
    show_columns = ["workspace", "from_name", "from_address", "reply_to", "transport", "transport_settings",
                    "updated_at"]
    edit_columns = ["from_name", "from_address", "reply_to", "transport", "settings_json"]
    edit_form_extra_fields = SETTINGS_FIELDS
    formatters_columns = {"transport": lambda value: value or "platform default",
                          "transport_settings": _describe_settings}
    label_columns = {"reply_to": "Reply-To", "transport_settings": "Transport settings"}

    def prefill_form(self, form, pk):
        item = self.datamodel.get(pk)
        form.settings_json.data = json.dumps(item.transport_settings or {}, indent=2)
        form.transport.data = item.transport or ""

    def pre_update(self, item):
        form = request.form
        cleaned = settings_service.clean(from_name=form.get("from_name"), from_address=form.get("from_address"),
                                         reply_to=form.get("reply_to"), transport=form.get("transport"),
                                         transport_settings=form.get("settings_json"))
        for key, value in cleaned.items():
            setattr(item, key, value)


class NotificationPreferencesView(RejectedFormIs400, BaseView):
    """Each person chooses which staff notifications they receive by email."""

    route_base = "/notification-preferences"
    default_view = "preferences"
    base_permissions = ["can_preferences"]

    @expose("/", methods=["GET", "POST"])
    @has_access
    def preferences(self):
        """Show the choices, or store them (an unchecked box turns that email off)."""
        user_id = current_scope().user_id
        if user_id is None:
            abort(404)
        staff_templates = service.templates(audience="staff")
        if request.method == "POST":
            chosen = set(request.form.getlist("template"))
            service.set_preferences(user_id, {t.name: t.name in chosen for t in staff_templates})
            db.session.commit()
            flash("Your email notifications are saved.", "info")
            return redirect(url_for("NotificationPreferencesView.preferences"))
        choices = [(t, service.wants(user_id, t.name)) for t in staff_templates]
        return self.render_template("notifications/preferences.html", choices=choices,
                                    title="My email notifications")
