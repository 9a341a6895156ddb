"""Built-in plugins: features of the core written as ordinary plugins (the shape of simonw/llm).

Each module listed in PLUGINS is imported and registered under its module name before any
installed or folder plugin, whatever ASTHRON_PLUGINS says, because the product needs them to
work with no configuration (the offline AI responder, the outbox email transport, the internal
calendar, manual payments). A built-in uses only `asthron.hookspecs.hookimpl` and the contracts in
`asthron.providers`, exactly like an outside plugin, so any of them can be replaced by one.

To add one: write `asthron/default_plugins/<name>.py` with `@hookimpl` functions and add
"asthron.default_plugins.<name>" below.
"""

PLUGINS: tuple[str, ...] = (
    "asthron.default_plugins.offline_ai",
    "asthron.default_plugins.outbox_email",
    "asthron.default_plugins.internal_calendar",
)
