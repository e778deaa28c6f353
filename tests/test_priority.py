"""Searches first: a bulk load's steps wait while a search runs, but never for long."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from webapp.services.priority import BACKGROUND_NICE, Priority, background_thread


def test_a_background_step_waits_for_the_search_in_flight() -> None:
    priority = Priority(max_wait=30)
    order: list[str] = []
    started = threading.Event()

    def background() -> None:
        started.set()
        priority.step_aside()
        order.append("load step")

    with priority.interactive():
        step = threading.Thread(target=background)
        step.start()
        started.wait()
        step.join(0.2)  # it stays parked behind the search
        order.append("search")
    step.join(5)
    assert order == ["search", "load step"]


def test_a_background_step_goes_on_at_once_without_searches_and_after_its_longest_wait() -> None:
    priority = Priority(max_wait=0.01)
    priority.step_aside()  # nothing interactive: no wait at all
    with priority.interactive(), priority.interactive():
        priority.step_aside()  # two searches in flight: it still goes on after max_wait
    with priority.interactive():
        pass
    assert priority._interactive == 0


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="per-thread nice values are Linux's")
def test_a_background_thread_and_the_threads_it_starts_run_at_a_lower_priority() -> None:
    def nice() -> int:
        return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())

    before = nice()
    seen: dict[str, int] = {}

    def load() -> None:
        background_thread()
        seen["load"] = nice()
        child = threading.Thread(target=lambda: seen.update(started_by_it=nice()))
        child.start()
        child.join()

    thread = threading.Thread(target=load)
    thread.start()
    thread.join()
    assert seen == {"load": max(before, BACKGROUND_NICE), "started_by_it": max(before, BACKGROUND_NICE)}
    assert nice() == before  # the caller's thread (a request's, in the app) keeps its priority
