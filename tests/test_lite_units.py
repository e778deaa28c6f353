"""Unit vectors kept between Milvus Lite searches (services/lite_units.py): the same answers as brute force."""

from __future__ import annotations

import gc
import hashlib
from pathlib import Path
from unittest.mock import patch

import numpy as np
import pyarrow as pa
import pytest

from webapp.services import lite_search, lite_units
from webapp.services.lite_store import LiteVectorStore
from webapp.services.lite_units import SegmentUnits, Unflushed, distances, top, units
from webapp.services.records import Record

DIM = 1280


def _vectors(rng: np.random.Generator, rows: int, dim: int = 16) -> np.ndarray:
    vectors = rng.standard_normal((rows, dim)).astype(np.float32) * rng.uniform(0.1, 3, (rows, 1)).astype(np.float32)
    vectors[3 % rows] = 0  # a zero vector: milvus-lite's cosine distance says 1.0
    return vectors


def test_kept_unit_vectors_give_what_brute_force_gives_masked_or_not() -> None:
    from milvus_lite.index.brute_force import BruteForceIndex

    rng = np.random.default_rng(3)
    vectors = _vectors(rng, 300)
    queries = rng.standard_normal((3, 16)).astype(np.float32)
    masks = [np.ones(300, dtype=bool), rng.random(300) < 0.3, np.arange(300) < 4]
    for ok in masks:
        for top_k in (1, 10, 299):
            ids, dists = top(distances(queries, units(vectors)), ok, top_k)
            their_ids, their_dists = BruteForceIndex(vectors, "COSINE").search(queries, top_k, valid_mask=ok)
            assert np.array_equal(ids, their_ids)
            assert np.allclose(dists, their_dists, atol=1e-6)  # the padding (+inf) included
    rows = rng.permutation(300)[:50]  # some rows of a larger matrix, as unflushed entries are
    ids, dists = top(distances(queries, units(vectors), rows), np.ones(50, dtype=bool), 10)
    their_ids, their_dists = BruteForceIndex(vectors[rows], "COSINE").search(queries, 10)
    assert np.array_equal(ids, their_ids) and np.allclose(dists, their_dists, atol=1e-6)
    ids, _ = top(distances(queries, units(vectors)), np.zeros(300, dtype=bool), 5)
    assert (ids == -1).all()


def _batch(vectors: np.ndarray, nulls: bool = False) -> pa.RecordBatch:
    flat = pa.array(vectors.ravel(), type=pa.float32())
    column = pa.FixedSizeListArray.from_arrays(flat, vectors.shape[1])
    if nulls:
        mask = np.zeros(len(vectors), dtype=bool)
        mask[0] = True
        column = pa.FixedSizeListArray.from_arrays(flat, vectors.shape[1], mask=pa.array(mask))
    return pa.RecordBatch.from_arrays([column], names=["vector"])


class _Buffer:
    """Stands in for milvus-lite's write buffer: something a weak reference can follow."""


def test_unflushed_unit_vectors_grow_with_the_batches_and_match_all_of_them_at_once() -> None:
    rng = np.random.default_rng(5)
    parts = [
        _vectors(rng, 64),
        _vectors(rng, 64),
        *[rng.standard_normal((1, 16)).astype(np.float32) for _ in range(40)],
        _vectors(rng, 7),
    ]
    batches = [_batch(part) for part in parts]
    kept = Unflushed(_Buffer(), "vector")
    seen = []
    for upto in (1, 2, 2, 10, 30, len(batches)):  # one batch, then more, as writes come between searches
        got = kept.upto(batches[:upto])
        assert got is not None
        matrix, starts = got
        seen.append(matrix)
        assert np.array_equal(starts, np.cumsum([0] + [len(p) for p in parts[:upto]]))
        assert np.array_equal(matrix, units(np.concatenate(parts[:upto])))
    assert np.array_equal(seen[0], units(parts[0]))  # a view handed out earlier did not change as the rows grew
    assert Unflushed(_Buffer(), "vector").upto([batches[0], _batch(parts[1], nulls=True)]) is None


