"""Email notifications: queue a templated email in the caller's transaction; a job renders and sends it.

`send_email` writes a `Notification` row and an outbox entry for `notifications.deliver` in the
caller's transaction, so an email is sent only if the change that caused it commits, and is never
lost: a transport outage makes the job retry with back-off (docs/notifications.md). The email is
rendered when it is sent, from the template named at queue time and its small JSON `context` (ids
and short strings), so personal data is read fresh and nothing large sits in the row; attachments a
template produces are rendered then too, and those a caller passes explicitly are kept in
`notification_attachment` until the notification is sent.
"""
import json
import re
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from sqlalchemy import or_, select

from asthron import jobs
from asthron.extensions import db
from asthron.models.notifications import (
    Notification, NotificationAttachment, NotificationPreference, NotificationStatus,
)
from asthron.providers.email import Attachment, MAX_ATTACHMENT_BYTES
from asthron.tenancy import unrestricted

EMAIL = re.compile(r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
                   r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$")
MAX_CONTEXT_BYTES = 4000
MAX_CONTEXT_STRING = 500
DELIVER_JOB = "notifications.deliver"


class NotificationError(ValueError):
    """A notification cannot be queued as asked (unknown template, bad address, oversized context)."""


class TemplateError(Exception):
    """A template cannot render this notification, and never will (the lead it names is gone).

    Its message is stored as the notification's last error: keep it free of personal data.
    """


@dataclass(frozen=True)
class RenderedEmail:
    """What a template renders: the subject, the text body, an HTML alternative and attachments."""

    subject: str
    text: str
    html: str | None = None
    attachments: tuple = ()


@dataclass(frozen=True)
class EmailTemplate:
    """A registered template: its name, a label people choose it by, who receives it, and its renderer."""

    name: str
    label: str
    render: Callable[[Mapping], RenderedEmail]
    audience: str | None = None  # "staff", "visitor", or None (either)


_templates: dict[str, EmailTemplate] = {}


def register_template(name, *, label, render, audience=None):
    """Register an email template: `render(context) -> RenderedEmail`, called when the email is sent.

    `context` is the dict given to `send_email`/`notify_staff` plus `workspace_id` and
    `notification_id`. `audience="staff"` (or None) offers the template on the preferences page.
    """
    if not re.fullmatch(r"[a-z][a-z0-9_]{0,63}", name or ""):
        raise ValueError("a template name is 1-64 lower-case letters, digits and underscores")
    if audience not in (None, "staff", "visitor"):
        raise ValueError("audience is 'staff', 'visitor' or None")
    _templates[name] = EmailTemplate(name, label, render, audience)


def templates(*, audience=None):
    """Return the registered templates, by name; with `audience`, those for it (or for anyone)."""
    _load_builtin_templates()
    found = [t for t in _templates.values() if audience is None or t.audience in (None, audience)]
    return sorted(found, key=lambda t: t.name)


def get_template(name):
    """Return the template called `name`; raise NotificationError when none is registered."""
    _load_builtin_templates()
    try:
        return _templates[name]
    except KeyError:
        raise NotificationError(f"no email template named {name!r} is registered") from None


def _load_builtin_templates():
    # Imported on first use: the built-in templates import this module to register themselves.
    from asthron.services import email_templates  # noqa: F401


def send_email(*, workspace_id, to, template, context, attachments=(), user_id=None):
    """Queue one email to `to`, rendered by `template` from `context`, in the caller's transaction."""
    get_template(template)
    recipient = check_address(to)
    context = _check_context(context)
    files = _check_attachments(attachments)
    notification = Notification(workspace_id=workspace_id, recipient=recipient, user_id=user_id, template=template,
                                context=context, status=NotificationStatus.queued, attempts=0,
                                message_id=_new_message_id(workspace_id))
    db.session.add(notification)
    db.session.flush()
    for item in files:
        db.session.add(NotificationAttachment(workspace_id=workspace_id, notification_id=notification.id,
                                              filename=item.filename, content_type=item.content_type,
                                              data=item.data))
    jobs.add(db.session, DELIVER_JOB, notification_id=notification.id)
    return notification


def notify_staff(*, workspace_id, template, context):
    """Queue `template` to each of the workspace's staff and admins (and its agency's admins) who want it."""
    get_template(template)
    return [send_email(workspace_id=workspace_id, to=email, template=template, context=context, user_id=user_id)
            for user_id, email in staff_recipients(workspace_id, template)]


def staff_recipients(workspace_id, template):
    """Return (user id, email) of the active staff, workspace admins and agency admins who want `template`."""
    from flask_appbuilder.security.sqla.models import User

    from asthron.models.tenancy import Membership, Role, Workspace

    with unrestricted():  # system work: whoever asked, the workspace's team is told
        agency_id = db.session.execute(select(Workspace.agency_id).where(Workspace.id == workspace_id)).scalar()
        members = or_((Membership.workspace_id == workspace_id)
                      & Membership.role.in_([Role.staff, Role.workspace_admin]),
                      (Membership.agency_id == agency_id) & (Membership.role == Role.agency_admin))
        rows = db.session.execute(select(User.id, User.email).join(Membership, Membership.user_id == User.id)
                                  .where(members, User.active.is_(True)).order_by(User.id)).all()
        declined = set(db.session.scalars(select(NotificationPreference.user_id).where(
            NotificationPreference.template == template, NotificationPreference.enabled.is_(False))))
    seen, found = set(), []
    for user_id, email in rows:
        if user_id in seen or user_id in declined or not email or not EMAIL.match(email):
            continue
        seen.add(user_id)
        found.append((user_id, email))
    return found


def wants(user_id, template):
    """Say whether a person receives `template` (yes unless they turned it off)."""
    with unrestricted():
        row = db.session.execute(select(NotificationPreference.enabled).where(
            NotificationPreference.user_id == user_id, NotificationPreference.template == template)).scalar()
    return row is not False


def set_preferences(user_id, choices):
    """Store a person's choices, {template name: bool}, for the staff templates."""
    known = {t.name for t in templates(audience="staff")}
    unknown = sorted(set(choices) - known)
    if unknown:
        raise NotificationError(f"unknown notification {unknown[0]!r}")
    rows = {p.template: p for p in db.session.scalars(
        select(NotificationPreference).where(NotificationPreference.user_id == user_id))}
    for name, enabled in choices.items():
        row = rows.get(name)
        if row is None:
            db.session.add(NotificationPreference(user_id=user_id, template=name, enabled=bool(enabled)))
        elif row.enabled != bool(enabled):
            row.enabled = bool(enabled)


def retry(notification):
    """Queue a failed notification again, with a fresh allowance of attempts."""
    if notification.status != NotificationStatus.failed:
        raise NotificationError("only a failed notification can be retried")
    notification.status = NotificationStatus.queued
    jobs.add(db.session, DELIVER_JOB, notification_id=notification.id)


def check_address(value):
    """Return `value` as one email address, or raise NotificationError."""
    value = value.strip() if isinstance(value, str) else ""
    if len(value) > 254 or not EMAIL.match(value):
        raise NotificationError("the recipient is not an email address")
    return value


def _check_context(context):
    if not isinstance(context, Mapping):
        raise NotificationError("an email's context is a dict of ids and short strings")
    for key, value in context.items():
        if not isinstance(key, str) or not (value is None or isinstance(value, (int, float, bool, str))):
            raise NotificationError(f"context value {key!r} is not an id or a short string; pass ids")
        if isinstance(value, str) and len(value) > MAX_CONTEXT_STRING:
            raise NotificationError(f"context value {key!r} is longer than {MAX_CONTEXT_STRING} characters")
    data = dict(context)
    if len(json.dumps(data)) > MAX_CONTEXT_BYTES:
        raise NotificationError("an email's context is limited to ids and short strings")
    return data


def _check_attachments(attachments):
    files = tuple(attachments or ())
    if not all(isinstance(a, Attachment) for a in files):
        raise NotificationError("attachments must be asthron.providers.email.Attachment instances")
    if sum(len(a.data) for a in files) > MAX_ATTACHMENT_BYTES:
        raise NotificationError("attachments are limited to 10 MB in all")
    return files


def _new_message_id(workspace_id):
    # Generated once per notification, so every attempt carries the same Message-ID header and a
    # receiving server (or person) can recognise a send that was retried after a lost reply.
    from asthron.services.email_settings import sender_address

    domain = sender_address(workspace_id).rpartition("@")[2]
    return f"<asthron.{secrets.token_hex(12)}@{domain}>"
