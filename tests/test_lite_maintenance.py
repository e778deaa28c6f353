"""Milvus Lite's flushes and merges (services/lite_maintenance.py): the same rows, and searches beside merges."""

from __future__ import annotations

import errno
import hashlib
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from unittest.mock import patch

import numpy as np
import pyarrow.parquet as pq
import pytest

from webapp.errors import StoreUnavailable
from webapp.services.lite_maintenance import dictionary_columns
from webapp.services.lite_store import LiteVectorStore
from webapp.services.records import Record

DIM = 1280


def _item(i: int, rng: np.random.Generator, album: str = "") -> tuple[Record, np.ndarray]:
    vector = rng.standard_normal(DIM).astype(np.float32)
    sha = hashlib.sha256(str(i).encode()).hexdigest()
    return Record(sha, f"{i}.jpg", 10 + i, 20, "upload", "image/jpeg", 1000 + i, album), vector / np.linalg.norm(vector)


def _store(tmp_path: Path) -> LiteVectorStore:
    return LiteVectorStore(str(tmp_path / "milvus.db"), "images", DIM, flush_seconds=3600, flush_rows=10**6)


def _data_files(tmp_path: Path) -> list[Path]:
    return sorted((tmp_path / "milvus.db").rglob("data_*.parquet"))


def test_a_flush_builds_the_table_milvus_lite_builds_from_batches_rewrites_and_deletes(tmp_path: Path) -> None:
    from milvus_lite.storage.memtable import MemTable

    store = _store(tmp_path)
    try:
        rng = np.random.default_rng(5)
        items = [_item(i, rng, album="trips/2024" if i % 3 else "") for i in range(120)]
        store.upsert(items[:64])
        for item in items[64:80]:
            store.upsert([item])  # single uploads: a batch each
        store.upsert(items[80:])
        store.upsert([_item(7, rng, album="moved"), _item(70, rng)])  # the same keys written again
        store.delete([items[i][0].sha256 for i in (3, 66, 100)])
        engine = store._engine()
        assert engine is not None
        memtable = engine.collection._memtable
        rows = [(batch, row) for batch, row, _ in memtable._pk_index.values()]
        assert len(rows) == 117  # the rewritten keys once each, the deleted ones gone
        mine = MemTable._build_data_table(memtable, rows)
        theirs = MemTable._build_data_table.__wrapped__(memtable, rows)
        assert mine.schema == theirs.schema
        assert mine.equals(theirs)
        assert mine.column("albums").to_pylist()[:2] == [[], ["trips", "trips/2024"]]  # with its parent
    finally:
        store.close()


def test_data_files_keep_dictionaries_but_for_vectors_and_read_back_as_written(tmp_path: Path) -> None:
    store = _store(tmp_path)
    rng = np.random.default_rng(6)
    items = [_item(i, rng, album="a" if i % 2 else "") for i in range(200)]
    try:
        store.upsert(items[:50])
        store.flush()
        [written] = _data_files(tmp_path)
        table = pq.read_table(written)
        meta = pq.ParquetFile(written).metadata.row_group(0)
        encodings = {meta.column(i).path_in_schema: meta.column(i).encodings for i in range(meta.num_columns)}
        assert "RLE_DICTIONARY" not in encodings["vector.list.element"]
        assert set(dictionary_columns(table)) == set(encodings) - {"vector.list.element"}
        assert all("RLE_DICTIONARY" in encodings[path] for path in dictionary_columns(table))
        stored = np.array(table.column("vector").to_pylist(), dtype=np.float32)
        assert np.array_equal(stored, np.stack([vector for _, vector in items[:50]]))
        for start in range(50, 200, 50):  # four files: milvus-lite merges them in the background
            store.upsert(items[start : start + 50])
            store.flush()
        engine = store._engine()
        assert engine is not None
        engine.collection._wait_for_bg(timeout=120)
        [merged] = _data_files(tmp_path)
        meta = pq.ParquetFile(merged).metadata
        assert meta.num_rows == 200
        assert "RLE_DICTIONARY" not in meta.row_group(0).column(2).encodings  # the merge's vectors too
    finally:
        store.close()
    store = _store(tmp_path)  # opened again: what is on disk is what was written
    try:
        assert store.count() == 200
        for i in (0, 77, 199):
            hit = store.search(items[i][1], 1)[0]
            assert hit.record == items[i][0]
            assert hit.score > 0.9999
    finally:
        store.close()


def _in_thread(call: Callable[[], object]) -> tuple[threading.Thread, list[object]]:
    out: list[object] = []
    thread = threading.Thread(target=lambda: out.append(call()), daemon=True)
    thread.start()
    return thread, out


