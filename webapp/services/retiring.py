"""Services a process stopped using (a store, a model after a reindex), closed once the calls under way are done."""

from __future__ import annotations

import threading
from typing import Protocol

RETIRE_AFTER = 60.0  # seconds before a retired service is closed: the requests that took it finish first


class Closeable(Protocol):
    """Anything with a ``close``: a vector store, an embedder and its query helpers."""

    def close(self) -> None: ...


class Retirement:
    """Closes retired services ``after`` seconds from their retirement, or all at once on exit."""

    def __init__(self, after: float = RETIRE_AFTER) -> None:
        self.after = after
        self._pending: list[tuple[threading.Timer, Closeable]] = []
        self._lock = threading.Lock()

    def retire(self, *services: Closeable | None) -> None:
        """Close each service later: searches still under way finish with it."""
        for service in services:
            if service is not None:
                timer = threading.Timer(self.after, service.close)
                timer.daemon = True
                with self._lock:
                    self._pending.append((timer, service))
                timer.start()

    def close_all(self) -> None:
        """Close at once what is still waiting (the process is exiting)."""
        with self._lock:
            pending, self._pending = self._pending, []
        for timer, service in pending:
            if timer.is_alive():
                timer.cancel()
                service.close()
