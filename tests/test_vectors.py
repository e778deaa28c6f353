"""The Milvus vector store, against a real Milvus Lite file."""

from __future__ import annotations

import hashlib
import itertools
import logging
import os
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from logging.handlers import BufferingHandler
from pathlib import Path
from unittest.mock import patch

import numpy as np
import pytest

from webapp.errors import Conflict, StoreUnavailable
from webapp.services import vectors
from webapp.services.lite import LiteEngine
from webapp.services.lite_store import LiteVectorStore
from webapp.services.priority import PRIORITY, background_thread
from webapp.services.records import Hit, Record, pk_of
from webapp.services.vectors import MilvusVectorStore, is_server_uri

DIM = 1280


def _item(i: int, rng: np.random.Generator) -> tuple[Record, np.ndarray]:
    sha = hashlib.sha256(str(i).encode()).hexdigest()
    vec = rng.standard_normal(DIM).astype(np.float32)
    return Record(sha, f"{i}.jpg", 10 + i, 20, "upload", "image/jpeg", 1000 + i), vec / np.linalg.norm(vec)


BOTH_STORES = pytest.mark.parametrize("backend", ["lite", "server"], indirect=True)


@pytest.fixture()
def store(backend: tuple[str, str]) -> Iterator[MilvusVectorStore]:
    store = MilvusVectorStore(*backend, DIM)
    yield store
    store.close()


def test_pk_is_the_first_eight_bytes_signed() -> None:
    assert pk_of("00" * 7 + "01" + "ff" * 24) == 1
    assert pk_of("ff" * 32) == -1
    assert pk_of("80" + "00" * 31) == -(2**63)


def test_uri_kind() -> None:
    assert is_server_uri("http://localhost:19530") and is_server_uri("https://x.cloud")
    assert not is_server_uri("var/milvus.db") and not is_server_uri("/abs/milvus.db")


@BOTH_STORES
def test_a_file_opens_a_lite_store_and_a_url_a_server_store(store: MilvusVectorStore, backend: tuple[str, str]) -> None:
    lite = not is_server_uri(backend[0])
    assert isinstance(store, LiteVectorStore) == lite
    assert store.kind == ("milvus-lite" if lite else "milvus-server")


@BOTH_STORES
def test_only_a_server_is_pinged_while_no_call_is_in_flight(
    backend: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Milvus Lite's server (in this process) answers idle keepalive pings with a GOAWAY, logged as an error."""
    options: list[dict[str, object]] = []
    client = vectors.MilvusClient

    class Recording(client):  # type: ignore[misc, valid-type]
        def __init__(self, *args: object, **kwargs: object) -> None:
            options.append(dict(kwargs.get("grpc_options") or {}))  # type: ignore[call-overload]
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(vectors, "MilvusClient", Recording)
    MilvusVectorStore(*backend, DIM).close()
    lite = not is_server_uri(backend[0])
    assert options == [{"grpc.keepalive_permit_without_calls": 0} if lite else {}]


@BOTH_STORES
def test_iterating_a_library_logs_no_warning(store: MilvusVectorStore) -> None:
    """Milvus Lite and Milvus 2.3 send a query iterator no MVCC timestamp, and pymilvus warned of it each time."""
    rng = np.random.default_rng(5)
    store.upsert([_item(i, rng) for i in range(3)])
    handler = BufferingHandler(capacity=100)
    handler.setLevel(logging.WARNING)
    pymilvus_log = logging.getLogger("pymilvus")
    pymilvus_log.addHandler(handler)
    try:
        assert len(store.ids()) == 3
        assert sum(len(batch) for batch in store.export()) == 3
    finally:
        pymilvus_log.removeHandler(handler)
    assert [r.getMessage() for r in handler.buffer] == []


@BOTH_STORES
def test_upsert_is_idempotent_and_search_ranks_by_cosine(store: MilvusVectorStore) -> None:
    rng = np.random.default_rng(0)
    items = [_item(i, rng) for i in range(50)]
    store.upsert(items)
    store.upsert(items[:10])
    assert store.count() == 50
    target, vector = items[7]
    hits = store.search(vector, 5)
    assert len(hits) == 5
    assert hits[0].record == target and hits[0].score == pytest.approx(1.0, abs=1e-4)
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)


