"""Request ids and the app's log lines: one line per record on stderr, tagged with the request id."""

from __future__ import annotations

import logging
import re
import uuid

from flask import Flask, Response, g, has_request_context, request
from flask.logging import default_handler, wsgi_errors_stream

HEADER = "X-Request-ID"
LOGGER = "webapp"  # the package's loggers (webapp.*) and Flask's app.logger, named after the app
FORMAT = "%(asctime)s [%(process)d] [%(levelname)s] %(name)s request_id=%(request_id)s: %(message)s"
DATE_FORMAT = "[%Y-%m-%d %H:%M:%S %z]"  # as Gunicorn's own log lines
_VALID_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
_HANDLER_NAME = "webapp-stderr"


def request_id() -> str:
    """Return the current request's id: the client's ``X-Request-ID`` if well formed, else a new one."""
    if "request_id" not in g:
        incoming = request.headers.get(HEADER, "")
        # fullmatch, not ^...$: "$" would accept a trailing newline, a log-injection vector.
        g.request_id = incoming if _VALID_ID.fullmatch(incoming) else uuid.uuid4().hex
    return str(g.request_id)


class RequestIdFilter(logging.Filter):
    """Add ``request_id`` to every record: the current request's id, or "-" outside requests."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Tag the record; never drop it."""
        record.request_id = request_id() if has_request_context() else "-"
        return True


class OneLineFormatter(logging.Formatter):
    """Write a record, traceback included, on one line, so a line is a record and a request path
    or an exception message holding a newline cannot forge another log line."""

    def format(self, record: logging.LogRecord) -> str:
        """Format as usual, then escape line breaks."""
        return super().format(record).replace("\r", "\\r").replace("\n", "\\n")


def _configure_logging() -> None:
    """Give the app's loggers one handler (once per process, however many apps are created).

    It writes to the request's wsgi.errors (Gunicorn's error log: stderr unless --error-logfile
    says otherwise), or to stderr outside requests. Records do not propagate to the root logger:
    towhee calls logging.basicConfig() when it is imported, so root has a stderr handler of its own
    that would write each line a second time. Flask's own handler would write a copy too.
    """
    logger = logging.getLogger(LOGGER)
    logger.removeHandler(default_handler)
    logger.propagate = False
    if any(h.name == _HANDLER_NAME for h in logger.handlers):
        return
    handler = logging.StreamHandler(wsgi_errors_stream)  # type: ignore[call-overload]
    handler.name = _HANDLER_NAME
    handler.addFilter(RequestIdFilter())
    handler.setFormatter(OneLineFormatter(FORMAT, DATE_FORMAT))
    logger.addHandler(handler)
    if logger.level == logging.NOTSET:
        logger.setLevel(logging.INFO)


def _send_request_id(response: Response) -> Response:
    response.headers[HEADER] = request_id()
    return response


def init_app(app: Flask) -> None:
    """Tag every request with an id, return it in ``X-Request-ID`` and log it with every record."""
    _configure_logging()
    # after_request runs for error responses too; the id is made on first use, so it exists even
    # when an earlier before_request hook (the CSRF check) refused the request.
    app.after_request(_send_request_id)
