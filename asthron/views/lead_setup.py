"""Admin views of each workspace's lead setup: fields, pipeline stages, scoring and stage rules, and copying it.

Checks live in asthron/services/lead_setup.py; here each problem is shown beside its form field
(a 400), and scores are recomputed by the lead service's hook when the rules change.
"""
from flask import abort, flash, redirect, request, url_for
from flask_appbuilder import expose, has_access
from flask_appbuilder.fieldwidgets import BS3TextAreaFieldWidget, Select2Widget
from flask_appbuilder.forms import DynamicForm
from flask_appbuilder.views import SimpleFormView
from sqlalchemy import select
from wtforms import BooleanField, SelectField, TextAreaField
from wtforms.validators import DataRequired, InputRequired, Length, NumberRange, ValidationError

from asthron.extensions import db
from asthron.models.leads import FieldKind, LeadField, PipelineStage, RuleOperator, ScoringRule, StageRule
from asthron.models.tenancy import Role, Workspace
from asthron.services import lead_pipeline, lead_setup, leads
from asthron.tenancy import current_scope
from asthron.views.base import FilterInScope, RejectedFormIs400, TenantInterface, TenantModelView

IN_SCOPE = [["id", FilterInScope, lambda: None]]
ADMIN_ROLES = (Role.agency_admin.value, Role.workspace_admin.value)
KIND_CHOICES = [(k.value, k.value.replace("multiselect", "multi-select")) for k in FieldKind]
OPERATOR_CHOICES = [(RuleOperator.equals.value, "equals"), (RuleOperator.contains.value, "contains"),
                    (RuleOperator.greater_than.value, "greater than"), (RuleOperator.less_than.value, "less than"),
                    (RuleOperator.is_set.value, "is set")]


def _value(value):
    return getattr(value, "value", value)


def _operator_label(value):
    return dict(OPERATOR_CHOICES).get(_value(value), _value(value))


def _subject(form, model):
    """Return (workspace id, row id) a form is about: the picked workspace on add, the edited row's on edit."""
    picked = getattr(form, "workspace", None)
    if picked is not None:
        return (picked.data.id if picked.data is not None else None), None
    pk = (request.view_args or {}).get("pk")
    row = db.session.get(model, int(pk)) if pk is not None and str(pk).isdigit() else None
    return (row.workspace_id, row.id) if row is not None else (None, None)


def _problems(check, name=None):
    """Return a validator that shows on its field what `check(form) -> {name: message}` says about it."""
    def validator(form, field):
        message = check(form).get(name or field.name)
        if message:
            raise ValidationError(message)
    return validator


def _configurable_workspaces():
    scope = current_scope()
    return [ws for ws, role in scope.workspace_roles.items() if role in ADMIN_ROLES and scope.can_read_data(ws)]


def _take_workspace(item):
    # The form sets the relationship; the tenant guard checks workspace_id before the flush fills it.
    if item.workspace is not None:
        item.workspace_id = item.workspace.id


class _SetupView(TenantModelView):
    base_order = ("position", "asc")
    formatters_columns = {"kind": _value, "operator": _operator_label}
    add_form_query_rel_fields = {"workspace": IN_SCOPE, "stage": IN_SCOPE}
    edit_form_query_rel_fields = {"stage": IN_SCOPE}


# --- Fields --------------------------------------------------------------------------------------------------

def _field_problems(form):
    workspace_id, field_id = _subject(form, LeadField)
    if workspace_id is None:
        return {}
    key = form.key.data if hasattr(form, "key") else db.session.get(LeadField, field_id).key
    kind = form.kind.data if hasattr(form, "kind") else _value(db.session.get(LeadField, field_id).kind)
    errors = lead_setup.check_field(workspace_id, key=key, kind=kind, field_id=field_id,
                                    options=lead_setup.parse_options(form.options_text.data))
    if "options" in errors:
        errors["options_text"] = errors.pop("options")
    return errors


