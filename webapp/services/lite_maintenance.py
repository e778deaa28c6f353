"""Milvus Lite's flushes shorter, and its merges out of searches' way (milvus-lite 3.2.2 only).

A flush holds every call of the store until it is done (services/gate.py): on milvus-lite 3.2.2 a
search made meanwhile can miss the rows being flushed. Of its 84-104 ms for 512 rows (a one-off
profile, 2026-12-02), two steps were most of it:

- building the rows' Arrow table, one Python object per value (655,360 floats for 512 vectors):
  40 ms, all of it holding the interpreter lock. ``faster_flush_table`` gathers the same rows
  from the write buffer's Arrow batches with one ``take``;
- writing the Parquet file: 28 ms, of which 18 went to dictionary-encoding the vectors' floats,
  which are all different (pyarrow tries, then gives up after 1 MB), leaving a larger file (3.2 MB
  against 2.6). ``plain_vector_files`` writes dense vector columns plain; every other column
  keeps its dictionary. Segment merges write through the same function.

Both make the same table and the same values in an ordinary Parquet file, which any milvus-lite
reads (``tests/test_lite_maintenance.py``). ``bench/lite_search.py`` times a flush both ways.

A merge of segments, in milvus-lite's background thread, holds the collection's lock while it
reads, merges and writes them again: 200-350 ms for a few thousand rows, more as they grow, and
every search, read and count waited for it, since each takes its snapshot (the segments and the
deletes) under that lock. ``searches_beside_merges`` has them take, while a merge holds the lock,
the last snapshot taken: the state as of the last flush, which the merge does not change (the
same rows, in fewer files). Milvus-lite itself reads evicted segments that way ("operating on an
evicted Segment is still correct"). Any other holder of the lock (a flush, an index being made)
is still waited for.

A flush, though, must wait for a merge: both hold that lock. It waits before it holds the store's
other calls (``merges_done``), and reads meanwhile take the last snapshot too, which the flush has
not changed yet. At 100,000 images a merge held the lock past the store's timeout while the flush
held every search: the flush failed with DEADLINE_EXCEEDED, a search got 503, and the flush itself
went on in milvus-lite's gRPC thread, beside whatever the app wrote next.
"""

from __future__ import annotations

import logging
import os
import time
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from webapp.errors import StoreUnavailable
from webapp.services.lite import replace_piece

log = logging.getLogger(__name__)

# How long a flush waits for a merge of segments before it gives up (the schedule tries again).
MERGE_WAIT = 60.0
LOGGED_WAIT = 1.0  # a wait this long or longer is logged
# While another holder has a collection's lock, how often a read looks again whether it may take
# the last snapshot instead (a merge, or a flush waiting for one, may have started meanwhile).
READ_RETRY = 0.01


def faster_flush_table() -> bool:
    """Have Milvus Lite build a flush's table from its Arrow batches in one step; return whether it does."""
    from milvus_lite.storage.memtable import MemTable

    return replace_piece(MemTable, "_build_data_table", _taken)


def plain_vector_files() -> bool:
    """Have Milvus Lite write vector columns without a dictionary; return whether it does."""
    import milvus_lite.engine.compaction as compaction
    import milvus_lite.engine.flush as flush

    return all(replace_piece(module, "write_data_file", _plain) for module in (flush, compaction))


def _taken(original: Callable[..., Any]) -> Callable[..., Any]:
    import numpy as np
    import pyarrow as pa

    def build_data_table(self: Any, rows: list[tuple[int, int]]) -> pa.Table:
        """Return the table of ``rows`` ((batch, row) pairs, in order), as milvus-lite's own method does."""
        batches = self._insert_batches
        try:
            whole = pa.Table.from_batches(batches).select(self._data_schema.names)
        except (pa.ArrowInvalid, KeyError):  # batches of different schemas: milvus-lite's own way copes
            return original(self, rows)
        starts = np.cumsum([0] + [batch.num_rows for batch in batches])
        pairs = np.array(rows, dtype=np.int64).reshape(-1, 2)
        at = starts[pairs[:, 0]] + pairs[:, 1]  # each row's place in ``whole``
        return whole.take(pa.array(at)).cast(self._data_schema).combine_chunks()

    build_data_table.__wrapped__ = original  # type: ignore[attr-defined]
    return build_data_table


