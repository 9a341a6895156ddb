"""Admin view of each workspace's widget: appearance, consent, AI set-up, the embed snippet and a live preview."""
import json

from flask import abort, url_for
from flask_appbuilder import expose, has_access
from flask_appbuilder.fieldwidgets import (
    BS3TextAreaFieldWidget,
    Select2ManyWidget,
    Select2Widget,
)
from flask_appbuilder.models.sqla.filters import FilterEqual
from wtforms import IntegerField, SelectField, SelectMultipleField, StringField, TextAreaField
from wtforms.validators import NumberRange, Optional, ValidationError

from asthron.extensions import db
from asthron.models.chat import WidgetSettings
from asthron.services import lead_fields
from asthron.services import widget_settings as service
from asthron.views.base import FilterInScope, OneRowPerWorkspaceView, TenantInterface


def _checked(check):
    """Turn a service check into a WTForms validator that reports its message on the field."""
    def validator(form, field):
        try:
            check(field.data)
        except service.SettingsError as exc:
            raise ValidationError(str(exc)) from None
    return validator


def _notice_when_required(form, field):
    if form.consent_required.data and not (field.data or "").strip():
        raise ValidationError("Write the notice visitors accept when consent is required.")


def _region(form, field):
    try:
        field.data = lead_fields.check_region(field.data)
    except lead_fields.FieldError as exc:
        raise ValidationError(str(exc)) from None


def _tool_choices():
    return [(name, name) for name in service.known_tools()]


def _provider_choices():
    return [(name, name) for name in service.provider_names()]


EXTRA_FIELDS = {
    "position": SelectField("Position", choices=[("right", "Bottom right"), ("left", "Bottom left")],
                            widget=Select2Widget()),
    "ai_provider": SelectField("AI provider", choices=_provider_choices, widget=Select2Widget(),
                               description="The installed AI providers; \"offline\" answers from the knowledge base."),
    # An extra field, not the column's: the column's own field would require a notice even when none is asked.
    "consent_notice": TextAreaField("Consent notice", widget=BS3TextAreaFieldWidget(),
                                    validators=[_notice_when_required],
                                    description="Shown before the first message when consent is required."),
    "strings_json": TextAreaField("Widget texts (JSON)", widget=BS3TextAreaFieldWidget(),
                                  validators=[_checked(service.parse_strings)],
                                  description="Override the widget's own texts, e.g. {\"send\": \"Envoyer\"}. "
                                              "Names: " + ", ".join(service.STRING_KEYS) + "."),
    "tools": SelectMultipleField("Enabled tools", choices=_tool_choices, widget=Select2ManyWidget(),
                                 description="Actions the assistant may propose; the server checks each one."),
    "questions": TextAreaField("Qualification questions", widget=BS3TextAreaFieldWidget(),
                               validators=[_checked(service.parse_questions)],
                               description="One per line; the assistant asks them to qualify a lead."),
    "lead_form": SelectField("Lead form", choices=lead_fields.LEAD_FORM_CHOICES, default="off", widget=Select2Widget(),
                             description="When the widget shows the lead form (its fields are set under Lead setup)."),
    "phone_region": StringField("Phone country", validators=[_region],
                                description="Two letters, e.g. GB: phone numbers without +country code are read "
                                            "as numbers of this country. Empty: visitors must give the code."),
    "max_reply_tokens": IntegerField("Max tokens per reply", validators=[NumberRange(min=1, max=4000)]),
    "monthly_token_budget": IntegerField("Monthly token budget", validators=[Optional(), NumberRange(min=0)],
                                         description="Empty: no limit. When spent, the assistant stops and a "
                                                     "human takes over."),
}
EDIT_COLUMNS = ["colour", "position", "assistant_name", "greeting", "language", "strings_json",
                "consent_required", "consent_notice", "notice_version", "privacy_url",
                "ai_provider", "ai_connection", "model", "instructions", "tools", "questions",
                "max_reply_tokens", "monthly_token_budget", "lead_form", "phone_region"]


class WidgetSettingsView(OneRowPerWorkspaceView):
    """List, show and edit each workspace's widget settings; preview the widget with the embed snippet."""

    datamodel = TenantInterface(WidgetSettings)
    list_title = "Widget settings"
    base_permissions = ["can_list", "can_show", "can_edit", "can_preview"]
    list_columns = ["workspace", "assistant_name", "colour", "position", "consent_required", "ai_provider", "model"]
    show_columns = ["workspace"] + [c for c in EDIT_COLUMNS if c not in ("strings_json", "tools", "questions")] + \
        ["strings", "enabled_tools", "qualification_questions"]
    edit_columns = EDIT_COLUMNS
    edit_form_extra_fields = EXTRA_FIELDS
    validators_columns = {"colour": [_checked(service.check_colour)], "privacy_url": [_checked(service.check_url)],
}
    edit_form_query_rel_fields = {"workspace": [["id", FilterInScope, lambda: None]],
                                  "ai_connection": [["enabled", FilterEqual, True]]}
    label_columns = {"colour": "Colour (#rrggbb)", "privacy_url": "Privacy policy address",
                     "ai_connection": "AI connection", "notice_version": "Notice version"}
    show_template = "widget/show.html"

    def prefill_form(self, form, pk):
        item = self.datamodel.get(pk)
        form.strings_json.data = json.dumps(item.strings or {}, indent=2, ensure_ascii=False)
        form.tools.data = list(item.enabled_tools or [])
        form.questions.data = "\n".join(item.qualification_questions or [])

    def pre_update(self, item):
        from flask import request

        form = request.form
        try:
            item.consent_notice = (item.consent_notice or "").strip()
            item.colour = service.check_colour(item.colour)
            item.privacy_url = service.check_url(item.privacy_url)
            item.strings = service.parse_strings(form.get("strings_json"))
            item.enabled_tools = [t for t in form.getlist("tools") if t in service.known_tools()]
            item.qualification_questions = service.parse_questions(form.get("questions"))
        except service.SettingsError:
            # The form's validators check the same rules; this only guards a change between the two.
            db.session.rollback()
            raise

    @expose("/preview/<int:pk>")
    @has_access
    def preview(self, pk):
        """Show the embed snippet to copy and the real widget working on this page."""
        item = self.datamodel.get(pk, self._base_filters)
        if item is None:
            abort(404)
        script = url_for("widget_loader.widget_js", _external=True)
        snippet = f'<script src="{script}" data-key="{item.workspace.public_key}" async></script>'
        return self.render_template("widget/preview.html", item=item, snippet=snippet,
                                    key=item.workspace.public_key, title=f"Widget of {item.workspace.name}")
