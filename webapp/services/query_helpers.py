"""Search queries embedded in helper processes, each with an interpreter (and a lock) of its own.

One web process's threads share one interpreter lock. Under 16 concurrent searches the Python of
HTTP, Flask and the search held it so much of the time that the two cores stood idle a fifth of
it (1.6 busy of 2), however many threads served. While searches overlap, decoding and embedding
their queries (the Python around Pillow and onnxruntime, and the waits for the lock after each of
their calls) runs in a few helper processes instead, one query at a time each, over a pipe of its
own: the cores were 1.9 busy and the app answered more searches (README, Speed). A query alone
is embedded in the web process, on every core, as before: a helper's pipe would add about 0.7 ms.

A helper is a program of its own (``python -m webapp.services.query_helper_process``) on one end
of a socket pair, not a ``multiprocessing`` child: a spawned child would first run the parent's
main script again, so a script without an ``if __name__ == "__main__"`` guard would start itself
over in every helper, and its searches would fail.

A helper sends back what a search needs of the image (``QueryImage``) and its vector; a domain
error (an unreadable image) comes back as the error itself. A helper that dies mid-query (killed,
or crashed by a decoder) is replaced, and the query tried once more on another; a second death
means the image is to blame (422).
"""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from pathlib import Path

import numpy as np

from webapp.errors import InvalidImage, ModelMissing, WebappError
from webapp.services.imaging import Box, QueryImage
from webapp.services.overlap import Overlaps
from webapp.services.query_helper_process import PROGRAM
from webapp.services.telemetry import HELPER_RESTARTS, QUERIES

log = logging.getLogger(__name__)
IMPORTABLE = str(Path(__file__).resolve().parents[2])  # the folder that holds the webapp package
RETRY_SECONDS = 30.0  # after a helper could not start, how long until one is tried again in its place


