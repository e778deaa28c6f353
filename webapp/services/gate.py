"""Calls that may run together, and steps that must run alone (a Milvus Lite flush)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from webapp.errors import StoreUnavailable


class Gate:
    """Let calls run together, except while a step runs alone.

    On Milvus Lite a search that runs during a flush can find nothing (milvus-lite 3.2.2): a flush
    waits for the calls in flight, and calls made meanwhile wait for it, for at most ``timeout``.
    """

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self._condition = threading.Condition()
        self._in_flight = 0
        self._alone = False

    @contextmanager
    def call(self) -> Iterator[None]:
        """Run a call beside others; wait while a step runs alone."""
        with self._condition:
            if not self._condition.wait_for(lambda: not self._alone, self.timeout):
                raise StoreUnavailable("the vector store is busy flushing; try again")
            self._in_flight += 1
        try:
            yield
        finally:
            with self._condition:
                self._in_flight -= 1
                self._condition.notify_all()

    @contextmanager
    def alone(self) -> Iterator[None]:
        """Run a step alone: wait for the calls in flight, and hold new ones until it is done."""
        with self._condition:
            if not self._condition.wait_for(lambda: not self._alone, self.timeout):
                raise StoreUnavailable("the vector store is busy; try again")
            self._alone = True
            self._condition.wait_for(lambda: self._in_flight == 0)
        try:
            yield
        finally:
            with self._condition:
                self._alone = False
                self._condition.notify_all()
