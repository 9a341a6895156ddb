"""The application factory: a thin `create_app` and one initializer step per concern."""
import logging
import os
import secrets

from flask import Flask

log = logging.getLogger(__name__)

WELL_KNOWN_KEYS = {
    "", "secret", "changeme", "change-me", "dev", "development", "test", "secret-key",
    "your-secret-key", "thisisasecretkey", "\2\1thisismyscretkey\1\2\\e\\y\\y\\h",
}
MIN_SECRET_LENGTH = 32


class ConfigError(RuntimeError):
    """The configuration is unsafe or incomplete; the message says what to change."""


def create_app(test_config=None):
    """Create and configure an Asthron application."""
    app = Flask(__name__, instance_path=_instance_dir())
    app.config.from_object("config")
    if test_config:
        app.config.update(test_config)
    os.makedirs(app.instance_path, exist_ok=True)
    _check_secret_key(app)
    Initializer(app).init_all()
    return app


def _instance_dir():
    import config

    return config.INSTANCE_DIR


def _check_secret_key(app):
    """Refuse a weak secret in production; in development keep a generated one under instance/."""
    key = app.config.get("SECRET_KEY") or ""
    if app.config.get("ASTHRON_ENV") == "production":
        if not key:
            raise ConfigError("SECRET_KEY is not set: production needs a random secret of at least 32 characters.")
        if len(key) < MIN_SECRET_LENGTH:
            raise ConfigError(f"SECRET_KEY is {len(key)} characters long: "
                              f"production needs at least {MIN_SECRET_LENGTH}.")
        if key.lower() in WELL_KNOWN_KEYS or len(set(key)) < 8:
            raise ConfigError("SECRET_KEY is a well-known or trivial value: generate one with "
                              "`python -c 'import secrets; print(secrets.token_urlsafe(48))'`.")
        return
    if not key:
        path = os.path.join(app.instance_path, "secret_key")
        if not os.path.exists(path):
            os.makedirs(app.instance_path, exist_ok=True)
            with open(path, "w") as fh:
                fh.write(secrets.token_urlsafe(48))
            os.chmod(path, 0o600)
        with open(path) as fh:
            app.config["SECRET_KEY"] = fh.read().strip()


class Initializer:
    """Bind extensions and register each concern, in order, on one app."""

    def __init__(self, app):
        self.app = app

    def init_all(self):
        """Run every initializer step."""
        self.init_logging()
        self.init_extensions()
        with self.app.app_context():
            self.init_plugins()
            self.init_models()
            self.init_appbuilder()
            self.init_views()
        self.init_web()
        self.init_security()
        self.init_jobs()
        self.init_cli()
        self.init_startup()

    def init_logging(self):
        from asthron.logging_setup import init_app

        init_app(self.app)

    def init_extensions(self):
        from asthron.extensions import csrf, db, limiter, migrate

        db.init_app(self.app)
        migrate.init_app(self.app, db, directory=os.path.join(os.path.dirname(os.path.dirname(__file__)), "migrations"))
        csrf.init_app(self.app)
        limiter.init_app(self.app)

    def init_plugins(self):
        from asthron import plugins

        plugins.init_app(self.app)

    def init_models(self):
        from asthron import audit, models, tenancy  # noqa: F401  (models register their tables)
        from asthron.services import slot_cache  # noqa: F401  (its session hooks change revisions on commit)

        tenancy.init_app(self.app)
        audit.init_app(self.app)

    def init_appbuilder(self):
        from flask_appbuilder import AppBuilder

        from asthron.extensions import appbuilder, db

        # The singleton serves the first app; any further app in the process (tests) gets its own
        # builder, so code reaches the builder through `current_app.appbuilder`, never the singleton.
        builder = appbuilder if appbuilder.sm is None else AppBuilder(update_perms=False)
        builder.init_app(self.app, db.session)

    def init_views(self):
        from asthron import views

        views.init_app(self.app)

    def init_web(self):
        from asthron import web

        web.init_app(self.app)

    def init_security(self):
        from asthron import security

        security.init_app(self.app)

    def init_jobs(self):
        from asthron import jobs

        jobs.init_app(self.app)

    def init_cli(self):
        from asthron import cli

        cli.init_app(self.app)

    def init_startup(self):
        from asthron import plugins

        # Last, so a plugin's `startup` sees the finished app: builder, views, blueprints, commands.
        with self.app.app_context():
            plugins.startup(self.app)
