"""Typed registries filled by the register_* hooks: AI providers, calendars, payments, email, sub-processors.

Each registry calls its hook lazily, on first use, and again whenever the set of registered
plugins has changed since (tests register and unregister plugins while an app lives).
"""
from dataclasses import dataclass

from asthron.providers.ai import AIProvider
from asthron.providers.calendar import CalendarBackend
from asthron.providers.email import EmailTransport
from asthron.providers.payments import PaymentGateway
from asthron.providers.subprocessors import Subprocessor


class RegistryError(RuntimeError):
    """A plugin registered something that does not fit the contract, or a name twice."""


@dataclass(frozen=True)
class Registered:
    """One registration: what was registered, under which name, by which plugin."""

    name: str
    value: object
    plugin: str


class Registry:
    """The objects plugins registered through one hook, checked against one contract."""

    def __init__(self, *, hook, contract, unique=True):
        self.hook, self.contract, self.unique = hook, contract, unique
        self._cache = (None, [])

    def entries(self):
        """Return every registration, in plugin calling order."""
        from asthron.plugins import pm

        # The key holds the plugin objects themselves: with bare id()s, a plugin unregistered and collected
        # could be followed by a new one at the same address and the stale registrations would be served.
        signature = tuple(pm.list_name_plugin())
        if self._cache[0] != signature:
            self._cache = (signature, self._build())
        return list(self._cache[1])

    def all(self):
        """Return the registered objects."""
        return [entry.value for entry in self.entries()]

    def names(self):
        """Return the registered names, sorted."""
        return sorted(entry.name for entry in self.entries())

    def get(self, name):
        """Return the object registered under `name`; raise LookupError naming what is available."""
        for entry in self.entries():
            if entry.name == name:
                return entry.value
        available = ", ".join(self.names()) or "none"
        raise LookupError(f"no {self.contract.__name__} named {name!r} is installed (available: {available})")

    def _build(self):
        from asthron.plugins import implementations

        found = []
        for plugin_name, call in implementations(self.hook):
            call(register=self._collector(plugin_name, found))
        return found

    def _collector(self, plugin_name, found):
        def register(obj):
            if not isinstance(obj, self.contract):
                raise RegistryError(f"plugin {plugin_name!r} passed {type(obj).__name__} to {self.hook}; "
                                    f"it takes {self.contract.__module__}.{self.contract.__name__} instances")
            name = getattr(obj, "name", None)
            if not isinstance(name, str) or not name:
                raise RegistryError(f"plugin {plugin_name!r} registered a {self.contract.__name__} without a name")
            clash = next((e for e in found if e.name == name), None)
            if self.unique and clash is not None:
                raise RegistryError(f"{self.contract.__name__} {name!r} is registered by both plugin "
                                    f"{clash.plugin!r} and plugin {plugin_name!r}")
            found.append(Registered(name=name, value=obj, plugin=plugin_name))
        return register


ai_providers = Registry(hook="register_ai_providers", contract=AIProvider)
calendar_backends = Registry(hook="register_calendar_backends", contract=CalendarBackend)
payment_gateways = Registry(hook="register_payment_gateways", contract=PaymentGateway)
email_transports = Registry(hook="register_email_transports", contract=EmailTransport)
# Two plugins may rely on the same company (both on one cloud, say), so names may repeat here.
subprocessors = Registry(hook="register_subprocessors", contract=Subprocessor, unique=False)
