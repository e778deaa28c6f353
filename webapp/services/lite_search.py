"""Milvus Lite's search with its per-row checks done by numpy (milvus-lite 3.2.2 only).

milvus-lite 3.2.2 answers a search by asking each segment's HNSW index and brute-forcing the
rows not yet flushed, then merging (``milvus_lite.search.executor_indexed``). Before that it
decides, in a Python loop over every row of the collection, which rows may answer: the newest
version of each key, not deleted since. That loop is most of a search's time and grows with the
library: a search took 1.3 ms at 1,000 vectors, 5.4 at 10,000 and 51 at 100,000 (make bench-lite).

``execute`` does the same steps in the same order and makes the same decision with arrays
(services/lite_keys.py): the segments' keys are sorted once per set of segments (segments are
immutable files), and each search only looks up the keys not yet flushed and the deletes among
them. Whatever it does not expect (partitions, keys that are not integers, a caller without a
projection) goes to milvus-lite's own function, which ``tests/test_vectors.py`` also compares it
with. What it searches by brute force (the unflushed rows, a segment not indexed yet) it searches
with unit vectors kept between searches (services/lite_units.py), with the same results.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np

from webapp.services.lite import replace_piece
from webapp.services.lite_filters import mask
from webapp.services.lite_keys import KEYS, Keys, valid_rows
from webapp.services.lite_units import SEGMENTS, UNFLUSHED, distances, top

Row = dict[str, Any]


def faster_search() -> bool:
    """Have Milvus Lite's collections search through ``execute``; return whether they do."""
    import milvus_lite.engine.collection as collection

    return replace_piece(collection, "execute_search_with_index", _replacing)


def _replacing(original: Callable[..., Any]) -> Callable[..., Any]:
    def execute(
        query_vectors: np.ndarray,
        segments: Any,
        memtable: Any,
        delta_index: Any,
        top_k: int,
        metric_type: str,
        pk_field: str,
        vector_field: str,
        partition_names: list[str] | None = None,
        compiled_filter: Any = None,
        output_fields: list[str] | None = None,
        indexed_filter_plan: Any = None,
        project_record_fn: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
        search_params: dict[str, Any] | None = None,
    ) -> list[list[dict[str, Any]]]:
        """Search as milvus-lite's execute_search_with_index does, given the same arguments."""
        segments = [s for s in segments if s.num_rows > 0]
        query = np.asarray(query_vectors, dtype=np.float32).reshape(-1, np.shape(query_vectors)[-1])

        def theirs() -> list[list[dict[str, Any]]]:
            return execute.__wrapped__(  # type: ignore[attr-defined]
                *(query_vectors, segments, memtable, delta_index, top_k, metric_type, pk_field, vector_field),
                partition_names=partition_names,
                compiled_filter=compiled_filter,
                output_fields=output_fields,
                indexed_filter_plan=indexed_filter_plan,
                project_record_fn=project_record_fn,
                search_params=search_params,
            )

        if partition_names or project_record_fn is None or top_k <= 0 or not len(query):
            return theirs()
        try:
            run = _Run.start(segments, memtable, delta_index, vector_field, compiled_filter, metric_type == "COSINE")
        except (TypeError, ValueError, OverflowError):  # keys that are not integers
            return theirs()
        if run is None:
            return [[] for _ in range(len(query))]
        project = project_record_fn
        search = _Recall(query, top_k, metric_type, search_params)
        run.recall(search, vector_field, compiled_filter, indexed_filter_plan)
        skip = {"_seq", "_partition"}  # a result's vector is read only if asked for: most of a row's cost
        if output_fields is not None and vector_field not in output_fields and "*" not in output_fields:
            skip.add(vector_field)
        best = search.best()
        found = iter(
            run.records([(source, row) for candidates in best for _, source, row in candidates], pk_field, skip)
        )
        return [
            [
                {"id": pk, "distance": distance, "entity": project(fields)}
                for distance, _, _ in candidates
                for pk, fields in [next(found)]
            ]
            for candidates in best
        ]

    execute.__wrapped__ = original  # type: ignore[attr-defined]
    return execute


