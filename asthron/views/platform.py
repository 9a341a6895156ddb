"""Platform admin views for operators: the sub-processors they declare and the loaded plugins."""
from flask_appbuilder import BaseView, ModelView, expose, has_access
from flask_appbuilder.models.sqla.interface import SQLAInterface
from wtforms import BooleanField
from wtforms.validators import URL, Length, Regexp

from asthron.models.integrations import Subprocessor

SUBPROCESSOR_FIELDS = ["name", "purpose", "data_categories", "location", "dpa_url", "enabled"]


class SubprocessorView(ModelView):
    """Operator-managed entries of the public Sub-processors page (hosting, support tools, ...)."""

    datamodel = SQLAInterface(Subprocessor)
    base_permissions = ["can_list", "can_show", "can_add", "can_edit", "can_delete"]
    list_title = show_title = "Sub-processors"
    add_title, edit_title = "Add a sub-processor", "Edit sub-processor"
    list_columns = ["name", "purpose", "location", "enabled", "updated_at"]
    show_columns = SUBPROCESSOR_FIELDS + ["created_at", "updated_at"]
    add_columns = edit_columns = SUBPROCESSOR_FIELDS
    search_columns = ["name", "location", "enabled"]
    base_order = ("name", "asc")
    label_columns = {"dpa_url": "DPA link", "data_categories": "Data categories"}
    description_columns = {
        "data_categories": "The kinds of personal data it receives, separated by commas or lines.",
        "dpa_url": "An https link to its data processing agreement.",
    }
    # FAB would make a non-null boolean "required", which refuses an unticked box: no way to disable.
    add_form_extra_fields = edit_form_extra_fields = {
        "enabled": BooleanField("Enabled", default=True,
                                description="Only enabled entries are listed on /legal/sub-processors."),
    }
    validators_columns = {
        "dpa_url": [URL(require_tld=False), Regexp(r"^https?://", message="Use an http(s) link."), Length(max=500)],
        "name": [Length(max=200)],
        "purpose": [Length(max=500)],
        "location": [Length(max=200)],
    }

    # Record the new version of the public list at once, so its date is the day of the edit.
    def post_add(self, item):
        _publish()

    def post_update(self, item):
        _publish()

    def post_delete(self, item):
        _publish()


def _publish():
    from asthron.services import subprocessors

    subprocessors.publish()


class PluginsView(BaseView):
    """The plugins loaded in this process, their versions and the hooks they implement."""

    route_base = "/plugins"
    default_view = "list"

    @expose("/")
    @has_access
    def list(self):
        from asthron.plugins import get_plugins

        return self.render_template("admin/plugins.html", plugins=get_plugins(), title="Plugins")