class LeadFieldView(_SetupView):
    """The fields of each workspace's lead form; a field with a question is also asked by the assistant."""

    datamodel = TenantInterface(LeadField)
    list_title = "Lead fields"
    list_columns = ["label", "key", "kind", "required", "question", "position", "workspace"]
    show_columns = ["label", "key", "kind", "required", "help_text", "options", "question", "position", "workspace"]
    add_columns = ["workspace", "key", "label", "kind", "required", "help_text", "options_text", "question",
                   "position"]
    edit_columns = ["label", "required", "help_text", "options_text", "question", "position"]
    search_columns = ["label", "key", "workspace"]
    add_form_extra_fields = {
        "kind": SelectField("Kind", choices=KIND_CHOICES, default="text", widget=Select2Widget(),
                            validators=[_problems(_field_problems)]),
        "options_text": TextAreaField("Choices", widget=BS3TextAreaFieldWidget(),
                                      validators=[_problems(_field_problems)],
                                      description="For select and multi-select: one choice per line."),
        # Explicit, or FAB would make the non-null column's checkbox required (ticked).
        "required": BooleanField("Required", description="Visitors must fill it in before the form is sent."),
    }
    edit_form_extra_fields = dict(add_form_extra_fields)
    del edit_form_extra_fields["kind"]
    validators_columns = {"workspace": [DataRequired()], "key": [DataRequired(), _problems(_field_problems)],
                          "label": [DataRequired(), Length(max=120)], "help_text": [Length(max=300)],
                          "question": [Length(max=300)], "position": [NumberRange(min=0, max=10000)]}
    description_columns = {
        "key": "How values are stored and named in rules, exports and the API: a lower-case letter, then "
               "letters, digits or _. It cannot change later.",
        "question": "How the widget and the assistant ask for it, e.g. \"What is your budget?\". Empty: the "
                    "field is only on the form.",
        "position": "Order on the form (lowest first).",
    }

    @expose("/list/")
    @has_access
    def list(self):
        workspaces = _configurable_workspaces()
        for workspace_id in workspaces:
            leads.ensure_default_fields(workspace_id)  # so admins see, and can word, name, email and phone
        if workspaces:
            db.session.commit()
        return super().list()

    def prefill_form(self, form, pk):
        form.options_text.data = "\n".join(self.datamodel.get(pk).options or [])

    def pre_add(self, item):
        _take_workspace(item)
        item.key, item.kind = item.key.strip(), FieldKind(item.kind)
        self.pre_update(item)

    def pre_update(self, item):
        choices = lead_setup.parse_options(request.form.get("options_text"))
        item.options = choices if FieldKind(item.kind) in lead_setup.CHOICE_KINDS else []

    def pre_delete(self, item):
        lead_setup.check_field_delete(item)


# --- Stages --------------------------------------------------------------------------------------------------

def _stage_problems(form):
    workspace_id, stage_id = _subject(form, PipelineStage)
    if workspace_id is None:
        return {}
    return lead_setup.check_stage(workspace_id, name=form.name.data, qualified=form.qualified.data, stage_id=stage_id)


class PipelineStageView(_SetupView):
    """The ordered, renameable stages of each workspace's lead pipeline."""

    datamodel = TenantInterface(PipelineStage)
    list_title = "Pipeline stages"
    list_columns = ["name", "position", "qualified", "workspace"]
    show_columns = list_columns
    add_columns = ["workspace", "name", "position", "qualified"]
    edit_columns = ["name", "position", "qualified"]
    search_columns = ["name", "workspace"]
    validators_columns = {"workspace": [DataRequired()],
                          "name": [DataRequired(), Length(max=80), _problems(_stage_problems)],
                          "position": [InputRequired(), NumberRange(min=0, max=10000)]}
    add_form_extra_fields = edit_form_extra_fields = {
        "qualified": BooleanField("Qualified", validators=[_problems(_stage_problems)],
                                  description="Entering this stage counts as qualified (one stage per workspace)."),
    }
    description_columns = {"position": "Order on the board (lowest first). Stage rules only move leads to later "
                                       "stages."}

    @expose("/list/")
    @has_access
    def list(self):
        workspaces = _configurable_workspaces()
        for workspace_id in workspaces:
            lead_pipeline.ensure_default_stages(workspace_id)
        if workspaces:
            db.session.commit()
        return super().list()

    def pre_add(self, item):
        _take_workspace(item)
        item.name = item.name.strip()

    def pre_update(self, item):
        item.name = item.name.strip()

    def pre_delete(self, item):
        lead_setup.check_stage_delete(item)


# --- Rules ---------------------------------------------------------------------------------------------------

def _rule_problems(model):
    def check(form):
        workspace_id, _rule_id = _subject(form, model)
        if workspace_id is None:
            return {}
        errors = lead_setup.check_rule(workspace_id, field_key=(form.field_key.data or "").strip(),
                                       operator=form.operator.data, value=form.value.data,
                                       for_stage=model is StageRule)
        stage = getattr(form, "stage", None)
        if stage is not None and stage.data is not None and stage.data.workspace_id != workspace_id:
            errors["stage"] = "Choose a stage of the same workspace."
        return errors
    return check


RULE_DESCRIPTIONS = {"field_key": "The key of a lead field (see Lead fields), e.g. budget.",
                     "value": "What to compare with; numbers for greater/less than (dates as YYYY-MM-DD). "
                              "Not needed for \"is set\"."}


def _rule_form(model, extra_columns):
    check = _rule_problems(model)
    validators = {"workspace": [DataRequired()], "field_key": [DataRequired(), Length(max=64), _problems(check)],
                  "value": [Length(max=200), _problems(check)], "position": [NumberRange(min=0, max=10000)]}
    validators.update(extra_columns)
    fields = {"operator": SelectField("Condition", choices=OPERATOR_CHOICES, widget=Select2Widget(),
                                      validators=[_problems(check)])}
    return validators, fields


