"""The flush schedule's decisions, with a fake flush (the real store's flushes: test_vectors.py)."""

from __future__ import annotations

import threading
import time

from webapp.services.flushing import FlushSchedule


def test_rows_are_due_at_the_threshold_only_while_searched_and_always_once_old_enough() -> None:
    schedule = FlushSchedule(lambda: None, seconds=0.3, rows=10)
    assert not schedule.due()  # nothing written
    schedule.written(10)
    assert not schedule.due()  # enough rows, but nobody searched: wait for the schedule
    schedule.search_made()
    assert schedule.due()
    schedule.flushed()
    assert not schedule.due() and schedule.unflushed == 0
    schedule.written(1)
    assert not schedule.due()  # one row, just written
    time.sleep(0.35)
    assert schedule.due()  # the oldest unflushed write is old enough
    schedule.stop(1)


def test_the_flusher_flushes_what_is_due_and_stops_at_once() -> None:
    flushed = threading.Event()
    schedule: FlushSchedule

    def flush() -> None:
        if schedule.due():
            schedule.flushed()
            flushed.set()

    schedule = FlushSchedule(flush, seconds=3600, rows=5)
    schedule.search_made()
    schedule.written(5)  # while searched: flushed at once, not at the next tick
    assert flushed.wait(2) and schedule.unflushed == 0
    t0 = time.monotonic()
    schedule.stop(5)
    assert time.monotonic() - t0 < 1


def test_the_flusher_outlives_a_flush_that_raises() -> None:
    """A flush that fails in a way nobody foresaw is tried again at the next tick, not never again.

    A gRPC error pymilvus passed on as it was (a flush past its deadline) once ended the thread:
    no scheduled flush ran for the rest of the process's life.
    """
    flushed = threading.Event()
    calls: list[int] = []
    schedule: FlushSchedule

    def flush() -> None:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("unforeseen")
        schedule.flushed()
        flushed.set()

    schedule = FlushSchedule(flush, seconds=0.1, rows=10**6)
    schedule.written(1)
    assert flushed.wait(5) and len(calls) == 2 and schedule.unflushed == 0
    schedule.stop(1)
