"""Hook specifications: what a plugin may implement. No logic here; docs/plugins.md documents each hook.

Hooks are always called with keyword arguments, so a spec grows by adding arguments, never by
renaming them, and an implementation may accept any subset of its spec's arguments.
"""
from pluggy import HookimplMarker, HookspecMarker

hookspec = HookspecMarker("asthron")
hookimpl = HookimplMarker("asthron")


@hookspec
def register_ai_providers(register):
    """Register AI providers that write the replies to visitors.

    :param register: call ``register(provider)`` once per :class:`asthron.providers.ai.AIProvider` instance.
    """


@hookspec
def register_calendar_backends(register):
    """Register external calendars that bookings read busy times from and write events to.

    :param register: call ``register(backend)`` once per :class:`asthron.providers.calendar.CalendarBackend` instance.
    """


@hookspec
def register_payment_gateways(register):
    """Register payment gateways that take deposits and payments for bookings.

    :param register: call ``register(gateway)`` once per :class:`asthron.providers.payments.PaymentGateway` instance.
    """


@hookspec
def register_email_transports(register):
    """Register transports that deliver notification email.

    :param register: call ``register(transport)`` once per :class:`asthron.providers.email.EmailTransport` instance.
    """


@hookspec
def register_subprocessors(register):
    """Declare the outside services this plugin sends personal data to; they appear on the public page.

    :param register: call ``register(subprocessor)`` once per :class:`asthron.providers.subprocessors.Subprocessor`.
    """


@hookspec
def startup(app):
    """Run once per application after it is fully built (extensions, admin views, blueprints, CLI).

    :param app: the :class:`flask.Flask` application.
    """


@hookspec
def register_commands(cli):
    """Add commands to ``flask asthron``.

    :param cli: the ``asthron`` :class:`click.Group`; decorate functions with ``@cli.command()``.
    """


@hookspec
def register_admin_views(appbuilder):
    """Add views to the admin panel.

    :param appbuilder: the application's Flask-AppBuilder builder; call ``appbuilder.add_view(...)``.
    """


@hookspec
def register_blueprints(app):
    """Register Flask blueprints, such as inbound webhooks under ``/hooks/<plugin>/``.

    :param app: the :class:`flask.Flask` application; call ``app.register_blueprint(...)``.
    """


@hookspec
def export_data_subject(workspace, subject):
    """Return what this plugin stores about a data subject, for an access request (a JSON-serialisable dict, or None).

    :param workspace: the :class:`asthron.providers.privacy.WorkspaceRef` the request is made in.
    :param subject: the :class:`asthron.providers.privacy.DataSubject` whose data is asked for.
    """


@hookspec
def erase_data_subject(workspace, subject):
    """Erase what this plugin stores about a data subject; return a dict of record kind to count erased, or None.

    :param workspace: the :class:`asthron.providers.privacy.WorkspaceRef` the request is made in.
    :param subject: the :class:`asthron.providers.privacy.DataSubject` to erase.
    """


@hookspec
def track_event(event):
    """React to a domain event (message received, lead created, booking created, handoff, payment).

    :param event: an :class:`asthron.providers.events.Event` subclass instance; it carries ids, not personal data.
    """
