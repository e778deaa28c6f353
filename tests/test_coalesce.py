"""Group commit for searches (services/coalesce.py), with a fake round trip that records its batches."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from webapp.services.coalesce import Coalescer


class Trip:
    """A round trip that blocks until released, and records the batches it was sent."""

    def __init__(self, fail_on: str = "") -> None:
        self.batches: list[tuple[str, list[int]]] = []
        self.entered = threading.Semaphore(0)
        self.release = threading.Event()
        self.fail_on = fail_on

    def __call__(self, key: str, items: list[int]) -> list[int]:
        self.batches.append((key, list(items)))
        self.entered.release()
        assert self.release.wait(10)
        if key == self.fail_on:
            raise RuntimeError(f"{key} failed")
        return [item * 10 for item in items]


def test_a_lone_call_goes_out_at_once_alone() -> None:
    trip = Trip()
    trip.release.set()
    coalesce = Coalescer(trip)
    assert coalesce("k", 1) == 10
    assert coalesce("k", 2) == 20
    assert trip.batches == [("k", [1]), ("k", [2])]


def test_calls_made_while_one_is_in_flight_go_out_together_next() -> None:
    trip = Trip()
    coalesce = Coalescer(trip)
    with ThreadPoolExecutor(8) as pool:
        first = pool.submit(coalesce, "k", 1)
        assert trip.entered.acquire(timeout=10)  # the first call is in flight
        rest = [pool.submit(coalesce, "k", i) for i in range(2, 7)]
        while sum(len(w) for w in coalesce._waiting.values()) < 5:
            threading.Event().wait(0.01)
        trip.release.set()
        assert first.result(10) == 10
        assert [f.result(10) for f in rest] == [20, 30, 40, 50, 60]
    assert trip.batches[0] == ("k", [1])
    assert len(trip.batches) == 2 and sorted(trip.batches[1][1]) == [2, 3, 4, 5, 6]


def test_keys_never_share_a_call_and_batches_are_bounded() -> None:
    trip = Trip()
    coalesce = Coalescer(trip, max_batch=2)
    with ThreadPoolExecutor(8) as pool:
        first = pool.submit(coalesce, "a", 1)
        assert trip.entered.acquire(timeout=10)
        other = pool.submit(coalesce, "b", 9)  # another key does not wait for "a"
        assert trip.entered.acquire(timeout=10)
        rest = [pool.submit(coalesce, "a", i) for i in (2, 3, 4)]
        while len(coalesce._waiting.get("a", [])) < 3:
            threading.Event().wait(0.01)
        trip.release.set()
        assert [f.result(10) for f in (first, other, *rest)] == [10, 90, 20, 30, 40]
    a_batches = [items for key, items in trip.batches if key == "a"]
    assert a_batches[0] == [1] and sorted(a_batches[1] + a_batches[2]) == [2, 3, 4]
    assert max(len(items) for items in a_batches) == 2
    assert ("b", [9]) in trip.batches


def test_an_error_reaches_every_caller_of_its_batch_and_the_next_batch_still_goes() -> None:
    trip = Trip(fail_on="bad")
    coalesce = Coalescer(trip)
    with ThreadPoolExecutor(8) as pool:
        first = pool.submit(coalesce, "bad", 1)
        assert trip.entered.acquire(timeout=10)
        second = pool.submit(coalesce, "bad", 2)
        while not coalesce._waiting.get("bad"):
            threading.Event().wait(0.01)
        trip.release.set()
        for future in (first, second):
            with pytest.raises(RuntimeError, match="bad failed"):
                future.result(10)
    assert coalesce("good", 3) == 30
    assert not coalesce._waiting
