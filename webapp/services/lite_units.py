"""Unit vectors of what Milvus Lite searches by brute force, computed once rather than per search.

milvus-lite 3.2.2 searches the rows not yet flushed, and each segment it has not indexed yet, by
brute force (``BruteForceIndex``), and copies and normalises every one of their vectors again at
each search. ``make bench-lite`` (p50 over 1,000 flushed vectors, README: How it works): 2.71-2.82
ms with 512 rows waiting, 1.34-1.42 once their unit vectors are kept (0.75-1.18 with none). During
a bulk load up to 512 rows wait, and a segment just flushed waits for its index. The vectors are
immutable where they live (an unflushed batch of rows, a segment's file), so their unit vectors
are kept:

- ``Unflushed``: per batch of rows not yet flushed, appended in order (the batches of a write
  buffer only grow); a row's place is its batch's first place plus its row;
- ``SegmentUnits``: per segment's vector array, until the segment is indexed or merged away.

``distances`` then computes what ``BruteForceIndex.search`` computes, the same numbers from the
same unit vectors, for the rows that may answer (services/lite_search.py).
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Sequence
from typing import Any

import numpy as np


def units(vectors: np.ndarray) -> np.ndarray:
    """Return unit vectors as milvus-lite's cosine distance makes them (a zero vector stays zero)."""
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.where(norms == 0, 1.0, norms)


def top(distances: np.ndarray, ok: np.ndarray, top_k: int) -> tuple[np.ndarray, np.ndarray]:
    """Return each query's ``top_k`` nearest rows among those ``ok``, as ``BruteForceIndex.search`` does.

    ``distances`` is (queries, rows). Rows and distances are padded with -1 and +inf.
    """
    nq = distances.shape[0]
    ids = np.full((nq, top_k), -1, dtype=np.int64)
    found = np.full((nq, top_k), np.inf, dtype=np.float32)
    valid = np.flatnonzero(ok)
    k = min(top_k, valid.size)
    if not k:
        return ids, found
    for q in range(nq):
        dists = distances[q, valid]
        if k < valid.size:
            part = np.argpartition(dists, k - 1)[:k]
            order = part[np.argsort(dists[part])]
        else:
            order = np.argsort(dists)
        ids[q, :k], found[q, :k] = valid[order[:k]], dists[order[:k]]
    return ids, found


def distances(query: np.ndarray, unit_rows: np.ndarray, rows: np.ndarray | None = None) -> np.ndarray:
    """Return the cosine distances (queries, rows) of ``query`` to unit vectors (only ``rows`` of them)."""
    norms = np.linalg.norm(query, axis=1, keepdims=True)
    sims = (query / np.where(norms == 0, 1.0, norms)) @ unit_rows.T
    if rows is not None:
        sims = sims[:, rows]
    return np.maximum(1.0 - sims, 0.0)


class Unflushed:
    """The unit vectors of one write buffer's batches, extended as batches are added."""

    def __init__(self, memtable: Any, field: str) -> None:
        self.memtable, self.field = weakref.ref(memtable), field
        self.buffer = np.zeros((0, 0), dtype=np.float32)  # the rows so far, then room for more
        self.starts = [0]  # where each batch's rows begin, one more entry than batches
        self._lock = threading.Lock()

    def upto(self, batches: Sequence[Any]) -> tuple[np.ndarray, np.ndarray] | None:
        """Return the unit vectors of (at least) ``batches`` and where each batch begins.

        None if a batch's vectors are not a dense float32 column (nulls): brute force the usual way.
        """
        with self._lock:
            read = [self._vectors(batch) for batch in batches[len(self.starts) - 1 :]]
            fresh = [vectors for vectors in read if vectors is not None]
            if len(fresh) < len(read):
                return None
            if fresh:
                added = units(np.concatenate(fresh)) if len(fresh) > 1 else units(fresh[0])
                rows = self.starts[-1]
                if rows + len(added) > len(self.buffer):  # room for twice as many: single writes add a row each
                    grown = np.empty((2 * (rows + len(added)), added.shape[1]), dtype=added.dtype)
                    if rows:
                        grown[:rows] = self.buffer[:rows]
                    self.buffer = grown  # views handed out keep the old buffer, whose rows do not change
                self.buffer[rows : rows + len(added)] = added
                for vectors in fresh:
                    self.starts.append(self.starts[-1] + len(vectors))
            return self.buffer[: self.starts[-1]], np.asarray(self.starts, dtype=np.intp)

    def _vectors(self, batch: Any) -> np.ndarray | None:
        import pyarrow as pa

        column = batch.column(self.field)
        kind = column.type
        if not (pa.types.is_fixed_size_list(kind) and pa.types.is_float32(kind.value_type)) or column.null_count:
            return None
        return column.flatten().to_numpy(zero_copy_only=False).reshape(-1, kind.list_size)


class UnflushedCache:
    """The ``Unflushed`` of each write buffer searched (a flush starts a new buffer; the old one goes)."""

    def __init__(self) -> None:
        self._entries: dict[int, Unflushed] = {}
        self._lock = threading.Lock()

    def of(self, memtable: Any, field: str) -> Unflushed:
        """Return the unit vectors kept for ``memtable``'s batches."""
        entry = self._entries.get(id(memtable))
        if entry is None or entry.memtable() is not memtable or entry.field != field:
            with self._lock:
                for key in [key for key, kept in self._entries.items() if kept.memtable() is None]:
                    del self._entries[key]  # buffers flushed since
                entry = self._entries[id(memtable)] = Unflushed(memtable, field)
        return entry


class SegmentUnits:
    """The unit vectors of the segments searched by brute force, until they are indexed or merged away."""

    def __init__(self) -> None:
        self._entries: dict[int, tuple[weakref.ref[np.ndarray], np.ndarray]] = {}  # by id of the vectors

    def of(self, vectors: np.ndarray) -> np.ndarray:
        """Return the unit vectors of a segment's (immutable) vector array."""
        key = id(vectors)
        entry = self._entries.get(key)
        if entry is None or entry[0]() is not vectors:
            entry = (weakref.ref(vectors, lambda _: self._entries.pop(key, None)), units(vectors))
            self._entries[key] = entry
        return entry[1]

    def forget(self, vectors: np.ndarray) -> None:
        """Drop what is kept for a segment now searched through its index."""
        entry = self._entries.get(id(vectors))
        if entry is not None and entry[0]() is vectors:
            self._entries.pop(id(vectors), None)

    def __len__(self) -> int:
        return len(self._entries)


UNFLUSHED = UnflushedCache()
SEGMENTS = SegmentUnits()
