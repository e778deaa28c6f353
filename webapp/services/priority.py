"""Searches first: bulk loading steps aside, at its next step, while a search runs in this process.

A search and a bulk load share one process's cores. Left alone, a search waits behind a load's
decoding, model calls and thumbnails and takes several times longer than when the library is
idle. Searches (and "more like this") mark themselves interactive; the load's steps (a batch's
model call, each decode, each thumbnail) wait while any is running, up to MAX_WAIT each, so a
steady stream of searches slows a load down but never stops it.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

MAX_WAIT = 0.25  # seconds one background step waits for searches at most


class Priority:
    """A count of interactive requests in flight, that background steps wait on."""

    def __init__(self, max_wait: float = MAX_WAIT) -> None:
        self.max_wait = max_wait
        self._cond = threading.Condition()
        self._interactive = 0

    @contextmanager
    def interactive(self) -> Iterator[None]:
        """Mark the enclosed work as something a person is waiting for."""
        with self._cond:
            self._interactive += 1
        try:
            yield
        finally:
            with self._cond:
                self._interactive -= 1
                if not self._interactive:
                    self._cond.notify_all()

    def step_aside(self) -> None:
        """Wait (a little at most) while interactive work runs; return at once when there is none."""
        with self._cond:
            if self._interactive:
                self._cond.wait_for(lambda: not self._interactive, self.max_wait)


PRIORITY = Priority()  # one per process: the cores it shares are the process's
