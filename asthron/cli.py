"""`flask --app wsgi asthron ...`: set-up, demo data, roles, workers, plugins and audit checks."""
import json
import sys

import click
from flask import current_app
from flask.cli import AppGroup, with_appcontext

from asthron.jobs.worker import worker_command

asthron = AppGroup("asthron", help="Asthron administration commands.")
DEMO_BASE_URL = "http://127.0.0.1:5000"  # where `make run` serves the demo


@asthron.command("init")
@with_appcontext
def init_command():
    """Bring the schema up to date through the migrations and sync roles."""
    from flask_migrate import upgrade

    upgrade()
    names = current_app.appbuilder.sm.sync_roles()
    click.echo(f"schema up to date; roles synced: {', '.join(names)}")


@asthron.command("sync-roles")
@with_appcontext
def sync_roles_command():
    """Create the roles defined in code and give them their permissions."""
    names = current_app.appbuilder.sm.sync_roles()
    click.echo(f"roles synced: {', '.join(names)}")


@asthron.command("roles")
@with_appcontext
def roles_command():
    """Print the permission matrix (roles x views) as Markdown, as documented in docs/permissions.md."""
    from asthron.roles import permission_matrix_markdown, registered_views

    click.echo(permission_matrix_markdown(registered_views(current_app.appbuilder)), nl=False)


@asthron.command("demo")
@click.option("--json", "as_json", is_flag=True, help="Print the logins and keys as JSON, nothing else.")
@with_appcontext
def demo_command(as_json):
    """Seed the demo agencies, workspaces and one user per role (idempotent); print the logins."""
    from asthron.services import demo

    result = demo.seed()
    if as_json:
        sys.stdout.write(json.dumps(result) + "\n")
        return
    click.echo("Demo logins (password for all: %s)" % result["users"][0]["password"])
    for user in result["users"]:
        where = user["workspace"] or user["agency"] or "platform"
        click.echo(f"  {user['role']:<16} {user['username']:<22} {where}")
    click.echo("Workspaces and their public widget keys:")
    for ws in result["workspaces"]:
        click.echo(f"  {ws['agency']} / {ws['name']}: {ws['key']}")
    click.echo("Sample client websites with the chat widget (once the server runs):")
    for ws in result["workspaces"]:
        click.echo(f"  {ws['name']}: {DEMO_BASE_URL}{ws['site']}")


audit_group = AppGroup("audit", help="Audit log commands.")
asthron.add_command(audit_group)
asthron.add_command(worker_command)


@audit_group.command("verify")
@with_appcontext
def audit_verify_command():
    """Check the audit chain; exit 1 naming the first broken entry."""
    from asthron.audit import ChainBroken, verify
    from asthron.extensions import db

    try:
        count = verify(db.session)
    except ChainBroken as exc:
        click.echo(f"broken: {exc}", err=True)
        sys.exit(1)
    click.echo(f"ok: {count} entries")


@asthron.command("plugins")
@click.option("--json", "as_json", is_flag=True, help="Print the plugins as JSON, nothing else.")
@with_appcontext
def plugins_command(as_json):
    """List the loaded plugins: name, version, source and the hooks each implements."""
    from asthron.plugins import get_plugins

    found = get_plugins()
    if as_json:
        sys.stdout.write(json.dumps(found, indent=2) + "\n")
        return
    if not found:
        click.echo("no plugins loaded")
    for plugin in found:
        click.echo(f"{plugin['name']} {plugin['version'] or '-'} ({plugin['source']})")
        click.echo(f"  hooks: {', '.join(plugin['hooks']) or 'none'}")


@asthron.command("subprocessors")
@click.option("--json", "as_json", is_flag=True, help="Print the list as JSON, nothing else.")
@with_appcontext
def subprocessors_command(as_json):
    """Print the public sub-processor list and the date it last changed."""
    from asthron.services import subprocessors

    listing = subprocessors.publish()
    if as_json:
        sys.stdout.write(json.dumps(listing, indent=2) + "\n")
        return
    click.echo(f"Sub-processors (last changed {listing['last_changed']}):")
    for entry in listing["subprocessors"]:
        click.echo(f"  {entry['name']} [{entry['source']}]: {entry['purpose']}; {entry['location']}")
        click.echo(f"    data: {', '.join(entry['data_categories'])}; DPA: {entry['dpa_url']}")


def init_app(app):
    """Add the `asthron` group to the app's CLI and let plugins add their own commands to it."""
    from asthron import plugins

    app.cli.add_command(asthron)
    plugins.register_commands(asthron)
