"""Commands that manage access, ``flask --app wsgi users ...`` and ``tokens ...``, and read ``activity``."""

from __future__ import annotations

import sys

import click
import marshmallow as ma
from flask import Flask
from flask.cli import AppGroup, with_appcontext

from webapp import audit
from webapp.api.activity.schemas import ActivityArgsSchema
from webapp.errors import WebappError
from webapp.pages.blueprint import timestamp
from webapp.runtime import runtime
from webapp.services.accounts import MAX_TOKEN_DAYS, Accounts
from webapp.services.roles import Role

users = AppGroup("users", help="Accounts: who may sign in, and with which role.")
tokens = AppGroup("tokens", help="API tokens: bearer credentials for scripts, acting for an account.")
ROLE = click.Choice([str(r) for r in Role])


def _accounts() -> Accounts:
    return runtime().accounts


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    return str(click.prompt("Password", hide_input=True, confirmation_prompt=True))


def _fail(exc: WebappError) -> click.ClickException:
    return click.ClickException(exc.message)


@users.command("create")
@click.argument("name")
@click.option("--role", type=ROLE, required=True, help="viewer, editor or admin.")
@click.option("--password-stdin", is_flag=True, help="Read the password from the first line of standard input.")
def create_user(name: str, role: str, password_stdin: bool) -> None:
    """Create the account NAME (the password is asked for; there is no default password)."""
    try:
        user = _accounts().create_user(name, Role(role), _read_password(password_stdin))
    except WebappError as exc:
        raise _fail(exc) from exc
    audit.command(f"account {user.name} ({user.role}) created")
    click.echo(f"created {user.name} ({user.role})")


@users.command("list")
def list_users() -> None:
    """List the accounts with their roles, when each was created and last seen."""
    people = _accounts()
    users = people.users()
    seen = people.last_seen(runtime().activity.last_seen(u.name for u in users))
    for user in users:
        last = f"last seen {timestamp(seen[user.name])}" if user.name in seen else "never seen"
        click.echo(f"{user.name}\t{user.role}\tcreated {timestamp(user.created_at)}\t{last}")


@users.command("delete")
@click.argument("name")
def delete_user(name: str) -> None:
    """Delete the account NAME; its sessions and tokens stop working at once."""
    try:
        _accounts().delete_user(name)
    except WebappError as exc:
        raise _fail(exc) from exc
    audit.command(f"account {name} and its tokens deleted")
    click.echo(f"deleted {name}")


@users.command("role")
@click.argument("name")
@click.option("--role", type=ROLE, required=True, help="viewer, editor or admin.")
def set_role(name: str, role: str) -> None:
    """Give the account NAME another role, at once for its sessions and tokens."""
    try:
        user = _accounts().set_role(name, Role(role))
    except WebappError as exc:
        raise _fail(exc) from exc
    audit.command(f"account {user.name} is {user.role} now")
    click.echo(f"{user.name} is {user.role} now")


@users.command("rename")
@click.argument("name")
@click.argument("new")
def rename_user(name: str, new: str) -> None:
    """Rename the account NAME to NEW, and the images, jobs and trashed images naming it."""
    try:
        user = _accounts().rename(name, new)
    except WebappError as exc:
        raise _fail(exc) from exc
    audit.command(f"account {name} renamed {user.name}")
    click.echo(f"{name} is {user.name} now")


@users.command("password")
@click.argument("name")
@click.option("--password-stdin", is_flag=True, help="Read the password from the first line of standard input.")
def set_password(name: str, password_stdin: bool) -> None:
    """Set a new password for NAME; the sessions opened with the old one end."""
    try:
        _accounts().user_named(name)  # before asking for a password: an unknown name is said at once
        _accounts().set_password(name, _read_password(password_stdin))
    except WebappError as exc:
        raise _fail(exc) from exc
    audit.command(f"the password of {name} changed")
    click.echo(f"changed the password of {name}")