class _Helper:
    """One helper process and the parent's end of its pipe."""

    def __init__(self, spec: tuple[str, str, int]) -> None:
        ours, theirs = socket.socketpair()
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [IMPORTABLE, os.environ.get("PYTHONPATH")])))
        with ours, theirs:
            fd = theirs.fileno()
            self.process = subprocess.Popen(
                [sys.executable, "-m", PROGRAM, str(fd), *map(str, spec)],
                pass_fds=[fd],
                stdin=subprocess.DEVNULL,
                env=env,
            )
            self.conn = Connection(ours.detach())  # theirs is closed here: the helper's death reads as EOF
        self.ready = False

    def wait_ready(self) -> None:
        """Wait until the helper has loaded its model; raise what stopped it from doing so."""
        if not self.ready:
            error = self.conn.recv()
            if error is not None:
                raise error
            self.ready = True

    def call(self, data: bytes, box: Box | None) -> tuple[WebappError | None, QueryImage, np.ndarray]:
        self.wait_ready()
        self.conn.send((data, box))
        return self.conn.recv()

    def stop(self) -> None:
        self.hang_up()
        self.wait()

    def hang_up(self) -> None:
        self.conn.close()  # the helper reads the end of its pipe and returns

    def wait(self) -> None:
        try:
            self.process.wait(5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


Embed = Callable[[bytes, "Box | None"], "tuple[QueryImage, np.ndarray]"]


class QueryHelpers:
    """``processes`` helpers, each embedding one query at a time, for queries that overlap others.

    A query alone, with none other overlapping in the last half second (services/overlap.py), is
    embedded ``here`` (in the web process, on every core); the others each wait for a free helper,
    which embeds on one thread.
    """

    def __init__(self, model_dir: str, model: str, max_pixels: int, processes: int, here: Embed) -> None:
        self._spec = (str(model_dir), model, max_pixels)
        self._size = processes
        self._retry_at = 0.0  # when to try again to start a helper that could not start
        self._here = here
        self._free = threading.Condition()
        self._idle: list[_Helper] = []
        self._all: list[_Helper] = []
        self._overlaps = Overlaps()  # queries being embedded, here or in a helper
        self._closed = False
        try:
            helpers = [self._start() for _ in range(processes)]
            for helper in helpers:  # they load the model side by side
                helper.wait_ready()
        except (EOFError, OSError) as exc:
            self.close()
            raise ModelMissing(f"a helper process could not start: {exc}") from exc
        except WebappError:
            self.close()
            raise
        self._idle = list(helpers)

    @property
    def processes(self) -> list[subprocess.Popen[bytes]]:
        """Return the helper processes."""
        return [helper.process for helper in self._all]

    def _start(self) -> _Helper:
        helper = _Helper(self._spec)
        self._all.append(helper)
        return helper

    def embed(self, data: bytes, box: Box | None = None) -> tuple[QueryImage, np.ndarray]:
        """Decode and embed a query image (or its ``box`` region); raise a domain error for a bad one."""
        if self._closed:
            raise ModelMissing("the app is stopping: its query helpers are closed")
        with self._overlaps.call() as alone:
            QUERIES.labels("worker" if alone else "helper").inc()
            return self._here(data, box) if alone else self.embed_in_helper(data, box)

    def embed_in_helper(self, data: bytes, box: Box | None = None) -> tuple[QueryImage, np.ndarray]:
        """Embed in a free helper (waiting for one), as a query that overlaps others is.

        With no helper left (none could be started in a dead one's place), the query is embedded
        here, unless a helper died embedding it.
        """
        for attempt in range(2):
            helper = self._take()
            if helper is None:
                if attempt:
                    raise ModelMissing("no query helper is left to embed the image; the server's log says why")
                return self._here(data, box)
            try:
                error, query, vector = helper.call(data, box)
            except (EOFError, OSError) as exc:
                log.error("query helper %s stopped while embedding an image; starting another", helper.process.pid)
                helper = self._replace(helper)
                if attempt:
                    message = "the image could not be read: decoding it stopped the process reading it"
                    raise InvalidImage(message) from exc
                continue
            finally:
                self._give(helper)
            if error is not None:
                raise error
            return query, vector
        raise AssertionError("unreachable")  # pragma: no cover

    def _take(self) -> _Helper | None:
        """Return a free helper, waiting for one; None if there is none at all."""
        with self._free:
            self._refill()
            while not self._idle and self._all and not self._closed:
                self._free.wait()
            if self._closed:
                raise ModelMissing("the app is stopping: its query helpers are closed")
            return self._idle.pop() if self._idle else None

    def _give(self, helper: _Helper | None) -> None:
        with self._free:
            if helper is not None and not self._closed:
                self._idle.append(helper)
                self._free.notify()

    def _replace(self, dead: _Helper) -> _Helper | None:
        """Start a helper in a dead one's place (it loads its model while waiting); None if it cannot start."""
        HELPER_RESTARTS.inc()
        dead.stop()
        with self._free:
            self._all.remove(dead)
            helper = self._try_start()
            if helper is None:
                self._free.notify_all()  # a query waiting for a helper may have waited for the last
            return helper

    def _refill(self) -> None:
        """Once RETRY_SECONDS have passed, start a helper in the place of one that could not start (lock held)."""
        if len(self._all) < self._size and not self._closed and time.monotonic() >= self._retry_at:
            helper = self._try_start()
            if helper is not None:
                self._idle.append(helper)

    def _try_start(self) -> _Helper | None:
        try:
            return self._start()
        except OSError as exc:  # no memory or processes left for it: the others carry on
            self._retry_at = time.monotonic() + RETRY_SECONDS
            log.error(
                "could not start a query helper (%s); %d left, trying again in %d s", exc, len(self._all), RETRY_SECONDS
            )
            return None

    def close(self) -> None:
        """Stop every helper (they exit when their pipe closes)."""
        with self._free:
            self._closed = True
            helpers, self._all, self._idle = self._all, [], []
            self._free.notify_all()
        for helper in helpers:  # all at once: each takes a moment to exit (its interpreter, onnxruntime)
            helper.hang_up()
        for helper in helpers:
            helper.wait()
