"""A Towhee pipeline of one row run in the calling thread: same answers, no pool, same failures."""

from __future__ import annotations

import threading

import pytest
from towhee import pipe
from towhee.runtime.runtime_pipeline import RuntimePipeline

from webapp.services.in_thread import InThread


def _where(value: int) -> tuple[int, int]:
    return value * 2, threading.get_ident()


def _fail(value: int) -> int:
    raise ValueError(f"no {value}")


def _chain() -> RuntimePipeline:
    return pipe.input("x").map("x", "y", lambda x: x + 1).map("y", ("z", "thread"), _where).output("z", "thread")


def test_it_gives_what_the_pooled_pipeline_gives_from_the_calling_thread() -> None:
    pooled = _chain()
    z, thread = InThread(_chain())(20).get()
    assert z == pooled(20).get()[0] == 42
    assert thread == threading.get_ident()
    assert pooled(20).get()[1] != threading.get_ident()  # Towhee's own call runs in its pool


def test_each_call_starts_from_empty_queues() -> None:
    run = InThread(_chain())
    assert [run(i).get()[0] for i in range(3)] == [2, 4, 6]


def test_a_failing_operator_raises_as_the_pooled_call_does() -> None:
    failing = pipe.input("x").map("x", "y", _fail).output("y")
    with pytest.raises(RuntimeError, match="no 7"):
        failing(7).get()
    with pytest.raises(RuntimeError, match="no 7"):
        InThread(pipe.input("x").map("x", "y", _fail).output("y"))(7)


def test_only_map_nodes_are_run_in_the_thread() -> None:
    many = pipe.input("xs").flat_map("xs", "x", lambda xs: xs).output("x")
    with pytest.raises(ValueError, match="flat_map"):
        InThread(many)
