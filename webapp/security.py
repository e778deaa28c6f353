"""Security headers on every response, and the checks on where a state-changing request comes from."""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import Flask, Response, request
from flask_wtf.csrf import validate_csrf
from werkzeug.exceptions import RequestEntityTooLarge, UnsupportedMediaType
from wtforms import ValidationError

from webapp.errors import Forbidden
from webapp.handlers import wants_json

# Only same-origin assets. img-src also allows data: for the query image on the results page (a
# data:image/jpeg;base64 URI) and the icons inlined in Swagger UI's stylesheet, and blob: for the
# preview app.js shows of a file chosen in a form (URL.createObjectURL: made by our own script
# from the person's own file, so it can only hold what they picked).
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "img-src 'self' data: blob:",
        "style-src 'self'",
        "script-src 'self'",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)

HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
}


def _add_headers(response: Response) -> Response:
    for name, value in HEADERS.items():
        response.headers.setdefault(name, value)  # a view may set its own
    return response


SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}
# The API's JSON bodies hold a folder path, an album and a few hundred image ids at most. A JSON
# body is parsed whole before it is validated: 30 MB of numbers took a worker 77 s and 5 GB.
MAX_JSON_BYTES = 1024 * 1024


def refuse_cross_site_writes() -> None:
    """Refuse a state-changing API request that another site's page made the browser send.

    A page anywhere can post a plain form to /api/v1 (no preflight needed); browsers say where
    it came from in Sec-Fetch-Site and Origin. Scripts send neither and are not affected; this
    app's own pages and Swagger UI are same-origin. The page forms have CSRF tokens, and the
    bootcamp paths check Origin against their own allow-list (webapp/api/compat/origins.py).
    """
    if request.method in SAFE_METHODS or not request.path.startswith("/api/"):
        return
    site = request.headers.get("Sec-Fetch-Site")
    origin = request.headers.get("Origin")
    if site in ("cross-site", "same-site") or (origin is not None and urlsplit(origin).netloc != request.host):
        raise Forbidden(f"requests from other sites' pages may not change anything here (from {origin or site})")


def require_same_site() -> None:
    """Refuse a state-changing API call made with a session cookie unless a page of this site made it.

    Browsers send Sec-Fetch-Site or Origin with such calls (refuse_cross_site_writes refuses other
    sites'); a cookie-bearing call with neither must carry the page's CSRF token in X-CSRFToken.
    """
    if request.headers.get("Sec-Fetch-Site") == "same-origin":
        return
    origin = request.headers.get("Origin")
    if origin is not None and urlsplit(origin).netloc == request.host:
        return
    try:
        validate_csrf(request.headers.get("X-CSRFToken", ""))
    except ValidationError as exc:
        raise Forbidden(
            "a call with a session cookie must come from this site's pages (or carry X-CSRFToken); "
            "scripts should use an API token"
        ) from exc


def local_path(target: str | None) -> str:
    """Return ``target`` if it is a path on this site (never another host), else the home page."""
    if not target:
        return "/"
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target.rstrip("?") or "/"


def refuse_form_bodies() -> None:
    """Answer 415 to an API write whose body is neither JSON nor multipart, and 413 to a JSON body
    over MAX_JSON_BYTES.

    A page on any site can send a urlencoded or text/plain form without a preflight; no endpoint
    of the API reads those, so they are refused before any view (or a lenient parser) sees them.
    """
    if request.method in SAFE_METHODS:
        return
    if request.is_json:
        too_large = RequestEntityTooLarge(f"a JSON body may hold at most 1 MiB ({MAX_JSON_BYTES} bytes)")
        if (request.content_length or 0) > MAX_JSON_BYTES:
            raise too_large
        if request.content_length is None:  # a chunked body: read it now, never far past the bound
            request.max_content_length = MAX_JSON_BYTES + 1
            if len(request.get_data(cache=True)) > MAX_JSON_BYTES:
                raise too_large
    if not wants_json():
        return
    has_body = bool(request.content_length) or "chunked" in request.headers.get("Transfer-Encoding", "").lower()
    if has_body and not (request.is_json or request.mimetype == "multipart/form-data"):
        raise UnsupportedMediaType(
            f"send application/json or multipart/form-data, not {request.mimetype or 'a body without a type'}"
        )


def init_app(app: Flask) -> None:
    """Add the security headers to every response (after_request runs for errors too); refuse
    cross-site writes to the API, and bodies its endpoints do not read."""
    app.before_request(refuse_cross_site_writes)
    app.before_request(refuse_form_bodies)
    app.after_request(_add_headers)
