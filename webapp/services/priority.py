"""Searches first: bulk loading steps aside, at its next step, while a search runs in this process.

A search and a bulk load share one process's cores. Left alone, a search waits behind a load's
decoding, model calls and thumbnails and takes several times longer than when the library is
idle. Searches (and "more like this") mark themselves interactive; the load's steps (a batch's
model call, each decode, each thumbnail) wait while any is running, up to MAX_WAIT each, so a
steady stream of searches slows a load down but never stops it.

A step already running (a model call) cannot wait, so the threads of a load also run at idle
scheduling priority (``background_thread``: Linux's SCHED_IDLE, per thread): a search's thread
that wakes takes the core from them at once, where a lowered nice value only gave it a larger
share. The embedding of a search during a bulk load took 6.7-9.0 ms at p50 instead of 7.9-12.1
(``make bench-during-load``, seven alternating pairs, README). Such threads may get no CPU at all
while other work keeps every core busy, so a job's liveness is told by a thread of normal
priority (``queues.Heartbeat``).
"""

from __future__ import annotations

import logging
import os
import queue
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from typing import Any, TypeVar

T = TypeVar("T")

MAX_WAIT = 0.25  # seconds one background step waits for searches at most
BACKGROUND_NICE = 10  # a bulk load's threads' nice value where idle scheduling is refused
log = logging.getLogger(__name__)
_lowered = threading.local()


def background_thread(nice: int = BACKGROUND_NICE) -> None:
    """Run the calling thread at idle scheduling priority (once per thread; Linux only).

    On Linux a thread is a task with its own scheduling policy, and threads it starts afterwards
    (a pool's workers, onnxruntime's intra-op threads for a session it creates) inherit it.
    Where SCHED_IDLE is refused, the thread's nice value is raised to ``nice`` instead. Elsewhere
    both belong to the whole process, so nothing is changed there.
    """
    if getattr(_lowered, "done", False):
        return
    _lowered.done = True
    if not hasattr(os, "sched_setscheduler") or not os.path.isdir("/proc/self/task"):
        return
    tid = threading.get_native_id()
    try:
        os.sched_setscheduler(tid, os.SCHED_IDLE, os.sched_param(0))
        return
    except OSError as exc:  # a sandbox may refuse a policy: a lower nice value is always allowed
        log.info("idle scheduling refused (%s); lowering the nice value instead", exc)
    try:
        if os.getpriority(os.PRIO_PROCESS, tid) < nice:
            os.setpriority(os.PRIO_PROCESS, tid, nice)
    except OSError as exc:
        log.warning("could not lower the priority of a background thread: %s", exc)


class AtThisPriority:
    """A thread started now, at the creating thread's priority, that runs calls for threads of lower priority.

    A thread at idle priority cannot raise its own (Linux refuses it without CAP_SYS_NICE), and
    the threads it starts inherit its policy. So work that starts long-lived threads of its own
    (opening a Milvus Lite store starts its flusher, which holds the store's other calls while it
    flushes) is handed to this thread instead. Close it when done.
    """

    def __init__(self, name: str) -> None:
        self._calls: queue.SimpleQueue[tuple[Callable[[], Any], Future[Any]] | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._serve, name=name, daemon=True)
        self._thread.start()

    def call(self, work: Callable[[], T]) -> T:
        """Run ``work`` in this thread; return its result or raise its exception."""
        done: Future[T] = Future()
        self._calls.put((work, done))
        return done.result()

    def close(self) -> None:
        """End the thread once the calls already made have run."""
        self._calls.put(None)
        self._thread.join()

    def _serve(self) -> None:
        while (item := self._calls.get()) is not None:
            work, done = item
            try:
                done.set_result(work())
            except BaseException as exc:  # the caller raises it
                done.set_exception(exc)


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
