"""Which rows of a Milvus Lite collection may answer a search, decided with arrays.

A row may if its write sequence number is its key's highest anywhere (milvus-lite's cross-source
dedup: an upsert leaves older versions behind) and no delete of its key came after it. The keys of
a set of segments (immutable files) are sorted once and cached; each search then looks up only
the rows not yet flushed and the deletes (services/lite_search.py).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

NO_SEQ = np.iinfo(np.int64).min


@dataclass(frozen=True)
class Keys:
    """The keys of a set of segments, concatenated, with what a search needs of them precomputed."""

    starts: np.ndarray  # where each segment's rows begin (one more entry: the total)
    seqs: np.ndarray  # each row's write sequence number
    unique: np.ndarray  # the distinct keys, sorted
    row_key: np.ndarray  # each row's position in ``unique``
    newest: np.ndarray  # the highest sequence number of each distinct key among the segments
    winner: np.ndarray  # whether a row is its key's newest version among the segments
    ends: tuple[Any, ...]  # each segment's first and last key: a check that a cached entry still fits

    @classmethod
    def of(cls, segments: Sequence[Any]) -> Keys:
        """Sort the keys of ``segments`` (raises TypeError or ValueError for keys that are not integers)."""
        if not segments:
            empty = np.zeros(0, dtype=np.int64)
            return cls(np.zeros(1, dtype=np.intp), empty, empty, empty, empty, np.zeros(0, dtype=bool), ())
        pks = [np.asarray(s.pks, dtype=np.int64) for s in segments]
        seqs = np.concatenate([np.asarray(s.seqs, dtype=np.int64) for s in segments])
        flat = np.concatenate(pks)
        unique, row_key = np.unique(flat, return_inverse=True)
        newest = np.full(len(unique), NO_SEQ, dtype=np.int64)
        np.maximum.at(newest, row_key, seqs)
        starts = np.cumsum([0] + [len(p) for p in pks])
        ends = tuple((s.pks[0], s.pks[-1]) for s in segments)
        return cls(starts, seqs, unique, row_key, newest, seqs == newest[row_key], ends)

    def find(self, pks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Return, for each key, its position in ``unique`` and whether it is there at all."""
        if not len(self.unique):
            return np.zeros(len(pks), dtype=np.intp), np.zeros(len(pks), dtype=bool)
        at = np.minimum(np.searchsorted(self.unique, pks), len(self.unique) - 1)
        return at, self.unique[at] == pks


class KeyCache:
    """The Keys of the last few sets of segments, by their files (a compaction makes new ones)."""

    def __init__(self, size: int = 8) -> None:
        self.size = size
        self._entries: OrderedDict[tuple[Any, ...], Keys] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, segments: Sequence[Any]) -> Keys:
        """Return the Keys of ``segments``, computed at most once per set."""
        name = tuple((s.file_path, s.num_rows, id(s)) for s in segments)
        keys = self._entries.get(name)
        if keys is None or keys.ends != tuple((s.pks[0], s.pks[-1]) for s in segments):
            keys = Keys.of(segments)  # outside the lock: two threads may both compute it, alike
            with self._lock:
                self._entries[name] = keys
                while len(self._entries) > self.size:
                    self._entries.popitem(last=False)
        return keys


KEYS = KeyCache()


def valid_rows(
    keys: Keys, mt_pks: np.ndarray, mt_seqs: np.ndarray, tombstones: dict[Any, int]
) -> tuple[np.ndarray, np.ndarray]:
    """Tell which segment rows and which unflushed rows may answer a search.

    A row may if its sequence number is its key's highest anywhere (milvus-lite's cross-source
    dedup: an upsert leaves older versions behind) and no delete of its key came after it.
    """
    segment_ok = keys.winner.copy()
    mt_ok = np.ones(len(mt_pks), dtype=bool)
    at, shared = keys.find(mt_pks)
    if shared.any():
        in_segments = keys.newest[at[shared]]
        mine = mt_seqs[shared]
        mt_ok[np.flatnonzero(shared)[in_segments > mine]] = False
        newer = at[shared][mine > in_segments]
        if len(newer):
            segment_ok &= ~np.isin(keys.row_key, newer)
    if tombstones:
        dead_pks = np.fromiter(tombstones.keys(), dtype=np.int64, count=len(tombstones))
        dead_seqs = np.fromiter(tombstones.values(), dtype=np.int64, count=len(tombstones))
        at, known = keys.find(dead_pks)
        if known.any():
            deleted = np.full(len(keys.unique), NO_SEQ, dtype=np.int64)
            deleted[at[known]] = dead_seqs[known]
            segment_ok &= deleted[keys.row_key] <= keys.seqs
        if len(mt_pks):
            order = np.argsort(dead_pks)
            where = np.minimum(np.searchsorted(dead_pks[order], mt_pks), len(order) - 1)
            hit = dead_pks[order][where] == mt_pks
            mt_ok &= ~(hit & (dead_seqs[order][where] > mt_seqs))
    return segment_ok, mt_ok
