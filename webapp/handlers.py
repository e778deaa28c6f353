"""Map every error to one response: JSON under /api (and the bootcamp paths), an HTML page elsewhere."""

from __future__ import annotations

import logging
from http import HTTPStatus

from flask import Flask, Response, jsonify, render_template, request
from markupsafe import escape
from werkzeug.exceptions import HTTPException, InternalServerError, SecurityError

from webapp.errors import WebappError
from webapp.logs import request_id

log = logging.getLogger(__name__)


# The bootcamp-compatible endpoints (webapp/api/compat) answer JSON too, at the demo's own paths.
BOOTCAMP_PREFIX = "/img/"
BOOTCAMP_PATHS = {"/progress", "/data"}


def wants_json() -> bool:
    """Tell whether errors on this path are JSON (the API and the bootcamp paths) rather than pages."""
    path = request.path
    if path.startswith("/api/"):
        return not path.startswith("/api/docs")
    return path.startswith(BOOTCAMP_PREFIX) or path in BOOTCAMP_PATHS


def _page(code: int, message: str) -> tuple[str, int]:
    title = HTTPStatus(code).phrase
    return render_template("error.html", code=code, title=title, message=message), code


def _json(code: int, message: str, errors: object = None) -> tuple[Response, int]:
    """Return flask-smorest's error shape: ``{code, status, message, errors}``."""
    payload: dict[str, object] = {"code": code, "status": HTTPStatus(code).phrase, "message": message}
    if errors:
        payload["errors"] = errors
    return jsonify(payload), code


def handle_http_exception(error: HTTPException) -> Response | tuple[Response | str, int]:
    """Render a werkzeug/flask-smorest HTTP error in the shape the path calls for."""
    code = error.code or 500
    data = getattr(error, "data", None) or {}
    message = data.get("message") or error.description or HTTPStatus(code).phrase
    if isinstance(error, SecurityError) and not wants_json():
        # An untrusted Host: no URLs can be built for it, so no page template; a bare page.
        return Response(f"<!doctype html><title>{code}</title><p>{escape(message)}</p>", code, mimetype="text/html")
    if wants_json():
        response, code = _json(code, message, data.get("messages"))
        if error.response is None:  # keep headers such as Allow on 405
            response.headers.extend(error.get_headers())
            response.headers["Content-Type"] = "application/json"
        return response, code
    page, code = _page(code, message)
    allow = error.get_headers() if error.response is None else []
    return Response(page, code, [(k, v) for k, v in allow if k == "Allow"], mimetype="text/html")


def handle_domain_error(error: WebappError) -> tuple[Response | str, int, dict[str, str]]:
    """Render a domain error with the status its class declares."""
    if error.status >= 500:
        log.warning("%s: %s", type(error).__name__, error.message)
    body = _json(error.status, error.message)[0] if wants_json() else _page(error.status, error.message)[0]
    headers = dict(getattr(error, "headers", {}))  # e.g. WWW-Authenticate on 401
    if error.status == 503:  # temporary: the app recovers by itself when the store or the model is back
        headers["Retry-After"] = "5"
    elif retry_after := getattr(error, "retry_after", None):
        headers["Retry-After"] = str(retry_after)
    return body, error.status, headers


def handle_unexpected(error: Exception) -> Response | tuple[Response | str, int]:
    """Log an unexpected error and answer 500 without leaking details."""
    log.exception("unhandled error on %s %s", request.method, request.path)
    message = f"Something went wrong on our side. If you report it, quote request id {request_id()}."
    return handle_http_exception(InternalServerError(message))


def register(app: Flask) -> None:
    """Install the handlers (after flask-smorest's, so these take precedence)."""
    app.register_error_handler(HTTPException, handle_http_exception)
    app.register_error_handler(WebappError, handle_domain_error)
    app.register_error_handler(Exception, handle_unexpected)