def _take_rule(item):
    item.field_key = item.field_key.strip()
    item.operator = RuleOperator(item.operator)
    item.value = (item.value or "").strip() or None


class _RuleView(_SetupView):
    """A rule's condition on a lead field: the operator is prefilled and the condition checked on save."""

    label_columns = {"field_key": "Field", "operator": "Condition"}

    def prefill_form(self, form, pk):
        form.operator.data = _value(self.datamodel.get(pk).operator)

    def pre_add(self, item):
        _take_workspace(item)
        _take_rule(item)

    def pre_update(self, item):
        _take_rule(item)


class ScoringRuleView(_RuleView):
    """Conditions on lead fields that add (or take away) points; every lead's score follows them."""

    datamodel = TenantInterface(ScoringRule)
    list_title = "Scoring rules"
    list_columns = ["field_key", "operator", "value", "points", "workspace"]
    show_columns = list_columns + ["position"]
    add_columns = ["workspace", "field_key", "operator", "value", "points", "position"]
    edit_columns = add_columns[1:]
    search_columns = ["field_key", "workspace"]
    validators_columns, add_form_extra_fields = _rule_form(ScoringRule, {"points": [
        InputRequired(), NumberRange(min=-1000, max=1000)]})
    edit_form_extra_fields = add_form_extra_fields
    description_columns = {**RULE_DESCRIPTIONS, "points": "Added to the score when the condition holds; "
                                                          "negative to take points away."}


class StageRuleView(_RuleView):
    """Rules that move a lead forward to a stage when a condition holds; the field may be "score"."""

    datamodel = TenantInterface(StageRule)
    list_title = "Stage rules"
    list_columns = ["field_key", "operator", "value", "stage", "workspace"]
    show_columns = list_columns + ["position"]
    add_columns = ["workspace", "field_key", "operator", "value", "stage", "position"]
    edit_columns = add_columns[1:]
    search_columns = ["field_key", "stage", "workspace"]
    validators_columns, add_form_extra_fields = _rule_form(StageRule, {})
    validators_columns["stage"] = [DataRequired(), _problems(_rule_problems(StageRule))]
    edit_form_extra_fields = add_form_extra_fields
    description_columns = {**RULE_DESCRIPTIONS,
                           "field_key": "The key of a lead field, or score.",
                           "stage": "Where the lead goes. Rules only move leads forward, never back past where a "
                                    "person put them."}


# --- Copy a setup ---------------------------------------------------------------------------------------------

COPY_EXPLAINED = ("Replaces all lead fields, pipeline stages, scoring rules and stage rules of the target workspace "
                  "with copies of the source's. The target's leads keep their values; each keeps its stage when "
                  "the copy has a stage of the same name, else it moves to the first stage; scores are recomputed.")


def _agency_workspaces():
    """Return the workspaces of the agencies the caller administers, by name."""
    admin_agencies = current_scope().admin_agency_ids or frozenset()
    if not admin_agencies:
        return []
    return list(db.session.scalars(select(Workspace).where(Workspace.agency_id.in_(sorted(admin_agencies)))
                                   .order_by(Workspace.name)))


def _workspace_choices():
    return [(ws.id, ws.name) for ws in _agency_workspaces()]


class CopyLeadSetupForm(DynamicForm):
    source = SelectField("Copy from", coerce=int, choices=_workspace_choices, widget=Select2Widget(),
                         description="The workspace whose lead setup is copied (it does not change).")
    target = SelectField("Copy to", coerce=int, choices=_workspace_choices, widget=Select2Widget(),
                         description="The workspace whose lead setup is replaced.")
    confirm = BooleanField("Replace the target's setup", validators=[DataRequired("Tick to confirm the copy.")],
                           description=COPY_EXPLAINED)


class CopyLeadSetupView(RejectedFormIs400, SimpleFormView):
    """Copy one workspace's lead setup to another workspace of the same agency (agency admins)."""

    route_base = "/leads/setup/copy"
    form = CopyLeadSetupForm
    form_title = "Copy lead setup between workspaces"

    @expose("/form", methods=["POST"])
    @has_access
    def this_form_post(self):
        allowed = {str(ws.id) for ws in _agency_workspaces()}
        if any(request.form.get(name, "") not in allowed for name in ("source", "target")
               if request.form.get(name)):
            abort(404)  # a workspace of another agency, or none at all: nothing to say about it
        return super().this_form_post()

    def form_post(self, form):
        try:
            counts = lead_setup.copy_setup(source_id=form.source.data, target_id=form.target.data)
        except lead_setup.SetupError as exc:
            db.session.rollback()
            flash(str(exc), "danger")
            return redirect(url_for("CopyLeadSetupView.this_form_get"))
        db.session.commit()
        flash(f"Copied {counts['fields']} fields, {counts['stages']} stages, {counts['scoring_rules']} scoring rules "
              f"and {counts['stage_rules']} stage rules.", "success")
        return redirect(url_for("LeadFieldView.list"))