def test_unflushed_units_are_kept_per_write_buffer_and_dropped_with_it() -> None:
    cache = lite_units.UnflushedCache()
    first, second = _Buffer(), _Buffer()
    kept = cache.of(first, "vector")
    assert cache.of(first, "vector") is kept and cache.of(second, "vector") is not kept
    del first
    gc.collect()
    cache.of(_Buffer(), "vector")
    assert len(cache._entries) == 2  # the second buffer's and the newest; the flushed one's went


def test_segment_units_are_computed_once_and_forgotten_when_indexed_or_gone() -> None:
    rng = np.random.default_rng(7)
    kept = SegmentUnits()
    a, b = _vectors(rng, 20), _vectors(rng, 30)
    assert kept.of(a) is kept.of(a) and np.array_equal(kept.of(a), units(a))
    kept.of(b)
    assert len(kept) == 2
    kept.forget(a)
    assert len(kept) == 1
    del b
    gc.collect()
    assert len(kept) == 0


def _item(i: int, rng: np.random.Generator) -> tuple[Record, np.ndarray]:
    vector = rng.standard_normal(DIM).astype(np.float32)
    sha = hashlib.sha256(str(i).encode()).hexdigest()
    return Record(sha, f"{i}.jpg", 10, 20, "upload", "image/jpeg", 1000 + i), vector / np.linalg.norm(vector)


def test_lite_searches_brute_forced_segments_and_unflushed_rows_with_kept_units_as_its_own_executor_does(
    tmp_path: Path,
) -> None:
    """A segment without an index, one with milvus-lite's brute-force index, and rows not yet flushed."""
    import milvus_lite.engine.collection as lite_collection
    from milvus_lite.index.brute_force import BruteForceIndex

    store = LiteVectorStore(str(tmp_path / "milvus.db"), "images", DIM, flush_seconds=3600, flush_rows=10**6)
    try:
        rng = np.random.default_rng(13)
        items = [_item(i, rng) for i in range(400)]
        for start in (0, 100, 200):
            store.upsert(items[start : start + 100])
            store.flush()
        engine = store._engine()
        assert engine is not None
        collection = engine.collection
        collection._wait_for_bg(timeout=120)
        segments = list(collection._segment_cache.values())
        assert len(segments) == 3
        segments[0].release_index()  # searched by brute force, as a segment before its index is built
        vectors, _ = segments[1].vector_data("vector")
        segments[1].attach_index(BruteForceIndex.build(vectors, "COSINE"))  # milvus-lite's small-segment index
        store.upsert(items[300:340])
        for item in items[340:360]:
            store.upsert([item])  # single writes: a batch each
        store.delete([items[i][0].sha256 for i in (5, 150, 310, 345)])
        queries = [items[i][1] for i in (1, 5, 120, 250, 305, 350, 359)]
        args = dict(
            query_vectors=[q.tolist() for q in queries],
            top_k=10,
            metric_type="COSINE",
            output_fields=["sha256"],
            anns_field="vector",
            search_params={"ef": 128, "metric_type": "COSINE"},
        )
        execute = lite_collection.execute_search_with_index
        original = execute.__wrapped__
        with (
            patch.object(lite_search, "SEGMENTS", SegmentUnits()) as kept,
            patch.object(execute, "__wrapped__", side_effect=AssertionError("milvus-lite's own executor was used")),
        ):
            mine = collection.search(**args)
            assert len(kept) == 2  # the two segments without an HNSW index
        with patch.object(lite_collection, "execute_search_with_index", original):
            theirs = collection.search(**args)
        assert [[h["id"] for h in hits] for hits in mine] == [[h["id"] for h in hits] for hits in theirs]
        assert [h["distance"] for hits in mine for h in hits] == pytest.approx(
            [h["distance"] for hits in theirs for h in hits], abs=1e-6
        )
        for i, hits in zip((1, 120, 250, 305, 350, 359), [mine[0], *mine[2:]], strict=True):
            assert hits[0]["entity"]["sha256"] == items[i][0].sha256  # each finds itself first
        found = {h["entity"]["sha256"] for hits in mine for h in hits}
        assert not found & {items[i][0].sha256 for i in (5, 150, 310, 345)}  # deleted, flushed or not
    finally:
        store.close()
