"""Milvus Lite's flushes, shorter (services/lite_maintenance.py): the same table, the same rows read back."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

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
