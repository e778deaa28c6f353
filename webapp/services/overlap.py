"""Calls that overlap: does a call run alone, or beside others (or soon after they did)?

An image embedded alone gets every core; once images overlap, each gets one core until a calm
moment (services/operators.py, EmbedOp). The same rule sends overlapping search queries to helper
processes (services/query_helpers.py).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

# Seconds without an overlap before a call counts as alone again: a wide ONNX session's threads
# spin while it runs, which would take a core from the one-thread runs that start meanwhile.
CALM = 0.5


class Overlaps:
    """Counts the calls in flight; a call runs alone when no other is, and none overlapped for ``calm`` s."""

    def __init__(self, calm: float = CALM) -> None:
        self.calm = calm
        self.overlapped = -math.inf  # when a call last started while another was running
        self._running = 0
        self._lock = threading.Lock()

    @contextmanager
    def call(self) -> Iterator[bool]:
        """Count the enclosed call as in flight; yield whether it runs alone."""
        with self._lock:
            now = time.monotonic()
            if self._running:
                self.overlapped = now
            alone = not self._running and now - self.overlapped >= self.calm
            self._running += 1
        try:
            yield alone
        finally:
            with self._lock:
                self._running -= 1