@BOTH_STORES
def test_get_returns_only_what_exists(store: MilvusVectorStore) -> None:
    rng = np.random.default_rng(1)
    items = [_item(i, rng) for i in range(5)]
    store.upsert(items)
    wanted = [items[3][0].sha256, items[1][0].sha256, "ab" * 32]
    found = store.get(wanted)
    assert set(found) == {items[3][0].sha256, items[1][0].sha256}
    assert found[items[1][0].sha256] == items[1][0]
    assert store.get([]) == {}


@BOTH_STORES
def test_delete_and_persistence_across_reopen(backend: tuple[str, str]) -> None:
    rng = np.random.default_rng(2)
    items = [_item(i, rng) for i in range(20)]
    store = MilvusVectorStore(*backend, DIM)
    store.upsert(items)
    store.delete([items[0][0].sha256])
    store.close()
    reopened = MilvusVectorStore(*backend, DIM)
    try:
        assert reopened.count() == 19
        assert reopened.search(items[5][1], 1)[0].record == items[5][0]
        index = reopened._client.describe_index(backend[1], "vector")
        assert (index["index_type"], index["metric_type"]) == ("HNSW", "COSINE")
        assert (index["params"]["M"], index["params"]["efConstruction"]) == (16, 200)
    finally:
        reopened.close()


@BOTH_STORES
def test_searches_keep_finding_while_writes_are_flushed(store: MilvusVectorStore) -> None:
    rounds = 4 if store.kind == "milvus-server" else 10  # a server's flush takes about 2 s
    rng = np.random.default_rng(3)
    items = [_item(i, rng) for i in range(600)]
    store.upsert(items)
    stop = threading.Event()
    misses: list[int] = []

    def search_until_stopped(i: int) -> None:  # reads wait for a flush rather than fail or miss
        while not stop.is_set():
            try:
                found = [hit.record for hit in store.search(items[i][1], 1)]
            except Exception:  # noqa: BLE001 - a failed read is a miss too
                found = []
            if found != [items[i][0]]:
                misses.append(i)

    readers = [threading.Thread(target=search_until_stopped, args=(i,)) for i in (1, 42, 99, 300)]
    for reader in readers:
        reader.start()
    try:
        for round_ in range(rounds):
            store.upsert([_item(600 + 50 * round_ + i, rng) for i in range(50)])
            store.flush()
    finally:
        stop.set()
        for reader in readers:
            reader.join()
    assert misses == []
    assert store.count() == 600 + 50 * rounds
    assert store.search(items[7][1], 1)[0].record == items[7][0]


@pytest.mark.parametrize("policy", [(0.3, 10_000), (3600.0, 25)], ids=["after-seconds", "after-rows-while-searched"])
def test_single_writes_are_flushed_on_a_schedule(backend: tuple[str, str], policy: tuple[float, int]) -> None:
    """Rows added one call at a time (single uploads) get flushed without anyone asking."""
    seconds, rows = policy
    store = LiteVectorStore(*backend, DIM, flush_seconds=seconds, flush_rows=rows)
    try:
        rng = np.random.default_rng(5)
        items = [_item(i, rng) for i in range(30)]
        store.search(items[0][1], 1)  # someone searches the library: flushes go by rows too
        for item in items:
            store.upsert([item])
        left = 0 if seconds < 1 else 30 - rows  # past the row threshold, at most the rows after it wait
        deadline = time.monotonic() + 10
        while store.unflushed > left and time.monotonic() < deadline:
            time.sleep(0.05)
        assert store.unflushed <= left
        assert store.count() == 30
        assert store.search(items[17][1], 1)[0].record == items[17][0]
    finally:
        store.close()


def flushed_within(store: LiteVectorStore, seconds: float) -> bool:
    """Wait up to ``seconds`` for the store to have no unflushed rows; tell whether it got there."""
    deadline = time.monotonic() + seconds
    while store.unflushed and time.monotonic() < deadline:
        time.sleep(0.02)
    return store.unflushed == 0


def slow_ticks(store: LiteVectorStore) -> None:
    """Have the store's flusher look at its schedule once a minute unless woken.

    A flush within seconds then comes from a wake, not a tick, however busy the machine is (a
    flush can take more than half a second beside the rest of the suite).
    """
    store._schedule.tick = 60.0
    store._schedule._wake.set()  # ends the wait under way; the next ones last a minute


