"""Searches first: a bulk load's steps wait while a search runs, but never for long."""

from __future__ import annotations

import threading

from webapp.services.priority import Priority


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
