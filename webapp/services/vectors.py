"""The vector store: one Milvus collection of image embeddings and the metadata a page needs.

``MilvusVectorStore`` talks to a Milvus server; on a Milvus Lite file it is a ``LiteVectorStore``
(services/lite_store.py), which reads from Lite's engine in this process and flushes on a schedule.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import grpc
import numpy as np
from pymilvus import MilvusClient
from pymilvus.exceptions import MilvusException

from webapp.config import is_server_uri
from webapp.errors import Conflict, StoreUnavailable
from webapp.services import milvus_schema as schema
from webapp.services.albums import milvus_filter
from webapp.services.coalesce import Coalescer
from webapp.services.records import Hit, Record, pk_of


class _NoIteratorTimestampWarning(logging.Filter):
    """Drop pymilvus's warning that a query iterator got no MVCC timestamp from its Milvus.

    Milvus Lite never sends one, nor a server before 2.4, so every pass over a library there (a
    duplicate scan, a reindex, a consistency check, ``db copy``) printed "failed to get mvccTs from
    milvus server, use client-side ts instead". The iterator then reads as of now, as the app wants.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("failed to get mvccTs")


ITERATOR_LOG = logging.getLogger("pymilvus.client.iterator.query_iterator")


class MilvusVectorStore:
    """A Milvus collection behind a small API; creates the collection and HNSW index if missing."""

    kind = "milvus-server"
    metric = schema.METRIC
    index_type = schema.INDEX_TYPE
    client_options: dict[str, Any] = {}  # pymilvus's defaults: keepalive pings tell a dead server early

    def __new__(cls, uri: str, *args: Any, **kwargs: Any) -> MilvusVectorStore:
        """Return a ``LiteVectorStore`` for a Milvus Lite file, this class for a server."""
        if cls is MilvusVectorStore and not is_server_uri(uri):
            from webapp.services.lite_store import LiteVectorStore

            return super().__new__(LiteVectorStore)
        return super().__new__(cls)

    def __init__(
        self,
        uri: str,
        collection: str,
        dim: int,
        token: str = "",
        hnsw_m: int = 16,
        ef_construction: int = 200,
        search_ef: int = 128,
        timeout: float = 10.0,
        consistency: str = "Strong",
        search_consistency: str = "Session",
        flush_seconds: float = 10.0,  # on Milvus Lite (LiteVectorStore); a server seals segments itself
        flush_rows: int = 512,
    ) -> None:
        self.uri = uri
        self.collection = collection
        self.dim = dim
        self.search_ef = search_ef
        self.timeout = timeout
        # Strong: what any worker wrote is visible to every other at once. On a server a Strong
        # read waits for the next time tick (proxy.timeTickInterval, 200 ms by default).
        self.consistency = consistency
        # Searches need not wait for a tick: Session sees this process's own writes at once (it
        # waits only for the timestamp of its last write), other processes' a moment later.
        self.search_consistency = search_consistency
        # Every write of this process goes through this lock (Milvus Lite loses rows when several
        # threads write to one file at once: DESIGN.md).
        self._write_lock = threading.Lock()
        self._searches = Coalescer(self._search_many)
        if not any(isinstance(f, _NoIteratorTimestampWarning) for f in ITERATOR_LOG.filters):
            ITERATOR_LOG.addFilter(_NoIteratorTimestampWarning())
        with store_errors(f"cannot open the vector store at {uri}"):
            self._client = MilvusClient(uri=uri, token=token, timeout=timeout, **self.client_options)
            self.has_albums = schema.ensure(self._client, collection, dim, hnsw_m, ef_construction)
        self._output = [*schema.FIELDS, "albums"] if self.has_albums else schema.FIELDS

    def album_filter(self, album: str) -> str:
        """Return the filter for ``album`` and its sub-albums; refuse it on a collection without albums."""
        if album and not self.has_albums:
            raise Conflict(
                "this library was created before albums, so it cannot be narrowed to one: copy it to a new "
                "collection with `flask --app wsgi migrate --to URI --collection NAME` (README, Albums)"
            )
        return milvus_filter(album)

    def upsert(self, items: Sequence[tuple[Record, np.ndarray]]) -> None:
        """Insert or replace the given records with their vectors, keyed by content id."""
        if not items:
            return
        rows = [schema.row(rec, vec, self.has_albums) for rec, vec in items]
        with self._write_lock:
            self._insert(rows)
            self._written(len(rows))

    def _insert(self, rows: list[dict[str, Any]]) -> None:
        """Write rows, replacing those of the same keys (under the write lock)."""
        self._call(self._client.upsert, self.collection, rows)

    def delete(self, sha256s: Sequence[str]) -> None:
        """Remove the given images' vectors."""
        if sha256s:
            with self._write_lock:
                self._call(self._client.delete, self.collection, ids=[pk_of(s) for s in sha256s])
                self._written(len(sha256s))

    def clear(self) -> None:
        """Delete every vector (keeping the collection and its index)."""
        with self._write_lock:
            self._call(self._client.delete, self.collection, filter="added_at >= 0 or added_at < 0")
            self._cleared()

    def _cleared(self) -> None:
        """Follow ``clear`` (under the write lock): flush, so that the server drops the rows soon."""
        self._flush()

    def vector(self, sha256: str) -> np.ndarray | None:
        """Return the stored vector of an image, or None."""
        rows = self._rows([pk_of(sha256)], ["sha256", "vector"], self.consistency)
        row = next((r for r in rows if r["sha256"] == sha256), None)
        return None if row is None else np.asarray(row["vector"], dtype=np.float32)

    def ids(self) -> dict[str, int]:
        """Return every indexed image's content id with its time added (ms)."""
        iterator = self._call(
            self._client.query_iterator, self.collection, batch_size=5000, output_fields=["sha256", "added_at"]
        )
        found: dict[str, int] = {}
        try:
            while rows := self._next(iterator):
                found.update((row["sha256"], row["added_at"]) for row in rows)
        finally:
            iterator.close()
        return found

    def albums(self) -> dict[str, str]:
        """Return every indexed image's album by content id (none on a collection made before albums)."""
        if not self.has_albums:
            return {}
        iterator = self._call(
            self._client.query_iterator, self.collection, batch_size=5000, output_fields=["sha256", "albums"]
        )
        found: dict[str, str] = {}
        try:
            while rows := self._next(iterator):
                found.update((row["sha256"], schema.record_album(row)) for row in rows)
        finally:
            iterator.close()
        return found

    def export(self, batch_size: int = 1000) -> Iterator[list[tuple[Record, np.ndarray]]]:
        """Yield every record with its vector, in batches (to copy a library to another store)."""
        iterator = self._call(
            self._client.query_iterator,
            self.collection,
            batch_size=batch_size,
            output_fields=[*self._output, "vector"],
        )
        try:
            while rows := self._next(iterator):
                yield [(schema.record(row), np.asarray(row["vector"], dtype=np.float32)) for row in rows]
        finally:
            iterator.close()

    def search(self, vector: np.ndarray, top_k: int, album: str = "") -> list[Hit]:
        """Return the ``top_k`` nearest images by cosine similarity, best first (in ``album`` if given).

        Searches made meanwhile by other threads with the same filter and ``ef`` go in one call.
        """
        expr = self.album_filter(album)
        return self._searches((expr, max(self.search_ef, top_k)), (vector, top_k))

    def search_many(self, vectors: Sequence[np.ndarray], top_k: int, album: str = "") -> list[list[Hit]]:
        """Return, for each vector, its ``top_k`` nearest images, best first (in ``album``), in one call."""
        if not vectors:
            return []
        key = (self.album_filter(album), max(self.search_ef, top_k))
        return self._search_many(key, [(vector, top_k) for vector in vectors])

    def _search_many(self, key: tuple[str, int], queries: list[tuple[np.ndarray, int]]) -> list[list[Hit]]:
        """Search several vectors in one call (the same filter and ``ef``: each gets what it would alone)."""
        expr, ef = key
        data = [np.asarray(vector, dtype=np.float32) for vector, _ in queries]
        result = self._search(data, expr, max(top_k for _, top_k in queries), self._output, ef)
        return [
            [Hit(schema.record(hit["entity"]), float(hit["distance"])) for hit in hits[:top_k]]
            for hits, (_, top_k) in zip(result, queries, strict=True)
        ]

    def neighbours(self, vectors: Sequence[np.ndarray], top_k: int) -> list[list[tuple[str, float]]]:
        """Return, for each vector, the content ids and similarities of its ``top_k`` nearest images."""
        data = [np.asarray(v, dtype=np.float32) for v in vectors]
        result = self._search(data, "", top_k, ["sha256"], max(self.search_ef, top_k))
        return [[(hit["entity"]["sha256"], float(hit["distance"])) for hit in hits] for hits in result]

    def _search(self, data: list[np.ndarray], expr: str, limit: int, fields: list[str], ef: int) -> Any:
        """Search the collection for each of ``data``'s vectors (float32 arrays)."""
        return self._call(
            self._client.search,
            self.collection,
            data=[vector.tolist() for vector in data],  # pymilvus sends lists of floats
            anns_field="vector",
            filter=expr,
            limit=limit,
            output_fields=fields,
            search_params={"metric_type": self.metric, "params": {"ef": ef}},
            consistency_level=self.search_consistency,
        )

    def _rows(self, pks: list[int], fields: list[str], consistency: str) -> Any:
        """Return the rows of those primary keys that exist."""
        return self._call(
            self._client.get, self.collection, ids=pks, output_fields=fields, consistency_level=consistency
        )

    def vectors(self, sha256s: Iterable[str]) -> dict[str, np.ndarray]:
        """Return the stored vectors of those of ``sha256s`` that are indexed, by content id."""
        wanted = {pk_of(s): s for s in sha256s}
        found: dict[str, np.ndarray] = {}
        keys = list(wanted)
        for start in range(0, len(keys), 500):
            rows = self._rows(keys[start : start + 500], ["sha256", "vector"], self.consistency)
            found.update(
                (r["sha256"], np.asarray(r["vector"], dtype=np.float32)) for r in rows if r["sha256"] in wanted.values()
            )
        return found

    def entries(self, sha256s: Iterable[str]) -> dict[str, tuple[Record, np.ndarray]]:
        """Return the records and vectors of those of ``sha256s`` that are indexed, by content id."""
        wanted = {pk_of(s): s for s in sha256s}
        found: dict[str, tuple[Record, np.ndarray]] = {}
        keys = list(wanted)
        for start in range(0, len(keys), 500):
            rows = self._rows(keys[start : start + 500], [*self._output, "vector"], self.consistency)
            for row in rows:
                rec = schema.record(row)
                if wanted.get(pk_of(rec.sha256)) == rec.sha256:
                    found[rec.sha256] = (rec, np.asarray(row["vector"], dtype=np.float32))
        return found

    def get(self, sha256s: Iterable[str], fresh: bool = True) -> dict[str, Record]:
        """Return the records of those of ``sha256s`` that are indexed, by sha256.

        ``fresh=False`` may miss writes of the last moments (Bounded consistency): on a server it
        does not wait for the next time tick. For hints only, such as skipping known files early.
        """
        wanted = {pk_of(s): s for s in sha256s}
        if not wanted:
            return {}
        rows = self._rows(list(wanted), self._output, self.consistency if fresh else "Bounded")
        # Compare the whole sha256, not just the 8-byte key, and key by it: a server may
        # return rows in any order.
        found = (schema.record(row) for row in rows)
        return {rec.sha256: rec for rec in found if wanted.get(pk_of(rec.sha256)) == rec.sha256}

    def count(self) -> int:
        """Return the number of indexed images."""
        rows = self._call(
            self._client.query, self.collection, output_fields=["count(*)"], consistency_level=self.consistency
        )
        return int(rows[0]["count(*)"])

    def flush(self) -> None:
        """Persist what has been written so far, and have it indexed."""
        with self._write_lock:
            self._flush()

    def checkpoint(self) -> None:
        """Make what was written so far survive a crash: nothing to do on a server.

        A server logs every write as it arrives and seals segments by itself; flushing after each
        job cost a worker about 3 s and leaves small segments, which Milvus's docs advise against.
        """

    def _flush(self) -> None:
        """Flush (under the write lock)."""
        self._call(self._client.flush, self.collection)

    def _written(self, rows: int) -> None:
        """Count rows written (under the write lock): a server needs no count."""

    def drop(self) -> None:
        """Delete the whole collection (a library's retired one, after a reindex) and close the client."""
        try:
            self._call(self._client.drop_collection, self.collection)
        finally:
            self._client.close()

    def close(self) -> None:
        """Close the client; nothing to flush on a server.

        A server logs every write as it arrives (``checkpoint``), and Milvus's docs advise relying
        on its own flushes: one at each worker's stop cost the stop about 2 s and left a small segment.
        """
        self._client.close()

    def _call(self, method: Any, *args: Any, **kwargs: Any) -> Any:
        """Call the client (or Lite's engine), its failures as ``StoreUnavailable``."""
        return self._invoke(method, *args, **kwargs)

    def _invoke(self, method: Any, *args: Any, **kwargs: Any) -> Any:
        with store_errors():
            return method(*args, timeout=self.timeout, **kwargs)

    @staticmethod
    def _next(iterator: Any) -> list[dict[str, Any]]:
        """Return a query iterator's next batch (empty at the end), its failures as ``StoreUnavailable``."""
        with store_errors():
            return list(iterator.next())


@contextmanager
def store_errors(context: str = "the vector store failed") -> Iterator[None]:
    """Turn the Milvus client's failures into ``StoreUnavailable`` (503), prefixed with ``context``.

    pymilvus passes some gRPC errors on as they are, not as its own: a call past its deadline (a
    server too busy to answer in MILVUS_TIMEOUT seconds) raised grpc's, which answered 500, and
    killed Milvus Lite's flusher thread when a flush waited for a merge.
    """
    try:
        yield
    except MilvusException as exc:
        raise StoreUnavailable(f"{context}: {exc.message}") from exc
    except grpc.RpcError as exc:
        code = exc.code() if isinstance(exc, grpc.Call) else None
        if code == grpc.StatusCode.DEADLINE_EXCEEDED:
            raise StoreUnavailable(f"{context}: it did not answer in time") from exc
        details = exc.details() if isinstance(exc, grpc.Call) else str(exc)
        raise StoreUnavailable(f"{context}: {getattr(code, 'name', 'gRPC error')}: {details}") from exc
