"""What the data-subject hooks (`export_data_subject`, `erase_data_subject`) receive."""
from dataclasses import dataclass


@dataclass(frozen=True)
class WorkspaceRef:
    """The workspace a data-subject request is made in; a plugin touches only this workspace's data.

    :param id: the workspace id.
    :param slug: its slug within the agency.
    :param name: its display name.
    """

    id: int
    slug: str
    name: str


@dataclass(frozen=True)
class DataSubject:
    """The person a request is about, identified by whatever the requester gave.

    :param email: their email address, if known.
    :param phone: their phone number, if known.
    :param visitor_id: the widget's visitor id, if known.
    """

    email: str | None = None
    phone: str | None = None
    visitor_id: str | None = None

    def __post_init__(self):
        if not (self.email or self.phone or self.visitor_id):
            raise ValueError("DataSubject needs an email, a phone number or a visitor id")
