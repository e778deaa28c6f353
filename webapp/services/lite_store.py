"""The vector store on a Milvus Lite file: read from Lite's engine in this process, flushed on a schedule."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from pymilvus.exceptions import MilvusException

from webapp.errors import StoreUnavailable
from webapp.services.flushing import FlushSchedule
from webapp.services.gate import Gate
from webapp.services.lite import LiteEngine, arrow_on_malloc, faster_unflushed_search, faster_vector_checks
from webapp.services.lite_maintenance import (
    faster_flush_table,
    merges_done,
    plain_vector_files,
    searches_beside_merges,
    wait_for_merges,
)
from webapp.services.lite_search import faster_search
from webapp.services.records import Hit
from webapp.services.vectors import MilvusVectorStore

log = logging.getLogger(__name__)

# Rows a write may leave unflushed before it flushes them itself, waiting for a merge if need be.
# milvus-lite flushes on its own once its write buffer holds 128 MB (about 25,000 of these rows),
# in the writing call, beside searches: they then miss the rows being flushed, or wait for a merge.
BACKLOG_ROWS = 16_384


class LiteVectorStore(MilvusVectorStore):
    """A library's collection in a Milvus Lite file, which one process at a time may open.

    Writes flush on a schedule, never per request (services/flushing.py), or once BACKLOG_ROWS
    wait; a flush waits for a merge under way, then runs alone (services/gate.py). Reads, searches,
    inserts and flushes go to Lite's engine in this process (services/lite.py) rather than through
    its gRPC server, unless ``direct`` is turned off.
    """

    kind = "milvus-lite"
    # pymilvus pings its server every 10 s even with no call in flight, and Milvus Lite's gRPC
    # server (in this process) now and then answers such pings with a GOAWAY ("too_many_pings",
    # logged as an error) before the channel reconnects. A server in this process cannot vanish
    # unnoticed: no pings without calls.
    client_options = {"grpc_options": {"grpc.keepalive_permit_without_calls": 0}}

    def __init__(
        self,
        uri: str,
        collection: str,
        dim: int,
        *args: Any,
        flush_seconds: float = 10.0,
        flush_rows: int = 512,
        **kwargs: Any,
    ) -> None:
        Path(uri).parent.mkdir(parents=True, exist_ok=True)
        arrow_on_malloc()
        faster_unflushed_search()
        faster_search()
        faster_vector_checks()
        faster_flush_table()
        plain_vector_files()
        searches_beside_merges()
        self.direct = True
        try:
            super().__init__(uri, collection, dim, *args, **kwargs)
        except StoreUnavailable as exc:
            cause = exc.__cause__
            if isinstance(cause, MilvusException) and cause.message == "Open local milvus failed":
                raise StoreUnavailable(
                    f"the Milvus Lite file {uri} is in use by another process (a running server?): "
                    "Milvus Lite allows one process per file"
                ) from cause
            raise
        self._gate = Gate(self.timeout)
        self._schedule = FlushSchedule(self._scheduled_flush, flush_seconds, flush_rows)
        self._schedule.start()  # from the opening thread, whose priority flushes keep

    def _engine(self) -> LiteEngine | None:
        """Return Milvus Lite's engine in this process, or None to go through its gRPC server."""
        return LiteEngine.find(self.uri, self.collection) if self.direct else None

    def _insert(self, rows: list[dict[str, Any]]) -> None:
        engine = self._engine()
        if engine is None:
            super()._insert(rows)
        else:
            self._call(engine.insert, rows)

    def search(self, vector: np.ndarray, top_k: int, album: str = "") -> list[Hit]:
        """Search as a server does; a search made also makes the flush schedule keep few rows waiting."""
        self._schedule.search_made()
        return super().search(vector, top_k, album)

    def search_many(self, vectors: Sequence[np.ndarray], top_k: int, album: str = "") -> list[list[Hit]]:
        """Search several vectors in one call, as ``search`` searches one."""
        self._schedule.search_made()
        return super().search_many(vectors, top_k, album)

    def _search(self, data: list[np.ndarray], expr: str, limit: int, fields: list[str], ef: int) -> Any:
        engine = self._engine()
        if engine is None:
            return super()._search(data, expr, limit, fields, ef)
        return self._call(engine.search, data, expr, limit, fields, ef, self.metric)

    def _rows(self, pks: list[int], fields: list[str], consistency: str) -> Any:
        engine = self._engine()
        return super()._rows(pks, fields, consistency) if engine is None else self._call(engine.get, pks, fields)

    def count(self) -> int:
        """Return the number of indexed images."""
        engine = self._engine()
        return super().count() if engine is None else int(self._call(engine.count))

    def checkpoint(self) -> None:
        """Make what was written so far survive a crash: flush.

        Milvus Lite searches rows that are not flushed yet by brute force (``bench/store.py``);
        after a flush it builds their HNSW index in the background within seconds.
        """
        self.flush()

    def _flush(self) -> None:
        engine = self._engine()
        if engine is None:
            with self._gate.alone():
                self._invoke(self._client.flush, self.collection)
        else:
            # A merge holds the lock a flush needs: wait for it before holding the other calls.
            with merges_done(engine.collection), self._gate.alone():
                engine.flush()
        self._schedule.flushed()

    @property
    def unflushed(self) -> int:
        """Return how many rows were written since the last flush."""
        return self._schedule.unflushed

    def _written(self, rows: int) -> None:
        self._schedule.written(rows)
        if self._schedule.unflushed >= BACKLOG_ROWS:  # the schedule's flush waits for a long merge
            try:
                self._flush()
            except StoreUnavailable as exc:  # the rows are written: the next write or tick flushes them
                log.warning("could not flush %s after %d rows: %s", self.collection, self.unflushed, exc.message)

    def _cleared(self) -> None:
        """Leave the deletes of ``clear`` to the schedule: emptying the library is a request, and a flush
        waits for a merge under way (10-27 s at 100,000 images). Until then they are in Lite's log."""
        self._written(1)

    def _scheduled_flush(self) -> None:
        """Flush what the schedule says is due (from its thread); a failure is retried at its next tick.

        A merge under way is waited for first, holding nothing: writes go on meanwhile.
        """
        try:
            engine = self._engine()
            if engine is not None:
                wait_for_merges(engine.collection)
            with self._write_lock:
                if self._schedule.due():
                    self._flush()
        except StoreUnavailable as exc:
            log.warning("scheduled flush of %s failed: %s", self.collection, exc.message)

    def drop(self) -> None:
        """Stop the flush schedule, then delete the collection and close the client."""
        self._schedule.stop(self.timeout)
        super().drop()

    def close(self) -> None:
        """Stop the flush schedule, then flush, so that a graceful stop loses nothing, and close the client."""
        self._schedule.stop(self.timeout)
        try:
            self.flush()
        except StoreUnavailable as exc:
            log.warning("could not flush %s before closing: %s", self.collection, exc.message)
        finally:
            super().close()

    def _call(self, method: Any, *args: Any, **kwargs: Any) -> Any:
        with self._gate.call():
            return self._invoke(method, *args, **kwargs)
