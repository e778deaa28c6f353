"""When Milvus Lite flushes: on a schedule or a row threshold, from a thread of its own, never per request.

Milvus Lite searches rows that are not flushed yet by brute force, so writes are flushed however
they arrive (jobs, single uploads). While someone searches, as soon as ``rows`` wait: each search
then scans few. Otherwise only once the oldest unflushed write is ``seconds`` old: every flush
leaves a segment, and Lite merges small segments again and again, rebuilding their HNSW index each
time (writing 20,000 vectors took 3.1 times the CPU with 64-row flushes as with 10-second ones:
README, Memory). A Milvus server seals segments on its own and needs none of this.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from webapp.services.priority import PRIORITY

log = logging.getLogger(__name__)

# Seconds after a search during which a library counts as searched: its writes flush in small
# steps then (rows), so that searches scan few unflushed rows; otherwise on the schedule.
SEARCHED_WITHIN = 30.0


class FlushSchedule:
    """Count the rows written since the last flush, and run ``flush`` from a thread when they are due.

    ``flush`` is called with nothing held; it takes the store's write lock, checks ``due()`` again
    under it (a write or a flush may have come meanwhile) and calls ``flushed()`` once done.
    """

    def __init__(self, flush: Callable[[], None], seconds: float, rows: int) -> None:
        self._flush = flush
        self.seconds, self.rows = seconds, rows
        self.unflushed = 0
        self._dirty_since = 0.0
        self._searched_at = -SEARCHED_WITHIN
        self.tick = min(1.0, seconds / 4) or 0.05  # how often the flusher looks at the schedule, unwoken
        self._thread: threading.Thread | None = None
        self._wake = threading.Event()  # enough rows wait: flush at once, not at the next tick
        self._closing = threading.Event()

    def written(self, rows: int) -> None:
        """Count rows written (under the store's write lock) and make sure the flusher runs."""
        if not self.unflushed:
            self._dirty_since = time.monotonic()
        self.unflushed += rows
        if self.unflushed >= self.rows and self.searched():
            self._wake.set()
        self.start()

    def start(self) -> None:
        """Start the flusher thread, if not yet started; it takes the calling thread's priority.

        The store starts it as it opens: a flush holds every other call of the store until it is
        done, so it should run at the priority of the thread that opened the store (a request's,
        or the worker's at start-up), not at a bulk load's idle priority (priority.py) because a
        job's thread happened to write first.
        """
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="milvus-flusher", daemon=True)
            self._thread.start()

    def search_made(self) -> None:
        """Note a search; if enough rows wait since before a quiet spell, have them flushed now."""
        self._searched_at = time.monotonic()
        if self.unflushed >= self.rows:
            self._wake.set()

    def searched(self) -> bool:
        """Tell whether someone searched the library within the last SEARCHED_WITHIN seconds."""
        return time.monotonic() - self._searched_at < SEARCHED_WITHIN

    def flushed(self) -> None:
        """Note that everything written so far is flushed."""
        self.unflushed = 0

    def due(self) -> bool:
        """Tell whether the rows waiting should be flushed now."""
        if not self.unflushed:
            return False
        return (self.unflushed >= self.rows and self.searched()) or time.monotonic() - self._dirty_since >= self.seconds

    def stop(self, timeout: float) -> None:
        """Have the flusher end now (at its next step), not at its next tick, and wait for it."""
        self._closing.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _loop(self) -> None:
        while not self._closing.is_set():
            self._wake.wait(self.tick)
            self._wake.clear()
            if self._closing.is_set() or not self.due():
                continue
            PRIORITY.step_aside()  # a flush holds new calls until it is done: let searches finish first
            try:
                self._flush()
            except Exception:  # noqa: BLE001 - whatever it was, the rows still wait: try again next tick
                log.exception("a scheduled flush failed")
