"""Security headers on every response: pages, API, static files and errors."""

from __future__ import annotations

from flask import Flask, Response

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


def init_app(app: Flask) -> None:
    """Add the security headers to every response the app sends (after_request runs for errors too)."""
    app.after_request(_add_headers)