@dataclass
class _Run:
    """One search's view of a collection: its segments, its unflushed rows, and which rows may answer."""

    segments: list[Any]
    memtable: Any
    keys: Keys
    segment_ok: np.ndarray
    mt_ok: np.ndarray
    mt_pks: list[Any]
    mt_vectors: np.ndarray | _Unflushed
    mt_refs: list[tuple[int, int]]
    mt_table: Any

    @classmethod
    def start(
        cls, segments: list[Any], memtable: Any, delta_index: Any, vector_field: str, filter_: Any, units: bool
    ) -> _Run | None:
        """Take the snapshot; None when there is nothing to search. ``units``: use kept unit vectors (cosine)."""
        include_table = filter_ is not None
        pks, seqs, vectors, refs, table = memtable.to_search_snapshot(None, None, include_table)
        if not segments and not pks:
            return None
        kept = UNFLUSHED.of(memtable, vector_field).upto(tuple(memtable._insert_batches)) if pks and units else None
        if kept is not None:  # each row's place among the kept unit vectors of every batch
            unit_rows, starts = kept
            places = np.asarray(refs, dtype=np.intp).reshape(-1, 2)
            at = starts[places[:, 0]] + places[:, 1]
            vectors = _Unflushed(unit_rows, at)
        elif pks:  # another metric, or vectors that are not a dense float32 column: the snapshot has them
            pks, seqs, vectors, refs, table = memtable.to_search_snapshot(vector_field, None, include_table)
        tombstones = dict(delta_index._map)  # a copy already, taken with the segments
        for pk, (seq, _) in memtable.delete_index_snapshot().items():
            tombstones[pk] = max(tombstones.get(pk, seq), seq)
        keys = KEYS.get(segments)
        mt_keys, mt_seqs = np.asarray(pks, dtype=np.int64), np.asarray(seqs, dtype=np.int64)
        segment_ok, mt_ok = valid_rows(keys, mt_keys, mt_seqs, tombstones)
        return cls(segments, memtable, keys, segment_ok, mt_ok, pks, vectors, refs, table)

    def recall(self, search: _Recall, vector_field: str, filter_: Any, plan: Any) -> None:
        """Ask every segment, then the unflushed rows, for their nearest allowed rows."""
        for i, segment in enumerate(self.segments):
            ok = self.segment_ok[self.keys.starts[i] : self.keys.starts[i + 1]]
            vectors, present = segment.vector_data(vector_field)
            if filter_ is not None:
                from milvus_lite.search.indexed_filter import evaluate_segment_filter

                ok = ok & mask(filter_, segment.table, partial(evaluate_segment_filter, segment, filter_, plan))
            if present is not None:
                ok = ok & present
            search.source(i, ok, vectors, segment.indexes.get(vector_field))
        if self.mt_pks:
            ok = self.mt_ok
            if filter_ is not None and self.mt_table is not None:
                from milvus_lite.search.filter import evaluate_mask

                ok = ok & mask(filter_, self.mt_table, partial(evaluate_mask, filter_, self.mt_table))
            search.source(len(self.segments), ok, self.mt_vectors, None)

    def records(
        self, found: Sequence[tuple[int, int]], pk_field: str, skip: set[str]
    ) -> list[tuple[Any, dict[str, Any]]]:
        """Return the key and the fields of each (source, row) found, in order.

        The columns of one table (a segment's, or a batch of unflushed rows) are looked up once for
        all its rows, not once per value: a search of 1,000 vectors for 10 results took 0.57-0.64 ms
        instead of 0.65-0.73, for 50 results 1.34-1.42 instead of 1.75-1.86 (one-off timing).
        """
        tables: dict[int, Any] = {}
        wanted: dict[int, list[int]] = {}
        where: list[tuple[int, int, Any]] = []  # per result: its table, its place among that table's rows, its key
        for source, row in found:
            if source < len(self.segments):
                table, at, pk = self.segments[source].table, row, self.segments[source].pks[row]
            else:
                (batch, at), pk = self.mt_refs[row], self.mt_pks[row]
                table = self.memtable._insert_batches[batch]
            rows = wanted.setdefault(id(table), [])
            tables[id(table)] = table
            where.append((id(table), len(rows), pk))
            rows.append(at)
        read = {key: rows_dicts(tables[key], rows, skip) for key, rows in wanted.items()}
        return [(fields.get(pk_field, pk), fields) for key, i, pk in where for fields in [read[key][i]]]


