"""Signing in and out, and the account page: your API tokens, and (for admins) the accounts."""

from __future__ import annotations

import functools
from collections.abc import Callable

from flask import current_app, flash, g, make_response, redirect, render_template, request, url_for
from werkzeug.exceptions import BadRequest
from werkzeug.wrappers import Response

from webapp import audit
from webapp.auth import FIRST_ADMIN, accounts, public, requires, sign_in, sign_out
from webapp.errors import Conflict, InvalidInput, WebappError
from webapp.pages.blueprint import blp
from webapp.runtime import runtime
from webapp.security import local_path
from webapp.services.accounts import WrongPassword
from webapp.services.roles import Role, role_named

# The page's choices of when a new token stops working, in days (0: never); 90 days unless chosen.
TOKEN_EXPIRIES = {"30 days": 30, "90 days": 90, "a year": 365, "never": 0}


def _in_a_session(view: Callable[[], Response]) -> Callable[[], Response]:
    """Let only a person signed in with a session through (a password, a session of their own); a
    token, or anyone while the library is open, goes to the home page."""

    @functools.wraps(view)
    def guarded() -> Response:
        if g.principal.via != "session":
            return redirect(url_for("pages.index"), 303)
        return view()

    return guarded


def _field(name: str, limit: int = 1024) -> str:
    value = request.form.get(name, "")
    if len(value) > limit:
        raise BadRequest(f"{name} is too long.")
    return value


@blp.get("/login")
@public
def login() -> tuple[str, int] | str | Response:
    """Show the sign-in form (or say how to create the first admin when no account exists)."""
    if not current_app.config["AUTH_ENABLED"]:
        return redirect(url_for("pages.index"))
    return _login_page(local_path(request.args.get("next")))


def _login_page(target: str, error: str = "", status: int = 200, name: str = "") -> tuple[str, int] | str:
    no_admin = not accounts().has_admin()
    page = render_template(
        "login.html", next=target, error=error, name=name, no_admin=no_admin, first_admin=FIRST_ADMIN
    )
    return (page, status) if status != 200 else page


@blp.post("/login")
@public
def login_submit() -> tuple[str, int] | str | Response:
    """Sign in: check the name and password (failures are counted), then open a session."""
    if not current_app.config["AUTH_ENABLED"]:
        return redirect(url_for("pages.index"), 303)
    target = local_path(request.form.get("next"))
    name = _field("name", 200)
    user = accounts().authenticate(name, _field("password"), request.remote_addr or "")
    if user is None:
        audit.always()
        audit.acting_as(name[:64], "anonymous")
        audit.note("sign-in refused: the name and password do not match an account")
        return _login_page(target, "That name and password do not match an account.", 401, name[:64])
    sign_in(user)
    audit.acting_as(user.name, "session")
    audit.note("signed in")
    return redirect(target, 303)


@blp.post("/logout")
@public
def logout() -> Response:
    """Sign out: end this browser's session."""
    audit.note("signed out")
    sign_out()
    flash("You are signed out.", "info")
    return redirect(url_for("pages.login") if current_app.config["AUTH_ENABLED"] else url_for("pages.index"), 303)


@blp.get("/account")
@requires(Role.VIEWER)
def account_page() -> tuple[str, int] | str | Response:
    """Show your API tokens (and, to admins, every account)."""
    if not g.principal.signed_in:
        return redirect(url_for("pages.index"))
    return _account_page()


def _account_page(new_secret: str = "", status: int = 200) -> str | tuple[str, int]:
    principal = g.principal
    people = accounts()
    admin = principal.role == Role.ADMIN
    users = people.users() if admin else []
    seen = people.last_seen(runtime().activity.last_seen(u.name for u in users)) if admin else {}
    page = render_template(
        "account.html",
        tokens=people.tokens(None if admin else principal.name),
        users=users,
        seen=seen,
        roles=[r for r in Role if principal.role.allows(r)],
        all_roles=list(Role),
        expiries=list(TOKEN_EXPIRIES),
        new_secret=new_secret,
    )
    return (page, status) if status != 200 else page


@blp.post("/account/tokens")
@requires(Role.VIEWER)
@_in_a_session
def create_token() -> Response:
    """Create an API token for yourself; its secret is shown on this page, once."""
    principal = g.principal
    try:
        days = TOKEN_EXPIRIES.get(_field("expires", 16) or "90 days")
        if days is None:
            raise InvalidInput(f"a token expires after {', '.join(TOKEN_EXPIRIES)}")
        role = role_named(_field("role", 16))
        token, secret = accounts().create_token(principal.name, role, _field("name", 64), days or None)
    except WebappError as exc:
        audit.refused(exc.message)
        flash(exc.message, "error")
        return redirect(url_for("pages.account_page"), 303)
    audit.note(f"token {token.id} ({token.name}, {token.role}) created")
    response = make_response(_account_page(new_secret=secret))
    response.headers["Cache-Control"] = "no-store"  # the secret must not stay in a cache
    return response


