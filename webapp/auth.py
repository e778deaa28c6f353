"""Who may do what: sessions for people (Flask-Login), bearer tokens for scripts, one role per operation.

Every view needs the viewer role unless it says otherwise with ``@requires(Role.EDITOR)`` (or
``@public``): the check runs before every request, so a view nobody marked is still protected. The
same marks put each operation's role and security schemes into the OpenAPI document.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from flask import Flask, current_app, g, redirect, request, session, url_for
from flask_login import LoginManager, UserMixin, login_user, logout_user
from flask_smorest import Blueprint as SmorestBlueprint
from werkzeug.wrappers import Response

from webapp.errors import Forbidden, Unauthenticated, WebappError
from webapp.handlers import wants_json
from webapp.security import local_path, require_same_site
from webapp.services.accounts import Accounts, User
from webapp.services.roles import Role

log = logging.getLogger(__name__)
F = TypeVar("F", bound=Callable[..., Any])

PUBLIC = "public"
SECURITY_SCHEMES = {
    "bearerAuth": {
        "type": "http",
        "scheme": "bearer",
        "description": "An API token: `flask --app wsgi tokens create NAME --role ROLE`, or the Account page.",
    },
    "sessionCookie": {"type": "apiKey", "in": "cookie", "name": "session", "description": "A signed-in browser."},
}
SECURED: list[dict[str, list[str]]] = [{"bearerAuth": []}, {"sessionCookie": []}]
SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}
OPEN_ENDPOINTS = {"api-docs.openapi_json", "api-docs.openapi_swagger_ui"}  # so Authorize can be used

login_manager = LoginManager()


def requires(role: Role) -> Callable[[F], F]:
    """Mark a view (or a MethodView method) as needing ``role``; its OpenAPI operation says so."""

    def decorate(func: F) -> F:
        func.__doc__ = f"{(func.__doc__ or '').rstrip()}\n\nNeeds the **{role}** role."
        func = SmorestBlueprint.doc(
            security=SECURED,
            responses={
                "401": {"description": "No credentials, or a token that is unknown, revoked or expired."},
                "403": {"description": f"The credentials' role is lower than {role}."},
            },
            **{"x-required-role": str(role)},
        )(func)
        func._required_role = role  # type: ignore[attr-defined]
        return func

    return decorate


def public(func: F) -> F:
    """Mark a view as open to anyone, even with access control on."""
    func = SmorestBlueprint.doc(security=[])(func)
    func._required_role = PUBLIC  # type: ignore[attr-defined]
    return func


@dataclass(frozen=True)
class Principal:
    """Who a request acts for, and with which role."""

    name: str
    role: Role | None  # None: anonymous
    via: str  # "session", "token", "anonymous", or "open" (access control off)
    user_id: int | None = None
    expires_at: float | None = None  # a token's expiry (None: never, or not a token)

    @property
    def signed_in(self) -> bool:
        """Tell whether the request carries an account's session or token."""
        return self.via in ("session", "token")


OPEN = Principal("", Role.ADMIN, "open")
ANONYMOUS = Principal("", None, "anonymous")


class SessionUser(UserMixin):
    """An account as Flask-Login keeps it in the session cookie."""

    def __init__(self, user: User) -> None:
        self.user = user

    def get_id(self) -> str:
        # The epoch changes with the password: a session opened before that is not loaded again.
        return f"{self.user.id}:{self.user.session_epoch}"


def accounts() -> Accounts:
    """Return this app's accounts."""
    from webapp.runtime import runtime

    return runtime().accounts


@login_manager.user_loader
def _load_session_user(user_id: str) -> SessionUser | None:
    uid, _, epoch = user_id.partition(":")
    if not uid.isdigit() or time.time() - float(session.get("signed_in_at", 0)) > _session_seconds():
        return None
    user = accounts().user(int(uid))
    return SessionUser(user) if user is not None and str(user.session_epoch) == epoch else None


def _session_seconds() -> float:
    return float(current_app.config["SESSION_HOURS"]) * 3600


def sign_in(user: User) -> None:
    """Open a session for ``user`` in a fresh cookie (no value of the anonymous session is kept)."""
    session.clear()
    session.permanent = True  # the cookie expires with the session (SESSION_HOURS after signing in)
    session["signed_in_at"] = time.time()
    login_user(SessionUser(user))


def sign_out() -> None:
    """End this browser's session."""
    logout_user()
    session.clear()


