"""The email transport contract: send one message, say what happened."""
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import ClassVar

from asthron.providers._checks import require_text

MAX_ATTACHMENT_BYTES = 10 * 1024 * 1024


@dataclass(frozen=True)
class Attachment:
    """A file attached to a message.

    :param filename: the name the recipient sees (no path, no line breaks).
    :param content_type: a MIME type such as "application/pdf", parameters allowed
        ("text/calendar; method=REQUEST").
    :param data: the file's bytes (at most 10 MB).
    """

    filename: str
    content_type: str
    data: bytes

    def __post_init__(self):
        require_text("Attachment", filename=self.filename, content_type=self.content_type)
        if any(ch in self.filename for ch in "\r\n/\\\0"):
            raise ValueError("Attachment.filename must be a plain file name")
        main, _, sub = self.content_type.split(";")[0].strip().partition("/")
        if not main or not sub or any(ch in self.content_type for ch in "\r\n"):
            raise ValueError("Attachment.content_type must be a MIME type like text/plain or "
                             "text/calendar; method=REQUEST")
        if not isinstance(self.data, bytes):
            raise ValueError("Attachment.data must be bytes")
        if len(self.data) > MAX_ATTACHMENT_BYTES:
            raise ValueError("Attachment.data is larger than 10 MB")


@dataclass(frozen=True)
class EmailMessage:
    """A message to send.

    :param to: recipient addresses.
    :param subject: the subject line.
    :param text: the plain-text body (always present).
    :param html: an HTML alternative, if any.
    :param from_addr: the sender; the transport's default when None.
    :param reply_to: a reply-to address, if any.
    :param headers: extra headers, e.g. {"Message-ID": ...} for idempotent sends.
    :param attachments: files to attach (`Attachment` instances).
    :param metadata: facts for the transport's own records, never sent as headers
        (the core passes {"workspace_id": ..., "notification_id": ...}); HTTP API transports may
        pass them on as the vendor's message metadata.
    """

    to: tuple[str, ...]
    subject: str
    text: str
    html: str | None = None
    from_addr: str | None = None
    reply_to: str | None = None
    headers: Mapping = field(default_factory=dict)
    attachments: tuple = ()
    metadata: Mapping = field(default_factory=dict)

    def __post_init__(self):
        if isinstance(self.to, str):
            object.__setattr__(self, "to", (self.to,))
        object.__setattr__(self, "to", tuple(self.to))
        if not self.to or not all(isinstance(a, str) and "@" in a for a in self.to):
            raise ValueError("EmailMessage.to must list at least one email address")
        require_text("EmailMessage", subject=self.subject)
        if any(ch in self.subject for ch in "\r\n"):
            raise ValueError("EmailMessage.subject must be one line")
        object.__setattr__(self, "attachments", tuple(self.attachments))
        if not all(isinstance(a, Attachment) for a in self.attachments):
            raise ValueError("EmailMessage.attachments must be Attachment instances")


@dataclass(frozen=True)
class SendResult:
    """What happened to a message.

    :param accepted: True when the transport took responsibility for delivery.
    :param message_id: the transport's id for the message, if any.
    :param error: why it was not accepted (no secrets, no message body).
    :param permanent: True when retrying cannot help (bad address, rejected content).
    """

    accepted: bool
    message_id: str | None = None
    error: str | None = None
    permanent: bool = False


class EmailTransport(ABC):
    """A way to deliver email (SMTP, an HTTP API, the outbox used in development).

    Subclasses set `name` (unique among installed transports). Return a SendResult rather than
    raising for delivery failures, so the caller can decide whether to retry.
    """

    name: ClassVar[str]
    label: ClassVar[str] = ""

    @abstractmethod
    def send(self, *, settings: Mapping, message: EmailMessage) -> SendResult:
        """Send `message`.

        :param settings: the transport's settings, `$env` references already resolved.
        :param message: the message.
        """

    def check_settings(self, settings: Mapping) -> None:
        """Raise ValueError, with a message for the admin, when `settings` cannot work (checked before saving).

        :param settings: the settings as stored, `$env` references not resolved.
        """
