"""The payment gateway contract: create a hosted checkout, verify what the gateway's webhook says."""
import re
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import ClassVar

from asthron.providers._checks import require_text


class PaymentError(Exception):
    """The gateway refused or failed a request."""


class InvalidWebhook(PaymentError):
    """A webhook's signature, timestamp or body does not verify; the endpoint answers 400."""


@dataclass(frozen=True)
class Money:
    """An amount in a currency's minor unit.

    :param amount_minor: e.g. 1999 for 19.99.
    :param currency: ISO 4217 code in capitals, e.g. "EUR".
    """

    amount_minor: int
    currency: str

    def __post_init__(self):
        if not isinstance(self.amount_minor, int) or self.amount_minor < 0:
            raise ValueError("Money.amount_minor must be a non-negative integer")
        if not isinstance(self.currency, str) or not re.fullmatch(r"[A-Z]{3}", self.currency):
            raise ValueError("Money.currency must be a three-letter ISO 4217 code in capitals")


@dataclass(frozen=True)
class CheckoutRequest:
    """What to charge and where to send the payer afterwards.

    :param reference: the core's id for the payment, returned in the webhook event.
    :param amount: how much.
    :param description: shown to the payer.
    :param success_url: where the payer goes after paying.
    :param cancel_url: where the payer goes after cancelling.
    :param customer_email: pre-fills the gateway's form, if known.
    """

    reference: str
    amount: Money
    description: str
    success_url: str
    cancel_url: str
    customer_email: str | None = None

    def __post_init__(self):
        require_text("CheckoutRequest", reference=self.reference, description=self.description,
                     success_url=self.success_url, cancel_url=self.cancel_url)


@dataclass(frozen=True)
class Checkout:
    """A checkout the gateway created.

    :param id: the gateway's id for it.
    :param url: the page to send the payer to.
    :param expires_at: when the page stops working, if the gateway says.
    """

    id: str
    url: str
    expires_at: datetime | None = None


@dataclass(frozen=True)
class WebhookEvent:
    """A verified notification from the gateway.

    :param id: the gateway's event id (the core stores each id once).
    :param type: "payment.succeeded", "payment.failed", "payment.refunded" or the gateway's own type.
    :param reference: the CheckoutRequest.reference it concerns, if any.
    :param amount: the amount it concerns, if any.
    :param data: the gateway's payload, for the delivery log.
    """

    id: str
    type: str
    reference: str | None = None
    amount: Money | None = None
    data: Mapping = field(default_factory=dict)


class PaymentGateway(ABC):
    """A payment service (Stripe, manual bank transfer).

    Subclasses set `name` (unique among installed gateways). `settings` is the workspace's
    configuration for this gateway, with `$env` references already resolved.
    """

    name: ClassVar[str]
    label: ClassVar[str] = ""

    @abstractmethod
    def create_checkout(self, *, settings: Mapping, request: CheckoutRequest) -> Checkout:
        """Create a hosted checkout for `request`.

        :param settings: the workspace's settings for this gateway.
        :param request: what to charge.
        """

    @abstractmethod
    def verify_webhook(self, *, settings: Mapping, headers: Mapping, body: bytes) -> WebhookEvent:
        """Check a webhook's signature over the raw body and return its event; raise InvalidWebhook if it fails.

        :param settings: the workspace's settings for this gateway (holding the signing secret).
        :param headers: the request headers.
        :param body: the raw request body, exactly as received.
        """
