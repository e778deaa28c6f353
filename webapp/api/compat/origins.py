"""Which web pages may call the bootcamp endpoints: this app's own, and the origins configured.

The bootcamp's React client is served from another origin than its API, so its calls need CORS.
Its POSTs (a form, or a body-less POST) need no preflight, so any site a person visits could send
them too: a POST whose Origin is neither this app nor a configured one is refused before it runs.
Scripts send no Origin header and are not affected.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import Blueprint, Response, current_app, request

from webapp.errors import Forbidden


def allowed(origin: str) -> bool:
    """Tell whether a page at ``origin`` may call these endpoints."""
    configured = current_app.config["BOOTCAMP_CLIENT_ORIGINS"]
    return "*" in configured or origin in configured or urlsplit(origin).netloc == request.host


def refuse_foreign_posts() -> None:
    """Refuse a POST sent by another site's page (the endpoints are exempt from CSRF tokens)."""
    origin = request.headers.get("Origin")
    if request.method == "POST" and origin is not None and not allowed(origin):
        raise Forbidden(
            f"pages at {origin} may not call this endpoint; add the origin to WEBAPP_BOOTCAMP_CLIENT_ORIGINS"
        )


def add_cors_headers(response: Response) -> Response:
    """Let an allowed page read the answer (errors too), and answer its preflight requests."""
    origin = request.headers.get("Origin")
    if origin is not None and allowed(origin):
        response.headers["Access-Control-Allow-Origin"] = origin
        response.vary.add("Origin")
        if request.method == "OPTIONS":
            response.headers["Access-Control-Allow-Methods"] = "GET, POST"
            response.headers["Access-Control-Allow-Headers"] = "Content-Type, Authorization"
            response.headers["Access-Control-Max-Age"] = "600"
    return response


def init_blueprint(blp: Blueprint) -> None:
    """Install the origin check and the CORS headers on a blueprint."""
    blp.before_request(refuse_foreign_posts)
    blp.after_request(add_cors_headers)
