"""Searches first: bulk loading steps aside, at its next step, while a search runs in this process.

A search and a bulk load share one process's cores. Left alone, a search waits behind a load's
decoding, model calls and thumbnails and takes several times longer than when the library is
idle. Searches (and "more like this") mark themselves interactive; the load's steps (a batch's
model call, each decode, each thumbnail) wait while any is running, up to MAX_WAIT each, so a
steady stream of searches slows a load down but never stops it.

A step already running (a model call) cannot wait, so the threads of a load also run at a lower
scheduling priority (``background_thread``, Linux's per-thread nice value): the kernel gives the
cores to a search's threads first, and to the load when no search needs them.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager

MAX_WAIT = 0.25  # seconds one background step waits for searches at most
BACKGROUND_NICE = 10  # the nice value of a bulk load's threads (searches run at the process's own)
log = logging.getLogger(__name__)
_lowered = threading.local()


def background_thread(nice: int = BACKGROUND_NICE) -> None:
    """Lower the calling thread's scheduling priority to ``nice`` (once per thread; Linux only).

    On Linux a thread is a task with its own nice value, and threads it starts afterwards (a
    pool's workers, onnxruntime's intra-op threads for a session it creates) inherit it. Elsewhere
    the value belongs to the whole process, so nothing is changed there.
    """
    if getattr(_lowered, "done", False):
        return
    _lowered.done = True
    if not hasattr(os, "setpriority") or not os.path.isdir("/proc/self/task"):
        return
    tid = threading.get_native_id()
    try:
        if os.getpriority(os.PRIO_PROCESS, tid) < nice:
            os.setpriority(os.PRIO_PROCESS, tid, nice)
    except OSError as exc:  # raising a nice value is always allowed; say so if a sandbox refuses
        log.warning("could not lower the priority of a background thread: %s", exc)


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