def test_a_flush_goes_once_enough_rows_wait_not_at_the_next_tick(backend: tuple[str, str]) -> None:
    """A bulk batch is flushed right after it is written: searches then scan no unflushed rows."""
    store = LiteVectorStore(*backend, DIM, flush_seconds=3600, flush_rows=10)
    try:
        slow_ticks(store)
        rng = np.random.default_rng(9)
        items = [_item(i, rng) for i in range(10)]
        store.search(items[0][1], 1)
        store.upsert(items)  # wakes the flusher
        assert flushed_within(store, 10)
    finally:
        store.close()


@pytest.mark.skipif(not hasattr(os, "sched_getscheduler"), reason="per-thread scheduling policies are Linux's")
def test_milvus_lite_flushes_at_the_priority_of_the_thread_that_opened_it_not_of_a_job_writing_first(
    tmp_path: Path,
) -> None:
    """A flush holds the store's other calls: it must not run at a bulk load's idle priority."""
    store = LiteVectorStore(str(tmp_path / "lite.db"), "prio", DIM, flush_seconds=3600, flush_rows=10)
    try:
        rng = np.random.default_rng(5)
        items = [_item(i, rng) for i in range(10)]
        store.search(items[0][1], 1)

        def job() -> None:
            background_thread()
            store.upsert(items)

        writer = threading.Thread(target=job)
        writer.start()
        writer.join()
        assert flushed_within(store, 2)
        flusher = store._schedule._thread
        assert flusher is not None and flusher.native_id is not None
        assert os.sched_getscheduler(flusher.native_id) == os.sched_getscheduler(0) != os.SCHED_IDLE
    finally:
        store.close()


def test_while_nobody_searches_rows_wait_for_the_schedule_and_the_next_search_flushes_them(
    backend: tuple[str, str],
) -> None:
    """A bulk load nobody searches flushes in big steps (each small one costs Lite merges and index builds)."""
    store = LiteVectorStore(*backend, DIM, flush_seconds=3600, flush_rows=10)
    try:
        rng = np.random.default_rng(10)
        items = [_item(i, rng) for i in range(40)]
        for start in range(0, 40, 10):
            store.upsert(items[start : start + 10])
        time.sleep(1.5)  # past the flusher's first tick (one a second)
        assert store.unflushed == 40
        slow_ticks(store)
        assert store.search(items[33][1], 1)[0].record == items[33][0]  # found unflushed, and now searched
        assert flushed_within(store, 10)
        store.upsert(items[:10])  # while searched, a flush goes as soon as enough rows wait
        assert flushed_within(store, 10)
    finally:
        store.close()


def test_no_flush_while_below_both_thresholds(backend: tuple[str, str]) -> None:
    store = LiteVectorStore(*backend, DIM, flush_seconds=3600, flush_rows=100)
    try:
        rng = np.random.default_rng(6)
        for i in range(5):
            store.upsert([_item(i, rng)])
        time.sleep(1.5)
        assert store.unflushed == 5
    finally:
        store.close()