@blp.post("/account/tokens/<token_id>/revoke")
@requires(Role.VIEWER)
def revoke_token(token_id: str) -> Response:
    """Revoke one of your tokens (an admin may revoke anyone's)."""
    principal = g.principal
    owner = None if principal.role == Role.ADMIN else principal.name
    token = accounts().revoke_token(token_id[:16], owner)
    audit.note(f"token {token.id} ({token.name}) of {token.owner} revoked")
    flash(f"Token {token.id} ({token.name}) is revoked.", "success")
    return redirect(url_for("pages.account_page"), 303)


@blp.post("/account/password")
@requires(Role.VIEWER)
@_in_a_session
def change_password() -> Response:
    """Change your password, given the current one: your other sessions end, this one goes on."""
    principal = g.principal
    new = _field("password")
    try:
        if new != _field("confirm"):
            raise InvalidInput("the new password and its confirmation differ; the password is unchanged")
        user = accounts().change_password(principal.name, _field("current"), new, request.remote_addr or "")
    except InvalidInput as exc:
        audit.refused(exc.message)
        if isinstance(exc, WrongPassword):  # as a refused sign-in: someone at an open session?
            audit.always()
            audit.note("password change refused: the current password given was not right")
        flash(exc.message[0].upper() + exc.message[1:] + ".", "error")
        return redirect(url_for("pages.account_page"), 303)
    sign_in(user)
    audit.note("password changed; the other sessions ended")
    flash("Your password is changed. Your other sessions are signed out.", "success")
    return redirect(url_for("pages.account_page"), 303)


@blp.post("/account/sessions/end")
@requires(Role.VIEWER)
@_in_a_session
def end_other_sessions() -> Response:
    """Sign out your other sessions (another browser, a lost phone); this one goes on."""
    principal = g.principal
    sign_in(accounts().end_sessions(principal.name))
    audit.note("the other sessions ended")
    flash("Your other sessions are signed out.", "success")
    return redirect(url_for("pages.account_page"), 303)


@blp.post("/account/users")
@requires(Role.ADMIN)
def create_user() -> Response:
    """Create an account (admins only)."""
    try:
        user = accounts().create_user(_field("name", 64), role_named(_field("role", 16)), _field("password"))
    except WebappError as exc:
        audit.refused(exc.message)
        flash(exc.message, "error")
    else:
        audit.note(f"account {user.name} ({user.role}) created")
        flash(f"Account {user.name} ({user.role}) is created.", "success")
    return redirect(url_for("pages.account_page"), 303)


@blp.post("/account/users/<name>/role")
@requires(Role.ADMIN)
def set_role(name: str) -> Response:
    """Give an account another role, at once for its sessions and tokens (admins only; not your own)."""

    def change(account: str) -> str:
        user = accounts().set_role(account, role_named(_field("role", 16)))
        return f"account {user.name} is {user.role} now"

    return _change_account(
        name, "change your own role here; another admin can, or `flask --app wsgi users role`", change
    )


@blp.post("/account/users/<name>/rename")
@requires(Role.ADMIN)
def rename_user(name: str) -> Response:
    """Rename an account, and the images and jobs naming it (admins only; not your own)."""

    def change(account: str) -> str:
        user = accounts().rename(account, _field("name", 64))
        return f"account {account} renamed {user.name}"

    return _change_account(
        name, "rename your own account here; another admin can, or `flask --app wsgi users rename`", change
    )


@blp.post("/account/users/<name>/password")
@requires(Role.ADMIN)
def reset_password(name: str) -> Response:
    """Set another account's password: its sessions end (admins only; yours: Change your password)."""

    def change(account: str) -> str:
        accounts().set_password(account, _field("password"))
        return f"the password of {account} set; its sessions ended"

    return _change_account(name, "set your own password here; change it with the form that asks for it", change)


@blp.post("/account/users/<name>/delete")
@requires(Role.ADMIN)
def delete_user(name: str) -> Response:
    """Delete an account and its tokens (admins only; not your own)."""

    def change(account: str) -> str:
        accounts().delete_user(account)
        return f"account {account} and its tokens deleted"

    return _change_account(name, "delete your own account here; use `flask --app wsgi users delete`", change)


def _change_account(name: str, not_yours: str, change: Callable[[str], str]) -> Response:
    """Carry out an admin's change of another account: ``change`` makes it and says what it did (the
    message shown and the activity log's note). Not of one's own account: "You cannot ``not_yours``"."""
    if name == g.principal.name:
        audit.refused("one's own account")
        flash(f"You cannot {not_yours}.", "error")
    else:
        try:
            done = change(name[:64])
        except (InvalidInput, Conflict) as exc:  # an account that is not there: 404
            audit.refused(exc.message)
            flash(exc.message, "error")
        else:
            audit.note(done)
            flash(f"{done[0].upper()}{done[1:]}.", "success")
    return redirect(url_for("pages.account_page"), 303)
