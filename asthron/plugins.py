"""The plugin manager (filled in by the plugin host)."""


def init_app(app):
    """Load plugins."""


def register_commands(cli):
    """Let plugins add commands."""