def test_a_scheduled_flush_waits_for_the_search_in_flight(
    backend: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A flush holds every new call until it is done, so it lets a search in flight finish first."""
    monkeypatch.setattr(PRIORITY, "max_wait", 30)
    store = LiteVectorStore(*backend, DIM, flush_seconds=0.1, flush_rows=1)
    try:
        with PRIORITY.interactive():
            store.upsert([_item(0, np.random.default_rng(7))])
            time.sleep(0.6)  # the flush was due after one row, a dozen flusher ticks ago
            assert store.unflushed == 1
        assert flushed_within(store, 10)
    finally:
        store.close()


@BOTH_STORES
def test_a_checkpoint_flushes_milvus_lite_only(store: MilvusVectorStore, monkeypatch: pytest.MonkeyPatch) -> None:
    """A job's end flushes Milvus Lite (it loses unflushed rows on a crash); a server logs every write."""
    flushes: list[str] = []
    real_flush, engine_flush = store._client.flush, LiteEngine.flush

    def flush(name: str, **kwargs: object) -> None:
        flushes.append(name)
        real_flush(name, **kwargs)

    def flush_engine(engine: LiteEngine) -> None:  # Milvus Lite in this process, not over gRPC
        flushes.append(engine.collection.name)
        engine_flush(engine)

    monkeypatch.setattr(store._client, "flush", flush)
    monkeypatch.setattr(LiteEngine, "flush", flush_engine)
    store.upsert([_item(0, np.random.default_rng(8))])
    store.checkpoint()
    assert flushes == ([store.collection] if store.kind == "milvus-lite" else [])
    assert not isinstance(store, LiteVectorStore) or store.unflushed == 0
    assert store.count() == 1


@BOTH_STORES
def test_album_filters_escape_quotes_and_backslashes(store: MilvusVectorStore) -> None:
    rng = np.random.default_rng(7)
    albums = ['q"x', 'q"x/sub', "b\\s", 'b\\s"', "b", 'x") or (album != "', ""]
    items = [_item(i, rng) for i in range(len(albums))]
    items = [(Record(**{**rec.__dict__, "album": album}), vec) for (rec, vec), album in zip(items, albums, strict=True)]
    store.upsert(items)
    query = items[0][1]
    for album, expected in (('q"x', {0, 1}), ("b\\s", {2}), ('b\\s"', {3}), ("b", {4}), (albums[5], {5})):
        hits = store.search(query, 10, album)
        assert {int(h.record.filename.split(".")[0]) for h in hits} == expected, album
    assert store.get([items[1][0].sha256])[items[1][0].sha256].album == 'q"x/sub'


def test_a_collection_made_before_albums_still_works_but_refuses_album_filters(tmp_path: Path) -> None:
    from pymilvus import DataType, MilvusClient

    uri = str(tmp_path / "old.db")
    client = MilvusClient(uri=uri)
    schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
    schema.add_field("pk", DataType.INT64, is_primary=True)
    schema.add_field("vector", DataType.FLOAT_VECTOR, dim=DIM)
    for name, length in (("sha256", 64), ("filename", 1024)):
        schema.add_field(name, DataType.VARCHAR, max_length=length)
    schema.add_field("width", DataType.INT32)
    schema.add_field("height", DataType.INT32)
    schema.add_field("source", DataType.VARCHAR, max_length=64)
    schema.add_field("mime", DataType.VARCHAR, max_length=64)
    schema.add_field("added_at", DataType.INT64)
    client.create_collection("old", schema=schema)
    client.close()
    store = MilvusVectorStore(uri, "old", DIM)
    try:
        rec, vec = _item(1, np.random.default_rng(8))
        store.upsert([(rec, vec)])
        assert not store.has_albums and store.search(vec, 1)[0].record == rec
        with pytest.raises(Conflict, match="created before albums"):
            store.search(vec, 1, "a")
    finally:
        store.close()


@BOTH_STORES
def test_concurrent_searches_go_out_together_and_get_what_each_would_alone(store: MilvusVectorStore) -> None:
    rng = np.random.default_rng(2)
    items = [_item(i, rng) for i in range(300)]
    store.upsert(items)
    store.flush()
    queries = [(items[i][1], 1 + i % 12) for i in range(0, 300, 7)]
    alone = [store.search(vector, top_k) for vector, top_k in queries]
    calls: list[int] = []
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
    assert sum(calls) == len(queries) * 3 and len(calls) < len(queries) * 3  # some went out together


def test_milvus_lite_storage_allocates_with_malloc(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """pyarrow's own pool kept what Lite's segment merges freed (about 500 MB more at 20,000 vectors)."""
    import pyarrow

    monkeypatch.delenv("ARROW_DEFAULT_MEMORY_POOL", raising=False)
    store = LiteVectorStore(str(tmp_path / "milvus.db"), "images", DIM)
    store.close()
    assert pyarrow.default_memory_pool().backend_name == "system"


def test_milvus_lite_searches_and_reads_its_engine_in_process_with_what_grpc_would_answer(tmp_path: Path) -> None:
    """Searches and reads skip pymilvus's loopback gRPC on Lite; they must find exactly what it finds."""
    store = LiteVectorStore(str(tmp_path / "milvus.db"), "images", DIM)
    try:
        assert store._engine() is not None  # a milvus-lite that keeps its engine elsewhere: noticed here
        rng = np.random.default_rng(4)
        items = [_item(i, rng) for i in range(240)]
        albums = ["", "trips", "trips/rome", 'odd "one"']
        store.upsert([(replace(rec, album=albums[i % 4]), vec) for i, (rec, vec) in enumerate(items[:200])])
        store.flush()
        store.upsert(items[200:])  # not flushed: searched by brute force, by both ways alike
        engine_calls = 0
        engine = store._engine()
        assert engine is not None
        search = engine.collection.search

        def counted(*args: object, **kwargs: object) -> object:
            nonlocal engine_calls
            engine_calls += 1
            return search(*args, **kwargs)

        for i, album in [(3, ""), (5, "trips"), (6, "trips/rome"), (7, 'odd "one"'), (230, "")]:
            with patch.object(engine.collection, "search", side_effect=counted):
                direct = store.search(items[i][1], 12, album)
            store.direct = False
            over_grpc = store.search(items[i][1], 12, album)
            store.direct = True
            assert [hit.record for hit in direct] == [hit.record for hit in over_grpc] and direct
            # gRPC carries a float32: the same score may differ in its last bit.
            assert [hit.score for hit in direct] == pytest.approx([hit.score for hit in over_grpc], abs=1e-6)
            assert direct[0].record.sha256 == items[i][0].sha256
        assert engine_calls == 5
        wanted = [items[i][0].sha256 for i in (0, 5, 201, 239)] + ["0" * 64]
        direct_reads = (store.get(wanted), store.vectors(wanted), store.vector(wanted[2]), store.count())
        store.direct = False
        grpc_reads = (store.get(wanted), store.vectors(wanted), store.vector(wanted[2]), store.count())
        store.direct = True
        assert direct_reads[0] == grpc_reads[0] and len(direct_reads[0]) == 4
        assert direct_reads[1].keys() == grpc_reads[1].keys()
        assert all(np.array_equal(direct_reads[1][k], grpc_reads[1][k]) for k in grpc_reads[1])
        assert direct_reads[2] is not None and grpc_reads[2] is not None
        assert np.array_equal(direct_reads[2], grpc_reads[2]) and direct_reads[3] == grpc_reads[3] == 240
        store.delete([wanted[0], wanted[3]])
        assert store.count() == 238 and wanted[0] not in store.get(wanted)
        vectors = [items[1][1], items[210][1]]
        direct_n = store.neighbours(vectors, 6)
        store.direct = False
        over_grpc_n = store.neighbours(vectors, 6)
        assert [[sha for sha, _ in row] for row in direct_n] == [[sha for sha, _ in row] for row in over_grpc_n]
        scores = [s for row in over_grpc_n for _, s in row]
        assert [s for row in direct_n for _, s in row] == pytest.approx(scores, abs=1e-6)
    finally:
        store.close()


def test_milvus_lite_gathers_unflushed_vectors_as_arrays_exactly_as_it_did_row_by_row(tmp_path: Path) -> None:
    """The patched snapshot of rows not yet flushed must equal milvus-lite's own, overwrites and deletes included."""
    from milvus_lite.storage.memtable import MemTable

    store = LiteVectorStore(str(tmp_path / "milvus.db"), "images", DIM, flush_seconds=3600, flush_rows=10**6)
    try:
        patched = MemTable.to_search_snapshot
        assert getattr(patched, "_rowless", False)  # a milvus-lite other than the one read: noticed here
        rng = np.random.default_rng(9)
        items = [_item(i, rng) for i in range(190)]
        albums = ["", "trips", "trips/rome"]
        store.upsert([(replace(rec, album=albums[i % 3]), vec) for i, (rec, vec) in enumerate(items[:100])])
        store.flush()
        for start in (100, 130, 150):
            store.upsert(items[start : start + 30 if start < 150 else 180])
        for item in items[180:190]:
            store.upsert([item])  # one write each, as single uploads make them
        moved = [(rec, _item(1000 + i, rng)[1]) for i, (rec, _) in enumerate(items[110:120])]
        store.upsert(moved)  # the same keys again: their first rows are stale
        store.delete([rec.sha256 for rec, _ in items[120:125]] + [items[5][0].sha256])
        engine = store._engine()
        assert engine is not None
        memtable = engine.collection._memtable
        assert len(memtable._pk_index) == 85  # 90 written, 5 of them deleted
        for include_table, partitions, field in itertools.product(
            (False, True), (None, ["_default"]), ("vector", None)
        ):
            mine = patched(memtable, field, partitions, include_table)
            theirs = patched.__wrapped__(memtable, field, partitions, include_table)
            assert mine[0] == theirs[0] and len(mine[0]) == 85
            assert np.array_equal(mine[1], theirs[1]) and mine[1].dtype == theirs[1].dtype
            assert np.array_equal(mine[2], theirs[2]) and mine[2].dtype == np.float32
            assert mine[3] == theirs[3]
            assert (mine[4] is None) == (theirs[4] is None) == (not include_table)
            assert not include_table or mine[4].equals(theirs[4])
        hits = store.search(moved[3][1], 3)
        assert hits[0].record == moved[3][0] and hits[0].score == pytest.approx(1.0, abs=1e-5)
        assert all(hit.score < 0.5 for hit in store.search(items[113][1], 3))  # its stale vector is gone
        assert items[121][0].sha256 not in [hit.record.sha256 for hit in store.search(items[121][1], 5)]
    finally:
        store.close()


def test_milvus_lite_search_checks_its_rows_with_arrays_and_finds_what_its_own_executor_finds(tmp_path: Path) -> None:
    """Overwritten and deleted keys, flushed or not, filters and several queries: the same hits both ways."""
    import milvus_lite.engine.collection as lite_collection

    store = LiteVectorStore(str(tmp_path / "milvus.db"), "images", DIM, flush_seconds=3600, flush_rows=10**6)
    try:
        execute = lite_collection.execute_search_with_index
        original = execute.__wrapped__  # a milvus-lite other than the one read has no replacement: noticed here
        rng = np.random.default_rng(11)
        items = [_item(i, rng) for i in range(560)]
        albums = ["", "trips", "trips/rome", 'odd "one"']
        store.upsert([(replace(rec, album=albums[i % 4]), vec) for i, (rec, vec) in enumerate(items[:300])])
        store.flush()
        store.upsert(items[300:500])
        store.flush()
        moved = {i: _item(2000 + i, rng)[1] for i in [*range(10, 30), *range(320, 330)]}
        store.upsert([(items[i][0], moved[i]) for i in range(10, 30)])  # flushed keys written again, flushed
        store.flush()
        store.delete([items[i][0].sha256 for i in range(40, 50)])  # deletes of flushed rows, flushed
        store.flush()
        store.upsert(items[500:560])  # not flushed
        store.upsert([(items[i][0], moved[i]) for i in range(320, 330)])  # flushed keys written again, not flushed
        store.delete([items[i][0].sha256 for i in (350, 351, 352, 505)])  # deletes not flushed
        engine = store._engine()
        assert engine is not None
        collection = engine.collection
        fallbacks = 0

        def counted(*args: object, **kwargs: object) -> object:
            nonlocal fallbacks
            fallbacks += 1
            return original(*args, **kwargs)

        queries = [items[i][1] for i in (3, 12, 45, 320, 350, 505, 530)] + [moved[12], moved[325]]
        for album in ["", "trips", 'odd "one"']:
            for top_k in (5, 40):
                args = dict(
                    query_vectors=[q.tolist() for q in queries],
                    top_k=top_k,
                    metric_type="COSINE",
                    expr=store.album_filter(album) or None,
                    output_fields=["sha256", "filename", "albums"],
                    anns_field="vector",
                    search_params={"ef": 128, "metric_type": "COSINE"},
                )
                with patch.object(execute, "__wrapped__", side_effect=counted):
                    mine = collection.search(**args)
                with patch.object(lite_collection, "execute_search_with_index", original):
                    theirs = collection.search(**args)
                for field in ("id", "entity"):
                    assert [[h[field] for h in hits] for hits in mine] == [[h[field] for h in hits] for hits in theirs]
                distances = [hit["distance"] for hits in theirs for hit in hits]
                assert [hit["distance"] for hits in mine for hit in hits] == pytest.approx(distances, abs=1e-6)
        assert fallbacks == 0
        found = {hit.record.sha256 for q in queries for hit in store.search(q, 40)}
        assert not found & {items[i][0].sha256 for i in (*range(40, 50), 350, 351, 352, 505)}  # deleted
        assert store.search(moved[12], 1)[0].record == items[12][0]  # its new vector, flushed
        assert store.search(moved[325], 1)[0].record == items[325][0]  # its new vector, not flushed
        assert all(hit.score < 0.5 for hit in store.search(items[325][1], 3))  # its old one is gone
    finally:
        store.close()


def _contents(store: MilvusVectorStore) -> dict[str, tuple[Record, list[float]]]:
    return {rec.sha256: (rec, vec.tolist()) for batch in store.export() for rec, vec in batch}


def test_milvus_lite_writes_rows_through_its_engine_as_an_upsert_over_grpc_writes_them(tmp_path: Path) -> None:
    """New keys, keys written again (flushed or not), deletes, a reopen: the same library both ways."""
    rng = np.random.default_rng(13)
    items = [_item(i, rng) for i in range(200)]
    again = [
        (replace(rec, filename="again.jpg", album="trips/rome"), _item(500 + i, rng)[1])
        for i, (rec, _) in enumerate(items[:10] + items[160:170])
    ]
    stores = {
        way: LiteVectorStore(str(tmp_path / f"{way}.db"), "images", DIM, flush_seconds=3600, flush_rows=10**6)
        for way in ("engine", "grpc")
    }
    stores["grpc"].direct = False  # every call over pymilvus's gRPC, as before the engine wrote rows
    inserts = 0
    try:
        engine = stores["engine"]._engine()
        assert engine is not None
        insert = engine.collection.insert

        def counted(*args: object, **kwargs: object) -> object:
            nonlocal inserts
            inserts += 1
            return insert(*args, **kwargs)

        with patch.object(engine.collection, "insert", side_effect=counted):
            for store in stores.values():
                store.upsert(items[:150])
                store.flush()
                store.upsert(items[150:])
                store.upsert(again)  # flushed keys and keys not flushed yet, written again
                store.delete([items[i][0].sha256 for i in (3, 40, 165, 190)])
        assert inserts == 3  # the engine's store wrote through it, the other did not
        seen = {way: _contents(store) for way, store in stores.items()}
        assert seen["engine"] == seen["grpc"] and len(seen["engine"]) == 196
        assert seen["engine"][items[5][0].sha256] == (again[5][0], again[5][1].tolist())
        assert seen["engine"][items[161][0].sha256][0].album == "trips/rome"
        assert {way: store.count() for way, store in stores.items()} == {"engine": 196, "grpc": 196}
        for store in stores.values():
            store.close()
        stores = {way: LiteVectorStore(str(tmp_path / f"{way}.db"), "images", DIM) for way in stores}
        assert _contents(stores["engine"]) == _contents(stores["grpc"]) == seen["engine"]
    finally:
        for store in stores.values():
            store.close()


def test_milvus_lite_still_checks_every_field_of_a_row_its_engine_writes(tmp_path: Path) -> None:
    """Only a vector's values skip milvus-lite's one-by-one check: a bad row is refused, nothing is stored."""
    import milvus_lite.engine.collection as lite_collection

    assert getattr(lite_collection.validate_record, "__wrapped__", None) is not None  # another milvus-lite: noticed
    store = LiteVectorStore(str(tmp_path / "milvus.db"), "images", DIM)
    try:
        assert store._engine() is not None
        rng = np.random.default_rng(17)
        (good, vec), (other, other_vec) = _item(1, rng), _item(2, rng)
        refused = [
            [(good, vec), (replace(other, filename="x" * 1025), other_vec)],  # over the field's max_length
            [(good, vec), (other, other_vec[:-1])],  # a vector one value short
        ]
        for items in refused:
            with pytest.raises(StoreUnavailable):
                store.upsert(items)
        assert store.count() == 0 and not store.get({good.sha256})
        store.upsert([(good, vec)])
        assert store.get({good.sha256}) == {good.sha256: good}
    finally:
        store.close()


def test_a_row_whose_vector_is_a_float_row_is_checked_with_its_length_and_keeps_what_the_check_fills_in() -> None:
    """The check around milvus-lite's (a stand-in here): every field but the vector's values, as before."""
    from types import SimpleNamespace

    from milvus_lite.schema.types import DataType

    from webapp.services.lite import FloatRow, _by_length

    seen: list[dict[str, object]] = []

    def original(record: dict[str, object], schema: object, default_properties: object = None) -> None:
        seen.append(dict(record))
        record.setdefault("note", "filled in")

    schema = SimpleNamespace(
        fields=[
            SimpleNamespace(name="pk", dtype=DataType.INT64),
            SimpleNamespace(name="vector", dtype=DataType.FLOAT_VECTOR),
        ]
    )
    check = _by_length(original)
    row: dict[str, object] = {"pk": 7, "vector": FloatRow([0.5, 0.25, 0.125])}
    check(row, schema)
    shown = seen[-1]["vector"]
    assert isinstance(shown, tuple) and len(shown) == 3 and list(shown) == []  # its length, none of its values
    assert row == {"pk": 7, "vector": [0.5, 0.25, 0.125], "note": "filled in"} and type(row["vector"]) is FloatRow
    plain: dict[str, object] = {"pk": 8, "vector": [0.5, 0.25, 0.125]}
    check(plain, schema)
    assert seen[-1] == {"pk": 8, "vector": [0.5, 0.25, 0.125]} and plain["note"] == "filled in"


def test_milvus_lite_finds_a_small_albums_nearest_images_and_checks_album_filters_with_arrays(tmp_path: Path) -> None:
    """An album of 1% of the library: its own nearest images, not the few the HNSW graph reaches
    with 99% of its rows excluded; the filter evaluated over the album column alone, as milvus-lite
    itself would evaluate it, flushed or not."""
    from milvus_lite.search.filter import evaluate_mask

    store = LiteVectorStore(str(tmp_path / "milvus.db"), "images", DIM, flush_seconds=3600, flush_rows=10**6)
    try:
        rng = np.random.default_rng(12)
        items = [_item(i, rng) for i in range(3000)]
        names = ["small" if i % 100 == 0 else ["big/a", "big/b", 'say "cheese"', ""][i % 4] for i in range(3000)]
        store.upsert([(replace(rec, album=names[i]), vec) for i, (rec, vec) in enumerate(items)])
        store.flush()
        engine = store._engine()
        assert engine is not None
        deadline = time.monotonic() + 60  # Milvus Lite indexes a flushed segment in the background
        while True:
            segments = [s for s in engine.collection._read_snapshot()[0] if s.num_rows]
            indexes = {type(s.indexes.get("vector")).__name__ for s in segments}
            if indexes == {"FaissHnswIndex"} or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert indexes == {"FaissHnswIndex"}
        small = np.stack([vec for (_, vec), name in zip(items, names, strict=True) if name == "small"])
        ids = [rec.sha256 for (rec, _), name in zip(items, names, strict=True) if name == "small"]
        for q in rng.standard_normal((10, DIM)).astype(np.float32):
            truth = [ids[j] for j in np.argsort(-(small @ (q / np.linalg.norm(q))))[:10]]
            assert [hit.record.sha256 for hit in store.search(q, 10, "small")] == truth

        store.upsert([(replace(rec, album="unflushed/x"), vec) for rec, vec in items[:5]])
        from webapp.services.lite_filters import mask

        for album in ("small", "big", 'say "cheese"', "unflushed", "nothing"):
            compiled = engine.collection._compile_filter(store.album_filter(album))
            unflushed = engine.collection._memtable.to_search_snapshot(None, None, True)[4]
            for table in [s.table for s in segments] + [unflushed]:
                theirs = np.asarray(evaluate_mask(compiled, table), dtype=bool)
                assert np.array_equal(mask(compiled, table, lambda: 1 / 0), theirs), album
    finally:
        store.close()


@BOTH_STORES
def test_a_small_albums_search_finds_its_own_nearest_images(store: MilvusVectorStore) -> None:
    """An album of 1% of a library of 3,000, flushed and indexed: its nearest 10, exactly."""
    rng = np.random.default_rng(13)
    items = [_item(i, rng) for i in range(3000)]
    small = [i for i in range(3000) if i % 100 == 7]
    store.upsert([(replace(rec, album="small" if i in small else "big"), vec) for i, (rec, vec) in enumerate(items)])
    store.flush()
    vectors = np.stack([items[i][1] for i in small])
    for q in rng.standard_normal((10, DIM)).astype(np.float32):
        truth = [items[small[j]][0].sha256 for j in np.argsort(-(vectors @ (q / np.linalg.norm(q))))[:10]]
        assert [hit.record.sha256 for hit in store.search(q, 10, "small")] == truth