def required_role(endpoint: str | None, method: str) -> Role | str:
    """Return the role an endpoint's method needs (viewer when the view does not say)."""
    if endpoint is None or method == "OPTIONS" or _is_asset(endpoint) or endpoint in OPEN_ENDPOINTS:
        return PUBLIC  # unknown paths get their 404; preflights, stylesheets and scripts are open
    return getattr(view_of(endpoint, method), "_required_role", Role.VIEWER)


def view_of(endpoint: str, method: str) -> Callable[..., Any] | None:
    """Return the function that answers ``method`` at ``endpoint`` (a MethodView's method)."""
    view = current_app.view_functions.get(endpoint)
    cls = getattr(view, "view_class", None)
    if cls is not None:
        view = getattr(cls, method.lower(), None) or (getattr(cls, "get", None) if method == "HEAD" else None)
    return view


def _is_asset(endpoint: str) -> bool:
    return endpoint == "static" or endpoint.endswith(".static")


def _bearer() -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, credentials = header.partition(" ")
    return credentials.strip() if scheme.lower() == "bearer" else None


def identify() -> Principal:
    """Return who the request acts for: a bearer token first, then the session cookie."""
    if not current_app.config["AUTH_ENABLED"]:
        return OPEN
    secret = _bearer()
    if secret is not None:
        resolved = accounts().resolve(secret)
        if resolved is None:
            raise Unauthenticated("the token is unknown")
        user, role, expires_at = resolved
        return Principal(user.name, role, "token", user.id, expires_at)
    from flask_login import current_user

    if current_user.is_authenticated:
        user = current_user.user
        return Principal(user.name, user.role, "session", user.id)
    if current_app.config["ANONYMOUS_SEARCH"]:
        return Principal("", Role.VIEWER, "anonymous")
    return ANONYMOUS


def authorize() -> Response | None:
    """Let the request through, send a person to the login page, or refuse it (401, 403)."""
    needed = required_role(request.endpoint, request.method)
    if needed == PUBLIC:
        if request.endpoint and _is_asset(request.endpoint):
            return None  # no database query for a stylesheet
        try:
            g.principal = identify()  # a public page still shows who is signed in
        except Unauthenticated:
            g.principal = ANONYMOUS  # a bad token does not close public views
        return None
    principal = g.principal = identify()
    assert isinstance(needed, Role)
    if principal.role is None or (principal.via == "anonymous" and not principal.role.allows(needed)):
        if str(request.endpoint).startswith("pages.") and request.method == "GET":
            return redirect(url_for("pages.login", next=local_path(request.full_path)))
        raise Unauthenticated(
            f"sign in, or send an API token (Authorization: Bearer ...): this needs the {needed} role"
        )
    if not principal.role.allows(needed):
        raise Forbidden(f"this needs the {needed} role; {principal.name} has the {principal.role} role")
    if principal.via == "session" and request.method not in SAFE_METHODS and wants_json():
        require_same_site()
    return None


def _template_globals() -> dict[str, Any]:
    principal = g.get("principal") or ANONYMOUS
    return {"principal": principal, "auth_enabled": current_app.config["AUTH_ENABLED"], "Role": Role}


def announce_missing_admin() -> None:
    """Log, once per process, how to create the first admin when access control is on and none exists."""
    if current_app.extensions.get("webapp.admin_checked"):
        return
    current_app.extensions["webapp.admin_checked"] = True
    try:
        if not accounts().has_admin():
            log.warning("access control is on and no admin account exists: %s", FIRST_ADMIN)
    except WebappError as exc:
        log.warning("could not check for an admin account: %s", exc.message)


EXPIRY_HEADER = "X-Token-Expires"
FIRST_ADMIN = "create one with `flask --app wsgi users create NAME --role admin` on a machine of this library"


def _say_when_the_token_expires(response: Response) -> Response:
    """Tell a script whose token will expire when (X-Token-Expires, ISO 8601 in UTC), on every answer."""
    principal = g.get("principal")
    if principal is not None and principal.expires_at is not None:
        expires = datetime.fromtimestamp(principal.expires_at, UTC)
        response.headers[EXPIRY_HEADER] = expires.strftime("%Y-%m-%dT%H:%M:%SZ")
    return response


def init_app(app: Flask) -> None:
    """Install sessions, the role check before every request, and the template globals."""
    login_manager.init_app(app)
    app.before_request(authorize)
    app.after_request(_say_when_the_token_expires)
    app.context_processor(_template_globals)
    if app.config["AUTH_ENABLED"]:
        app.before_request(announce_missing_admin)
