"""A bound on how slowly a request body may arrive (a slow body would hold a Gunicorn thread).

Gunicorn's threads wait for a request's headers without holding a thread, but read its body in
the thread that serves it, with no time limit: eight clients that send headers and then stall
held every thread until they closed. Under Gunicorn this middleware gives the body a deadline:
no byte for BODY_IDLE_SECONDS, or less than BODY_MIN_BYTES_PER_SECOND on average after that, and
the request ends with 408 (nothing stored). A buffering proxy in front (docker-compose.yml's
nginx) spares the app such clients altogether.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from werkzeug.exceptions import RequestTimeout


class SlowBody(RequestTimeout):
    """The request body arrived too slowly."""

    def __init__(self, idle: float, min_rate: float) -> None:
        super().__init__(
            f"the request body arrived too slowly (nothing for {idle:g} s, or under {min_rate:g} bytes/s); "
            "nothing was stored"
        )


class DeadlineInput:
    """wsgi.input with a deadline: the socket's timeout is set before each read to what is left."""

    def __init__(self, stream: Any, sock: socket.socket, idle: float, min_rate: float) -> None:
        self._stream, self._sock = stream, sock
        self._idle, self._min_rate = idle, min_rate
        self._start = time.monotonic()
        self._received = 0

    def _guarded(self, read: Callable[..., Any], *args: Any) -> Any:
        left = self._start + self._idle + self._received / self._min_rate - time.monotonic()
        if left <= 0:
            self.hang_up()
            raise SlowBody(self._idle, self._min_rate)
        self._sock.settimeout(min(self._idle, left))
        try:
            data = read(*args)
        except TimeoutError:
            self.hang_up()
            raise SlowBody(self._idle, self._min_rate) from None
        self._received += len(data) if isinstance(data, bytes | bytearray) else sum(map(len, data))
        return data

    def hang_up(self) -> None:
        """Read nothing more from this client: Gunicorn closes the connection after the 408."""
        try:
            self._sock.shutdown(socket.SHUT_RD)
        except OSError:
            pass

    def read(self, *args: Any) -> bytes:
        return bytes(self._guarded(self._stream.read, *args))

    def readline(self, *args: Any) -> bytes:
        return bytes(self._guarded(self._stream.readline, *args))

    def readlines(self, *args: Any) -> list[bytes]:
        return list(self._guarded(self._stream.readlines, *args))

    def __iter__(self) -> Iterator[bytes]:
        while line := self.readline():
            yield line


class BodyDeadline:
    """WSGI middleware: bound the time a request's body may take (only under Gunicorn)."""

    def __init__(self, app: Callable[..., Iterable[bytes]], idle: float, min_rate: float) -> None:
        self.app, self.idle, self.min_rate = app, idle, min_rate

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        sock = environ.get("gunicorn.socket")
        if sock is None or self.idle <= 0:
            return self.app(environ, start_response)
        environ["wsgi.input"] = DeadlineInput(environ["wsgi.input"], sock, self.idle, self.min_rate)
        try:
            return self.app(environ, start_response)  # Flask has read the body and run the view
        finally:
            sock.settimeout(None)  # the response is sent at the client's pace, as before
