"""The embedded queue: one background thread works through the messages; a heartbeat tells it is alive."""

from __future__ import annotations

import os
import threading
import time

import pytest

from webapp.services import queues
from webapp.services.queues import LocalQueue


class BeatCounter:
    """A stand-in job store that records each heartbeat and the scheduling policy of its thread."""

    def __init__(self) -> None:
        self.policies: list[int] = []

    def heartbeat(self, owner: str) -> None:
        linux = hasattr(os, "sched_getscheduler")
        self.policies.append(os.sched_getscheduler(threading.get_native_id()) if linux else 0)


def test_the_heartbeat_goes_on_while_a_job_holds_the_queue_thread_and_stops_with_the_queue(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(queues, "HEARTBEAT_EVERY", 0.01)
    store = BeatCounter()
    started, release = threading.Event(), threading.Event()
    handled: list[tuple[str, str, int]] = []

    def handler(task: str, job_id: str, chunk: int, should_stop: object) -> None:
        handled.append((task, job_id, chunk))
        started.set()
        release.wait(5)  # a long chunk, or a thread at idle priority that gets no CPU meanwhile

    queue = LocalQueue(handler, store)  # type: ignore[arg-type]
    queue.send("chunk", "job-1", 3)
    assert started.wait(5)
    before = len(store.policies)
    time.sleep(0.3)
    assert len(store.policies) >= before + 5  # beats while the job's thread is busy
    if hasattr(os, "SCHED_IDLE"):
        # The queue's thread runs at idle priority; the heartbeat's keeps the sender's (normal) one.
        assert os.SCHED_IDLE not in store.policies
    release.set()
    queue.stop()
    assert handled == [("chunk", "job-1", 3)]
    stopped = len(store.policies)
    time.sleep(0.1)
    assert len(store.policies) == stopped  # a stopped queue (a process going away) beats no more