def _plain(original: Callable[..., Any]) -> Callable[..., Any]:
    import pyarrow.parquet as pq
    from milvus_lite.storage import data_file

    def write_data_file(table: Any, partition_dir: str, seq_min: int, seq_max: int) -> str:
        """Write ``table`` where milvus-lite's own function does, its vector columns plain."""
        name = data_file.DATA_FILE_TEMPLATE.format(min=seq_min, max=seq_max, w=data_file.SEQ_FORMAT_WIDTH)
        os.makedirs(os.path.join(partition_dir, "data"), exist_ok=True)
        pq.write_table(table, os.path.join(partition_dir, "data", name), use_dictionary=dictionary_columns(table))
        return str(data_file.persisted_rel_path("data", name))

    write_data_file.__wrapped__ = original  # type: ignore[attr-defined]
    return write_data_file


def dictionary_columns(table: Any) -> list[str]:
    """Return the Parquet paths of ``table``'s columns that keep a dictionary: all but dense vectors."""
    import pyarrow as pa

    paths = []
    for field in table.schema:
        if pa.types.is_fixed_size_list(field.type):
            continue  # a dense vector: its values are all different
        paths.append(f"{field.name}.list.element" if pa.types.is_list(field.type) else field.name)
    return paths


def searches_beside_merges() -> bool:
    """Have Milvus Lite's reads not wait for a background merge; return whether they do not."""
    from milvus_lite.engine.collection import Collection

    kept = _SNAPSHOTS
    pieces = {
        "_read_snapshot": kept.reading,
        "_refresh_segment_cache": kept.refreshing,
        "_trigger_flush": kept.flushing,
        "_bg_compact_and_index": kept.merging,
        "_ensure_loaded_segments_indexed": kept.indexing,
    }
    return all(replace_piece(Collection, name, wrap) for name, wrap in pieces.items())


@contextmanager
def merges_done(collection: Any, timeout: float = MERGE_WAIT) -> Iterator[None]:
    """Hold ``collection``'s lock, once no merge holds it, for a flush; reads meanwhile take the last snapshot.

    Waits up to ``timeout`` seconds, then raises ``StoreUnavailable`` with nothing started. The
    lock is re-entrant: milvus-lite's flush, called in this thread, takes it again. Without
    ``searches_beside_merges`` in place (another milvus-lite), reads would wait for the lock held
    here: then nothing is held, and the flush waits for the merge as milvus-lite's own does.
    """
    if not _SNAPSHOTS.in_place:
        yield
        return
    lock = collection._maintenance_lock
    started = time.monotonic()
    if not lock.acquire(timeout=timeout):
        raise StoreUnavailable("the vector store is busy merging segments; try again")
    if (waited := time.monotonic() - started) >= LOGGED_WAIT:
        log.info("a flush of %s waited %.1f s for a merge of its segments", collection.name, waited)
    try:
        _SNAPSHOTS.hold(collection)
        yield
    finally:
        _SNAPSHOTS.holding_now.discard(collection)
        lock.release()


def wait_for_merges(collection: Any, timeout: float = MERGE_WAIT) -> None:
    """Wait until no merge holds ``collection``'s lock (holding nothing meanwhile); raise as ``merges_done``."""
    with merges_done(collection, timeout):
        pass


def _kept_if_failed(flush: Callable[[Any], None], original: Callable[[Any], None]) -> Callable[[Any], None]:
    """Give a collection back the rows a failed flush was writing out.

    milvus-lite 3.2.2 swaps in an empty write buffer and write-ahead log before it writes the old
    ones' rows to a Parquet file, and drops the old ones if that fails: with the data folder full,
    316 images answered 201, then vanished from searches and counts, and the next flush that
    succeeded deleted their log (a 6 MB tmpfs as DATA_DIR). The old buffer is left whole by a
    flush, and the new one holds nothing yet (a flush keeps every writer out). A flush that failed
    after its commit (scheduling the merge that follows, at the interpreter's exit) keeps its result.
    """

    def trigger_flush(collection: Any) -> None:
        memtable, wal = collection._memtable, collection._wal
        try:
            flush(collection)
        except BaseException:
            committed = wal._closed  # the old log is closed once the manifest names the new file
            if collection._memtable is not memtable and collection._memtable.size() == 0 and not committed:
                fresh, collection._memtable, collection._wal = collection._wal, memtable, wal
                fresh.close_and_delete()  # never written: no file to remove
            raise

    trigger_flush.__wrapped__ = original  # type: ignore[attr-defined]
    return trigger_flush