@tokens.command("create")
@click.argument("name")
@click.option("--role", type=ROLE, required=True, help="No higher than the account's own role.")
@click.option("--label", default="", help="What the token is for (shown in lists).")
@click.option(
    "--expires-days",
    type=click.FloatRange(0, MAX_TOKEN_DAYS, min_open=True),
    default=None,
    help="It stops working after this many days (default: never, until revoked).",
)
def create_token(name: str, role: str, label: str, expires_days: float | None) -> None:
    """Create an API token acting for the account NAME and print it (it is shown this once)."""
    try:
        token, secret = _accounts().create_token(name, Role(role), label or "cli", expires_days)
    except WebappError as exc:
        raise _fail(exc) from exc
    audit.command(f"token {token.id} ({token.name}, {token.role}) of {token.owner} created")
    click.echo(f"token {token.id} for {token.owner} ({token.role}); it is shown this once:", err=True)
    click.echo(secret)


@tokens.command("list")
@click.option("--user", "owner", default=None, help="Only the tokens of this account.")
def list_tokens(owner: str | None) -> None:
    """List tokens with their role and last use (never their secret)."""
    try:
        found = _accounts().tokens(owner)
    except WebappError as exc:
        raise _fail(exc) from exc
    for t in found:
        if t.revoked_at is not None:
            state = f"revoked {timestamp(t.revoked_at)}"
        elif t.expires_at is not None:
            state = f"{'expired' if t.expired else 'active, expires'} {timestamp(t.expires_at)}"
        else:
            state = "active"
        used = timestamp(t.last_used_at) if t.last_used_at else "never"
        click.echo(f"{t.id}\t{t.owner}\t{t.role}\t{t.name}\tlast used {used}\t{state}")


@tokens.command("revoke")
@click.argument("token_id")
def revoke_token(token_id: str) -> None:
    """Revoke the token TOKEN_ID (as `tokens list` shows it); requests with it get 401 at once."""
    try:
        token = _accounts().revoke_token(token_id)
    except WebappError as exc:
        raise _fail(exc) from exc
    audit.command(f"token {token.id} ({token.name}) of {token.owner} revoked")
    click.echo(f"revoked {token.id} ({token.owner}, {token.name})")


@click.command("activity")
@with_appcontext
@click.option(
    "--user", "actor", default=None, help="Only this account's entries ('' for those with access control off)."
)
@click.option("--image", "image", default=None, metavar="ID", help="Only the entries naming this image.")
@click.option("--since", default=None, metavar="WHEN", help="Only those from this date (2026-11-01) or time (UTC).")
@click.option("--until", default=None, metavar="WHEN", help="Only those before this time, or through this date.")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 10_000), help="How many, newest first.")
def list_activity(actor: str | None, image: str | None, since: str | None, until: str | None, limit: int) -> None:
    """Print the activity log, newest first: when, who, how, from where, the request and what it did."""
    given = {"image": image, "since": since, "until": until}
    try:  # through the API's schema, as the page's filters
        narrowing = ActivityArgsSchema().load({name: value for name, value in given.items() if value is not None})
    except ma.ValidationError as exc:
        name, messages = next(iter(exc.normalized_messages().items()))
        raise click.BadParameter(" ".join(map(str, messages)), param_hint=f"--{name}") from exc
    try:
        entries, _total = runtime().activity.entries(0, limit, actor, **narrowing)
    except WebappError as exc:
        raise _fail(exc) from exc
    for e in entries:
        who = e.actor or "-"
        click.echo(f"{timestamp(e.at)}\t{who}\t{e.via}\t{e.address}\t{e.method} {e.path} {e.status}\t{e.note}")


def init_app(app: Flask) -> None:
    """Register the command groups and the activity log's command."""
    app.cli.add_command(users)
    app.cli.add_command(tokens)
    app.cli.add_command(list_activity)
