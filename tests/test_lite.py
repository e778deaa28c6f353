"""Milvus Lite served by a child process (services/lite.py), as under Gunicorn."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from webapp.config import ROOT
from webapp.errors import StoreUnavailable
from webapp.services.vectors import Hit, MilvusVectorStore

from .test_vectors import DIM, _item


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] if Path(f"/proc/{pid}").exists() else "X"
    return state not in ("Z", "X")


def _wait_gone(pid: int, seconds: float = 20) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not _alive(pid):
            return True
        time.sleep(0.1)
    return False


def test_a_child_serves_the_file_is_shared_by_its_stores_and_stops_with_the_last(tmp_path: Path) -> None:
    path = str(tmp_path / "milvus.db")
    first = MilvusVectorStore(path, "images", DIM, lite_process=True)
    assert first._lite is not None
    pid = first._lite.pid
    assert pid is not None and pid != os.getpid() and _alive(pid)
    second = MilvusVectorStore(path, "other", DIM, lite_process=True)  # a reindex's second collection
    assert second._lite is first._lite and first._lite.pid == pid
    rng = np.random.default_rng(0)
    items = [_item(i, rng) for i in range(20)]
    first.upsert(items)
    assert first.search(items[3][1], 3)[0].record == items[3][0]
    second.close()
    assert _alive(pid)
    first.close()
    assert _wait_gone(pid)
    reopened = MilvusVectorStore(path, "images", DIM)  # in this process: the child let go of the file
    try:
        assert reopened.count() == 20
    finally:
        reopened.close()


def test_another_process_is_refused_while_the_child_holds_the_file(tmp_path: Path) -> None:
    path = str(tmp_path / "milvus.db")
    store = MilvusVectorStore(path, "images", DIM, lite_process=True)
    try:
        with pytest.raises(StoreUnavailable, match="in use by another process"):
            MilvusVectorStore(path, "images", DIM)
        code = (
            "from webapp.services.vectors import MilvusVectorStore\n"
            f"MilvusVectorStore({path!r}, 'images', {DIM}, lite_process=True)"
        )
        other = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
        assert other.returncode != 0 and "in use by another process" in other.stderr
    finally:
        store.close()


def test_a_child_that_dies_is_restarted_and_what_was_flushed_is_there(tmp_path: Path) -> None:
    store = MilvusVectorStore(str(tmp_path / "milvus.db"), "images", DIM, lite_process=True)
    try:
        rng = np.random.default_rng(1)
        items = [_item(i, rng) for i in range(10)]
        store.upsert(items)
        store.flush()
        assert store._lite is not None and store._lite.pid is not None
        old = store._lite.pid
        os.kill(old, signal.SIGKILL)
        assert _wait_gone(old)
        deadline = time.monotonic() + 60
        while True:
            try:
                hits = store.search(items[4][1], 1)
                break
            except StoreUnavailable:
                assert time.monotonic() < deadline, "the store did not come back"
                time.sleep(0.2)
        assert hits[0].record == items[4][0]
        assert store._lite.pid not in (None, old)
    finally:
        store.close()


def test_the_child_stops_when_the_process_that_started_it_is_killed(tmp_path: Path) -> None:
    code = (
        "import sys, time\n"
        "from webapp.services.vectors import MilvusVectorStore\n"
        f"store = MilvusVectorStore({str(tmp_path / 'milvus.db')!r}, 'images', {DIM}, lite_process=True)\n"
        "print(store._lite.pid, flush=True)\n"
        "time.sleep(600)\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert parent.stdout is not None
        child = int(parent.stdout.readline())
        assert _alive(child)
        parent.kill()
        parent.wait()
        assert _wait_gone(child)
    finally:
        parent.kill()


def test_concurrent_searches_get_what_each_would_get_alone(tmp_path: Path) -> None:
    store = MilvusVectorStore(str(tmp_path / "milvus.db"), "images", DIM, lite_process=True)
    try:
        rng = np.random.default_rng(2)
        items = [_item(i, rng) for i in range(300)]
        store.upsert(items)
        store.flush()
        queries = [(items[i][1], 1 + i % 12) for i in range(0, 300, 7)]
        alone = [store.search(vector, top_k) for vector, top_k in queries]
        calls = []
        original = store._search_many

        def counted(key: tuple[str, int], batch: list[tuple[np.ndarray, int]]) -> list[list[Hit]]:
            calls.append(len(batch))
            return original(key, batch)

        store._searches._run = counted
        with ThreadPoolExecutor(8) as pool:
            together = list(pool.map(lambda q: store.search(*q), queries * 3))
        for got, expected in zip(together, alone * 3, strict=True):  # scores may differ in the last bit
            assert [hit.record for hit in got] == [hit.record for hit in expected]
            assert [hit.score for hit in got] == pytest.approx([hit.score for hit in expected], abs=1e-5)
        assert len(calls) < len(queries) * 3  # some went out together
    finally:
        store.close()
