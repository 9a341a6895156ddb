"""What a plugin declares about an outside service it sends personal data to."""
from dataclasses import dataclass

from asthron.providers._checks import require_text


@dataclass(frozen=True)
class Subprocessor:
    """An outside service that processes personal data on the platform's behalf.

    :param name: the company or service, e.g. "OpenAI, L.L.C.".
    :param purpose: what it does for the platform, e.g. "Generates chat replies".
    :param data_categories: kinds of personal data it receives, e.g. ("chat messages", "lead contact details").
    :param location: where it processes the data, e.g. "United States".
    :param dpa_url: an http(s) link to its data processing agreement.
    """

    name: str
    purpose: str
    data_categories: tuple[str, ...]
    location: str
    dpa_url: str

    def __post_init__(self):
        require_text("Subprocessor", name=self.name, purpose=self.purpose, location=self.location,
                     dpa_url=self.dpa_url)
        if isinstance(self.data_categories, str):
            raise TypeError("Subprocessor.data_categories must be a list of strings, not one string")
        categories = tuple(self.data_categories)
        if not categories or not all(isinstance(c, str) and c.strip() for c in categories):
            raise ValueError("Subprocessor.data_categories must name at least one category")
        object.__setattr__(self, "data_categories", categories)
        if not self.dpa_url.startswith(("https://", "http://")):
            raise ValueError("Subprocessor.dpa_url must be an http(s) link")