@contextmanager
def _a_merge_held(store: LiteVectorStore, items: list[tuple[Record, np.ndarray]]) -> Iterator[threading.Event]:
    """Write ``items[:200]`` as four files; milvus-lite merges them, holding the lock until the event yielded is set."""
    from milvus_lite.engine.compaction import CompactionManager

    merging, release = threading.Event(), threading.Event()
    compact = CompactionManager._compact_files

    def held(*args: object, **kwargs: object) -> None:
        merging.set()
        assert release.wait(60)
        compact(*args, **kwargs)

    for start in range(0, 150, 50):
        store.upsert(items[start : start + 50])
        store.flush()
    assert store.search(items[0][1], 1)[0].record == items[0][0]  # a snapshot of three files kept
    try:
        with patch.object(CompactionManager, "_compact_files", held):
            store.upsert(items[150:200])
            store.flush()  # the fourth file: the merge starts, and holds the lock
            assert merging.wait(60)
            yield release
    finally:
        release.set()


def test_searches_do_not_wait_for_a_merge_and_find_the_rows_of_the_flush_before_it(tmp_path: Path) -> None:
    """A merge held in the middle: searches, reads and counts answer from the last flush meanwhile."""
    store = _store(tmp_path)
    rng = np.random.default_rng(8)
    items = [_item(i, rng) for i in range(200)]
    try:
        engine = store._engine()
        assert engine is not None
        with _a_merge_held(store, items) as release:
            thread, out = _in_thread(lambda: [store.search(items[i][1], 1)[0].record for i in (0, 120, 199)])
            thread.join(10)
            assert not thread.is_alive(), "the search waited for the merge"
            assert out == [[items[0][0], items[120][0], items[199][0]]]  # the fourth flush's rows too
            assert store.count() == 200
            assert set(store.get([items[i][0].sha256 for i in (1, 160)])) == {items[1][0].sha256, items[160][0].sha256}
            release.set()
            engine.collection._wait_for_bg(timeout=120)
        assert len(_data_files(tmp_path)) == 1
        assert [store.search(items[i][1], 1)[0].record for i in (0, 120, 199)] == out[0]
    finally:
        store.close()


def test_searches_answer_while_a_flush_waits_for_a_merge(tmp_path: Path) -> None:
    """A flush waits for a merge before it holds searches: they answer meanwhile, and find its rows after.

    At 100,000 images a merge held the lock past the store's timeout: the flush, holding every
    search at the gate while it waited, failed (DEADLINE_EXCEEDED), and a search got 503.
    """
    store = LiteVectorStore(
        str(tmp_path / "milvus.db"), "images", DIM, timeout=2.0, flush_seconds=3600, flush_rows=10**6
    )
    rng = np.random.default_rng(12)
    items = [_item(i, rng) for i in range(220)]
    try:
        engine = store._engine()
        assert engine is not None
        with _a_merge_held(store, items) as release:
            store.upsert(items[200:])
            flush, flushed = _in_thread(store.flush)  # waits for the merge
            flush.join(0.3)
            assert flush.is_alive()
            search, found = _in_thread(lambda: [store.search(items[i][1], 1)[0].record for i in (0, 199, 210)])
            search.join(1.5)
            assert not search.is_alive(), "the search waited for the flush, which waits for the merge"
            assert found == [[items[i][0] for i in (0, 199, 210)]]  # 210: not flushed yet
            time.sleep(1.0)  # past the store's timeout, the merge still going
            assert store.search(items[120][1], 1)[0].record == items[120][0]
            assert store.count() == 220
            assert flush.is_alive()
            release.set()
            flush.join(30)
            assert flushed == [None]
        assert store.unflushed == 0
        engine.collection._wait_for_bg(timeout=120)
        assert [store.search(items[i][1], 1)[0].record for i in (0, 199, 210, 219)] == [
            items[i][0] for i in (0, 199, 210, 219)
        ]
    finally:
        store.close()


def test_searches_still_wait_for_any_other_holder_of_the_lock(tmp_path: Path) -> None:
    store = _store(tmp_path)
    rng = np.random.default_rng(9)
    items = [_item(i, rng) for i in range(20)]
    try:
        store.upsert(items)
        store.flush()
        assert store.search(items[3][1], 1)[0].record == items[3][0]
        engine = store._engine()
        assert engine is not None
        engine.collection._wait_for_bg(timeout=120)  # the flush's background task: not a merge any more
        lock, held, release = engine.collection._maintenance_lock, threading.Event(), threading.Event()

        def hold() -> None:
            with lock:
                held.set()
                release.wait(60)

        holder = threading.Thread(target=hold, daemon=True)
        holder.start()
        assert held.wait(10)
        thread, out = _in_thread(lambda: store.search(items[3][1], 1)[0].record)
        thread.join(0.5)
        assert thread.is_alive() and not out  # a flush or an index being made: wait, as milvus-lite does
        release.set()
        thread.join(10)
        assert out == [items[3][0]]
    finally:
        release.set()
        store.close()