def rows_dicts(table: Any, rows: list[int], skip: set[str]) -> list[dict[str, Any]]:
    """Return rows of a segment's table or an unflushed batch as milvus-lite's row_to_dict does, less ``skip``."""
    names = [name for name in table.schema.names if name not in skip]
    columns = [table.column(name) for name in names]
    out = [{name: column[row].as_py() for name, column in zip(names, columns, strict=True)} for row in rows]
    for found in out:
        meta = found.get("$meta")  # dynamic fields, unpacked to the top level as milvus-lite does
        if isinstance(meta, str):
            try:
                meta = json.loads(meta)
            except ValueError:
                meta = None
        if isinstance(meta, dict):
            found.update(meta)
    return out


def few(ok: np.ndarray) -> bool:
    """Tell whether a filter leaves so few of a segment's rows that they are searched one by one.

    An HNSW graph searched with most of its rows excluded finds fewer than asked: 6 of an album's
    20 images at 20,000 (one-off, 2026-12-03). Milvus's own engine searches every allowed row once
    a filter excludes 93% of them; so does this.
    """
    return int(np.count_nonzero(ok)) * 100 <= ok.size * EXACT_PERCENT


EXACT_PERCENT = 7


@dataclass(frozen=True)
class _Unflushed:
    """The rows not yet flushed, as places among the kept unit vectors of their batches."""

    unit_rows: np.ndarray
    at: np.ndarray


class _Recall:
    """Each source's nearest rows among those allowed, merged as milvus-lite merges them."""

    def __init__(self, query: np.ndarray, top_k: int, metric: str, params: dict[str, Any] | None) -> None:
        self.query, self.top_k, self.metric, self.params = query, top_k, metric, params
        self.candidates: list[list[tuple[float, int, int]]] = [[] for _ in range(len(query))]

    def source(self, number: int, ok: np.ndarray, vectors: np.ndarray | _Unflushed, index: Any) -> None:
        """Search one source (a segment, or the unflushed rows) among its rows that are ``ok``."""
        from milvus_lite.index.brute_force import BruteForceIndex

        if not ok.any():
            return
        brute = index is None or type(index) is BruteForceIndex
        if brute and self.metric == "COSINE":  # the same numbers, from unit vectors kept between searches
            if isinstance(vectors, _Unflushed):
                cosine = distances(self.query, vectors.unit_rows, vectors.at)
            else:
                cosine = distances(self.query, SEGMENTS.of(vectors))
            rows, near = top(cosine, ok, self.top_k)
        elif self.metric == "COSINE" and isinstance(vectors, np.ndarray) and few(ok):
            allowed = np.flatnonzero(ok)  # a small album: every one of its rows, not the graph's few
            part = vectors[allowed]
            norms = np.linalg.norm(part, axis=1, keepdims=True)
            cosine = distances(self.query, part / np.where(norms == 0, 1.0, norms))
            picked, near = top(cosine, np.ones(allowed.size, dtype=bool), self.top_k)
            rows = np.where(picked >= 0, allowed[np.maximum(picked, 0)], -1)
        else:
            if isinstance(vectors, np.ndarray):
                SEGMENTS.forget(vectors)  # indexed since
            if index is None:
                index = BruteForceIndex.build(vectors, self.metric)
            rows, near = index.search(self.query, self.top_k, valid_mask=None if ok.all() else ok, params=self.params)
        for q, found in enumerate(self.candidates):
            for row, distance in zip(rows[q].tolist(), near[q].tolist(), strict=True):
                if row < 0:
                    break  # padding from here on
                found.append((float(distance), number, row))

    def best(self) -> list[list[tuple[float, int, int]]]:
        """Return each query's ``top_k`` candidates, nearest first (ties by source, then row)."""
        return [sorted(found)[: self.top_k] for found in self.candidates]
