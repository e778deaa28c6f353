"""Searches first: a bulk load's steps wait while a search runs, but never for long."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from webapp.services.priority import BACKGROUND_NICE, AtThisPriority, Priority, background_thread


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


LINUX_THREADS = pytest.mark.skipif(
    not Path("/proc/self/task").is_dir(), reason="per-thread scheduling policies are Linux's"
)


def policy_and_nice() -> tuple[int, int]:
    tid = threading.get_native_id()
    return os.sched_getscheduler(tid), os.getpriority(os.PRIO_PROCESS, tid)


def in_a_background_thread() -> dict[str, tuple[int, int]]:
    """Lower a new thread, start a thread from it; return both threads' policy and nice value."""
    seen: dict[str, tuple[int, int]] = {}

    def load() -> None:
        background_thread()
        seen["load"] = policy_and_nice()
        child = threading.Thread(target=lambda: seen.update(started_by_it=policy_and_nice()))
        child.start()
        child.join()

    thread = threading.Thread(target=load)
    thread.start()
    thread.join()
    return seen


@LINUX_THREADS
def test_a_background_thread_and_the_threads_it_starts_run_at_idle_priority() -> None:
    before = policy_and_nice()
    seen = in_a_background_thread()
    assert seen["load"][0] == os.SCHED_IDLE and seen["started_by_it"][0] == os.SCHED_IDLE
    assert policy_and_nice() == before  # the caller's thread (a request's, in the app) keeps its priority


@LINUX_THREADS
def test_where_idle_scheduling_is_refused_a_background_thread_gets_a_higher_nice_value(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def refuse(*args: object) -> None:
        raise PermissionError("not in this sandbox")

    monkeypatch.setattr(os, "sched_setscheduler", refuse)
    before = policy_and_nice()
    seen = in_a_background_thread()
    lowered = (before[0], max(before[1], BACKGROUND_NICE))
    assert seen == {"load": lowered, "started_by_it": lowered}
    assert policy_and_nice() == before


@LINUX_THREADS
def test_an_idle_thread_hands_work_that_starts_threads_to_a_thread_at_its_creators_priority() -> None:
    """What the switch at the end of a background reindex does: the store it opens starts a flusher."""
    before = policy_and_nice()
    runner = AtThisPriority("test-runner")
    seen: dict[str, object] = {}

    def load() -> None:
        background_thread()
        seen["load"] = policy_and_nice()
        seen["handed"] = runner.call(lambda: (policy_and_nice(), threading.current_thread().name))
        try:
            runner.call(lambda: 1 / 0)
        except ZeroDivisionError as exc:
            seen["raised"] = exc

    thread = threading.Thread(target=load)
    thread.start()
    thread.join()
    runner.close()
    assert seen["load"][0] == os.SCHED_IDLE
    assert seen["handed"] == (before, "test-runner")
    assert isinstance(seen["raised"], ZeroDivisionError)
    assert not runner._thread.is_alive()
