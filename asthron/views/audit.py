"""The audit log viewer: tenant-scoped for customers, platform-wide for operators.

The log grows without bound, so the list never asks for more than it shows: the record count stops
at `COUNT_CAP` (the page then says "more than 1,000"), page links reach that far, and "Older
entries" continues below the last row shown by time (keyset), which the time-ordered indexes on
`AuditEntry` answer without scanning the log. Filters: actor, action, time range, workspace, target.
"""
import re
from urllib.parse import urlencode

from flask import abort, request, url_for
from flask_appbuilder import ModelView
from flask_appbuilder.models.sqla.filters import FilterSmaller
from flask_appbuilder.widgets import ListWidget
from sqlalchemy import text

from asthron.models.audit import AuditEntry
from asthron.views.base import FilterInScope, TenantInterface

COUNT_CAP = 1_000
MAX_PAGE_SIZE = 100
NEWEST_FIRST = ("created_at", "desc")


class AuditInterface(TenantInterface):
    """A TenantInterface that counts no further than `count_cap` + 1 and reads only the rows shown."""

    count_cap = COUNT_CAP

    def query(self, filters=None, order_column="", order_direction="", page=None, page_size=None,
              select_columns=None, outer_default_load=False):
        """Return the capped count and one page of entries, in the requested order."""
        self._without_parallel_workers()
        first = (page or 0) * (page_size or 0)
        ordered = self.apply_all(self.session.query(self.obj.id), filters, order_column, order_direction)
        # One ordered walk of an index yields both the capped count and this page's ids; on
        # PostgreSQL the covering time index answers it without reading the table.
        ids = [row.id for row in ordered.limit(max(self.count_cap + 1, first + (page_size or 0)))]
        shown = ids[first:first + page_size] if page_size else ids[first:]
        rows = {row.id: row for row in self.session.query(self.obj).filter(self.obj.id.in_(shown))}
        return min(len(ids), self.count_cap + 1), [rows[i] for i in shown if i in rows]

    def _without_parallel_workers(self):
        """Keep PostgreSQL to one process for the rest of this read-only transaction.

        A page reads a few thousand index entries at most; the tenant clause, applied twice (guard
        and base filter), makes the planner expect far more and start parallel workers, which cost
        more than the scan and, under load, take the CPU other requests need.
        """
        if self.session.get_bind().dialect.name == "postgresql":
            self.session.execute(text("SET LOCAL max_parallel_workers_per_gather = 0"))


class AuditListWidget(ListWidget):
    """FAB's list, saying "more than N" for a capped count and offering "Older entries"."""

    template = "audit/list.html"


class AuditLogView(ModelView):
    """List and show audit entries, newest first, filtered by actor, action, time and target."""

    datamodel = AuditInterface(AuditEntry)
    base_permissions = ["can_list", "can_show"]
    base_filters = [["id", FilterInScope, lambda: None]]
    base_order = NEWEST_FIRST
    list_title = "Audit log"
    list_widget = AuditListWidget
    list_columns = ["created_at", "seq", "actor", "action", "target_type", "target_id", "workspace_id", "ip"]
    show_columns = ["seq", "created_at", "actor", "actor_id", "action", "target_type", "target_id",
                    "agency_id", "workspace_id", "ip", "details", "prev_hash", "entry_hash"]
    # Only time has an index to sort by; any other order would read the whole log on every page.
    order_columns = ["created_at"]
    search_columns = ["actor", "action", "created_at", "workspace_id", "target_type", "target_id", "seq"]
    label_columns = {"seq": "Entry #", "created_at": "Time", "workspace_id": "Workspace",
                     "agency_id": "Agency", "actor_id": "Actor id", "ip": "IP address"}
    page_size = 50

    def _get_list_widget(self, filters, actions=None, order_column="", order_direction="", page=None,
                         page_size=None, widgets=None, **kwargs):
        cap = self.datamodel.count_cap
        page, page_size = max(page or 0, 0), max(1, min(page_size or self.page_size, MAX_PAGE_SIZE))
        if page * page_size > cap:
            abort(400, description=f"Pages stop after {cap:,} entries: use Older entries or narrow the filters.")
        widgets = super()._get_list_widget(filters, actions=actions, order_column=order_column,
                                           order_direction=order_direction, page=page, page_size=page_size,
                                           widgets=widgets, count_cap=cap, **kwargs)
        listing = widgets["list"].template_args
        listing["value_columns"] = list(listing["value_columns"])  # FAB passes a one-shot generator
        listing["older_url"] = self._older_url(listing, (order_column, order_direction))
        return widgets

    def _older_url(self, listing, order):
        """Return the link to the entries older than this page when the count was capped, else None."""
        rows = listing["value_columns"]
        if order not in (("", ""), NEWEST_FIRST) or listing["count"] <= self.datamodel.count_cap \
                or len(rows) < listing["page_size"]:
            return None
        # Entries are timestamped to the microsecond by one writer at a time, so "older than the last
        # row shown" skips nothing in practice.
        index = self._filter_index("created_at", FilterSmaller)
        before = re.compile(rf"_flt_{index}_created_at$")
        args = [(key, value) for key, value in request.args.items(multi=True)
                if not key.startswith("page_") and not before.match(key)]
        args.append((f"_flt_{index}_created_at", rows[-1]["created_at"].isoformat()))
        return url_for(f"{type(self).__name__}.list") + "?" + urlencode(args)

    def _filter_index(self, column, filter_class):
        """Return the position FAB gives `filter_class` among `column`'s filters in list URLs."""
        filters = self._filters.get_search_filters()[column]
        return next(i for i, flt in enumerate(filters) if isinstance(flt, filter_class))
