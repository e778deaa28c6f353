"""Concurrent calls that can share one round trip go together: group commit, for searches.

A search by itself goes out at once. Searches that arrive while one with the same key is in
flight wait for it to return, then go out together as one call, which one of them makes; the
next ones wait for that call, and so on. A lone search never waits, and under load each round
trip carries everything that queued meanwhile: Milvus Lite does a pass over every row's key per
call, and pymilvus spends about a millisecond of Python per call (README, Measured).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
Q = TypeVar("Q")
R = TypeVar("R")


@dataclass(eq=False)
class _Call(Generic[Q, R]):
    item: Q
    ready: threading.Event = field(default_factory=threading.Event)
    result: R | None = None
    error: BaseException | None = None
    batch: list[_Call[Q, R]] | None = None  # set when this call is to send the next batch


class Coalescer(Generic[K, Q, R]):
    """Run ``run(key, items)`` (one result per item, in order) for calls that share a key."""

    def __init__(self, run: Callable[[K, list[Q]], list[R]], max_batch: int = 16) -> None:
        self._run = run
        self.max_batch = max_batch
        self._lock = threading.Lock()
        self._waiting: dict[K, list[_Call[Q, R]]] = {}  # keys with a call in flight, and who waits

    def __call__(self, key: K, item: Q) -> R:
        me: _Call[Q, R] = _Call(item)
        with self._lock:
            if key in self._waiting:
                self._waiting[key].append(me)
            else:
                self._waiting[key] = []
                me.batch = [me]
        if me.batch is None:
            me.ready.wait()
        if me.batch is not None:  # this call sends a batch (its own first)
            self._send(key, me.batch)
        if me.error is not None:
            raise me.error
        return me.result  # type: ignore[return-value]

    def _send(self, key: K, batch: list[_Call[Q, R]]) -> None:
        try:
            results = self._run(key, [call.item for call in batch])
            for call, result in zip(batch, results, strict=True):
                call.result = result
        except BaseException as exc:  # every caller of the batch gets the error
            for call in batch:
                call.error = exc
        with self._lock:
            waiting = self._waiting[key]
            if waiting:  # the first of those who waited sends the next batch
                nxt, self._waiting[key] = waiting[: self.max_batch], waiting[self.max_batch :]
                nxt[0].batch = nxt
                nxt[0].ready.set()
            else:
                del self._waiting[key]
        for call in batch[1:]:
            call.ready.set()
