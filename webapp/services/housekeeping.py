"""Housekeeping: what a server process removes now and then whether or not anyone asks.

Each web worker (gunicorn.conf.py) and each queue worker (webapp/worker.py) starts it: at once, then
every EVERY seconds, from a thread of its own, it removes the images expired from the trash and
the uploaded files no job will read again. Until 2026-12-04 both were removed only as something
else came (a deletion, a job's start), so a library left alone kept their disk for good.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence

log = logging.getLogger(__name__)

EVERY = 3600.0  # seconds between two rounds in one process


class Housekeeping:
    """Runs ``chores`` (what each does, and the call) in a thread: at once, then every EVERY seconds."""

    def __init__(self, chores: Sequence[tuple[str, Callable[[], object]]]) -> None:
        self.chores = chores
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start the rounds, if not started yet."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._rounds, name="housekeeping", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """Have the rounds end (at once, or once a chore under way is done)."""
        self._stopping.set()

    def _rounds(self) -> None:
        while not self._stopping.is_set():
            for what, chore in self.chores:
                if self._stopping.is_set():  # the process is closing what the chores use
                    return
                try:
                    chore()
                except Exception:  # noqa: BLE001 - the database or the disk failing: next round, then
                    log.exception("could not %s", what)
            self._stopping.wait(EVERY)