class _Snapshots:
    """Each collection's last snapshot, taken under its lock, and whether it is flushing or merging now.

    Merging, for milvus-lite's background task, lasts until it releases the lock to build indexes.
    Holding, for a flush that has waited for a merge (``merges_done``), lasts until its own flush
    starts.
    """

    def __init__(self) -> None:
        self._read: Callable[[Any], Any] | None = None  # milvus-lite's own: under the (re-entrant) lock
        self.last: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()
        self.flushing_now: weakref.WeakSet[Any] = weakref.WeakSet()
        self.merging_now: weakref.WeakSet[Any] = weakref.WeakSet()
        self.holding_now: weakref.WeakSet[Any] = weakref.WeakSet()

    @property
    def in_place(self) -> bool:
        """Tell whether milvus-lite's reads go through ``reading``."""
        return self._read is not None

    def hold(self, collection: Any) -> None:
        """Have reads take the state as it is now (the caller holds the lock) until the flush starts."""
        assert self._read is not None
        self.last[collection] = self._read(collection)
        self.holding_now.add(collection)

    def reading(self, original: Callable[[Any], Any]) -> Callable[[Any], Any]:
        self._read = original

        def read_snapshot(collection: Any) -> Any:
            """Return a consistent snapshot: a fresh one, or the last one while a merge holds the lock.

            So too while a flush holds it waiting for the store's calls in flight (this one among
            them) to end. Any other holder (a flush under way, an index being made) is waited for.
            """
            lock = collection._maintenance_lock
            acquired = lock.acquire(blocking=False)
            while not acquired:
                if collection not in self.flushing_now and (
                    collection in self.merging_now or collection in self.holding_now
                ):
                    snapshot = self.last.get(collection)
                    if snapshot is not None:
                        return snapshot
                acquired = lock.acquire(timeout=READ_RETRY)
            try:
                snapshot = self.last[collection] = original(collection)  # kept under the (re-entrant) lock
                return snapshot
            finally:
                lock.release()

        read_snapshot.__wrapped__ = original  # type: ignore[attr-defined]
        return read_snapshot

    def refreshing(self, original: Callable[[Any], None]) -> Callable[[Any], None]:
        def refresh_segment_cache(collection: Any) -> None:
            """Load the segments the manifest names (under the lock), then keep the new snapshot."""
            original(collection)
            if self._read is not None and hasattr(collection, "_maintenance_lock"):  # not while it is being made
                self.last[collection] = self._read(collection)

        refresh_segment_cache.__wrapped__ = original  # type: ignore[attr-defined]
        return refresh_segment_cache

    def flushing(self, original: Callable[[Any], None]) -> Callable[[Any], None]:
        return _kept_if_failed(self._during(original, self.flushing_now), original)

    def merging(self, original: Callable[[Any], None]) -> Callable[[Any], None]:
        return self._during(original, self.merging_now)

    def indexing(self, original: Callable[[Any], int]) -> Callable[[Any], int]:
        def ensure_loaded_segments_indexed(collection: Any) -> int:
            """Index the new segments: the merge's second step, which releases the lock first."""
            self.merging_now.discard(collection)
            return original(collection)

        ensure_loaded_segments_indexed.__wrapped__ = original  # type: ignore[attr-defined]
        return ensure_loaded_segments_indexed

    @staticmethod
    def _during(original: Callable[[Any], None], now: weakref.WeakSet[Any]) -> Callable[[Any], None]:
        def step(collection: Any) -> None:
            now.add(collection)
            try:
                original(collection)
            finally:
                now.discard(collection)

        step.__wrapped__ = original  # type: ignore[attr-defined]
        return step


_SNAPSHOTS = _Snapshots()  # in milvus-lite's collections once ``searches_beside_merges`` put it there