def test_a_flush_that_fails_keeps_its_rows_and_the_next_one_writes_them(tmp_path: Path) -> None:
    import milvus_lite.engine.flush as flush

    rng = np.random.default_rng(8)
    items = [_item(i, rng) for i in range(20)]
    store = _store(tmp_path)
    try:
        store.upsert(items[:10])
        store.flush()
        store.upsert(items[10:])

        def disk_full(*args: object, **kwargs: object) -> str:
            raise OSError(errno.ENOSPC, "No space left on device")

        with patch.object(flush, "write_data_file", disk_full), pytest.raises(StoreUnavailable, match="No space"):
            store.flush()
        # Before, the ten rows being flushed were gone from counts and searches at once.
        assert store.count() == 20
        assert store.search(items[15][1], 1)[0].record.sha256 == items[15][0].sha256
        store.upsert([_item(20, rng)])  # written to the log it kept
        store.flush()
    finally:
        store.close()
    again = _store(tmp_path)
    try:
        assert again.count() == 21 and set(again.get([r.sha256 for r, _ in items])) == {r.sha256 for r, _ in items}
    finally:
        again.close()


def test_a_flush_that_fails_after_its_commit_is_not_undone(tmp_path: Path) -> None:
    from milvus_lite.engine.collection import Collection

    rng = np.random.default_rng(9)
    items = [_item(i, rng) for i in range(10)]
    store = _store(tmp_path)
    try:
        store.upsert(items[:5])

        def shut_down(self: object) -> None:
            raise RuntimeError("cannot schedule new futures after shutdown")  # as at the interpreter's exit

        with patch.object(Collection, "_schedule_bg_maintenance", shut_down), pytest.raises(StoreUnavailable):
            store.flush()
        store.upsert(items[5:])  # into the new log: the flush's rows are in their file already
        assert store.count() == 10
        store.flush()
    finally:
        store.close()
    again = _store(tmp_path)
    try:
        assert again.count() == 10
    finally:
        again.close()


def test_writes_flush_a_backlog_themselves_before_milvus_lite_would(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past BACKLOG_ROWS unflushed rows (a flush kept waiting by a long merge), a write flushes them itself.

    milvus-lite's own flush, at 128 MB of write buffer, would run inside that write, beside searches.
    """
    from milvus_lite.constants import MEMTABLE_MEMORY_LIMIT

    from webapp.services import lite_store

    store = _store(tmp_path)  # its schedule never flushes
    rng = np.random.default_rng(13)
    items = [_item(i, rng, album="a/b") for i in range(1000)]
    try:
        engine = store._engine()
        assert engine is not None
        store.upsert(items[:500])
        per_row = engine.collection._memtable.estimated_memory_bytes / 500
        assert lite_store.BACKLOG_ROWS * per_row < 0.8 * MEMTABLE_MEMORY_LIMIT
        monkeypatch.setattr(lite_store, "BACKLOG_ROWS", 700)
        store.upsert(items[500:650])
        assert store.unflushed == 650 and not _data_files(tmp_path)
        store.upsert(items[650:])
        assert store.unflushed == 0
        [written] = _data_files(tmp_path)
        assert pq.ParquetFile(written).metadata.num_rows == 1000
    finally:
        store.close()


def test_emptying_the_library_does_not_wait_for_a_merge(tmp_path: Path) -> None:
    """``clear`` answers a request: its deletes are left to the flush schedule, which waits for the merge."""
    store = LiteVectorStore(str(tmp_path / "milvus.db"), "images", DIM, flush_seconds=0.2, flush_rows=10**6)
    rng = np.random.default_rng(14)
    items = [_item(i, rng) for i in range(200)]
    try:
        with _a_merge_held(store, items) as release:
            clear, _ = _in_thread(store.clear)
            clear.join(1.5)
            assert not clear.is_alive(), "emptying the library waited for the merge"
            assert store.count() == 0 and store.search(items[0][1], 1) == []
            assert store.unflushed > 0
            release.set()
            deadline = time.monotonic() + 30
            while store.unflushed and time.monotonic() < deadline:
                time.sleep(0.05)
            assert store.unflushed == 0  # flushed by the schedule once the merge was done
    finally:
        store.close()
    again = LiteVectorStore(str(tmp_path / "milvus.db"), "images", DIM)
    try:
        assert again.count() == 0
    finally:
        again.close()
