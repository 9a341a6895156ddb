"""The email transport contract: send one message, say what happened."""
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import ClassVar

from asthron.providers._checks import require_text


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
    """

    to: tuple[str, ...]
    subject: str
    text: str
    html: str | None = None
    from_addr: str | None = None
    reply_to: str | None = None
    headers: Mapping = field(default_factory=dict)

    def __post_init__(self):
        if isinstance(self.to, str):
            object.__setattr__(self, "to", (self.to,))
        object.__setattr__(self, "to", tuple(self.to))
        if not self.to or not all(isinstance(a, str) and "@" in a for a in self.to):
            raise ValueError("EmailMessage.to must list at least one email address")
        require_text("EmailMessage", subject=self.subject)
        if any(ch in self.subject for ch in "\r\n"):
            raise ValueError("EmailMessage.subject must be one line")


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
