"""The vector store: one Milvus collection of image embeddings and the metadata a page needs."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from pymilvus import CollectionSchema, DataType, MilvusClient
from pymilvus.exceptions import MilvusException
from pymilvus.milvus_client.index import IndexParams

from webapp.config import is_server_uri
from webapp.errors import Conflict, StoreUnavailable
from webapp.services.albums import MAX_DEPTH, lineage, milvus_filter
from webapp.services.coalesce import Coalescer
from webapp.services.flushing import FlushSchedule
from webapp.services.lite import FloatRow, LiteEngine, arrow_on_malloc, faster_unflushed_search, faster_vector_checks
from webapp.services.lite_search import faster_search

log = logging.getLogger(__name__)
FIELDS = ["sha256", "filename", "width", "height", "source", "mime", "added_at"]


def pk_of(sha256: str) -> int:
    """Return the primary key of an image: the first 8 bytes of its SHA-256 as a signed int64."""
    return int.from_bytes(bytes.fromhex(sha256[:16]), "big", signed=True)


@dataclass(frozen=True)
class Record:
    """What the library knows about one indexed image."""

    sha256: str
    filename: str
    width: int
    height: int
    source: str
    mime: str
    added_at: int  # milliseconds since the epoch
    album: str = ""  # the folder it was loaded from, relative to the loaded root ("" for none)


@dataclass(frozen=True)
class Hit:
    """One search result: a record and its cosine similarity to the query."""

    record: Record
    score: float


class VectorStore(Protocol):
    """What the library needs of a vector store (Milvus Lite file or Milvus server)."""

    kind: str
    index_type: str
    metric: str

    def upsert(self, items: Sequence[tuple[Record, np.ndarray]]) -> None: ...
    def delete(self, sha256s: Sequence[str]) -> None: ...
    def clear(self) -> None: ...
    def ids(self) -> dict[str, int]: ...
    def vector(self, sha256: str) -> np.ndarray | None: ...
    def flush(self) -> None: ...
    def checkpoint(self) -> None: ...
    def search(self, vector: np.ndarray, top_k: int, album: str = "") -> list[Hit]: ...
    def album_filter(self, album: str) -> str: ...
    def export(self, batch_size: int = 1000) -> Iterator[list[tuple[Record, np.ndarray]]]: ...
    def neighbours(self, vectors: Sequence[np.ndarray], top_k: int) -> list[list[tuple[str, float]]]: ...
    def vectors(self, sha256s: Iterable[str]) -> dict[str, np.ndarray]: ...
    def get(self, sha256s: Iterable[str], fresh: bool = True) -> dict[str, Record]: ...
    def count(self) -> int: ...
    def close(self) -> None: ...


class MilvusVectorStore:
    """A Milvus collection behind a small API; creates the collection and HNSW index if missing."""

    metric = "COSINE"
    index_type = "HNSW"

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
        flush_seconds: float = 10.0,
        flush_rows: int = 512,
    ) -> None:
        self.uri = uri
        self.kind = "milvus-server" if is_server_uri(uri) else "milvus-lite"
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
        # Milvus Lite loses rows when several threads write to one file at once (DESIGN.md):
        # every write goes through this lock.
        self._write_lock = threading.Lock()
        # On Milvus Lite a search that runs during a flush can find nothing (milvus-lite 3.2.2):
        # a flush waits for calls in flight, and calls made meanwhile wait for it.
        self._gate = threading.Condition()
        self._in_flight = 0
        self._exclusive_held = False
        self._index = (hnsw_m, ef_construction)
        # On Milvus Lite, writes flush on a schedule, never per request (services/flushing.py).
        self._schedule = FlushSchedule(self._scheduled_flush, flush_seconds, flush_rows)
        self._searches = Coalescer(self._search_many)
        self.direct = True  # on Milvus Lite, read from its engine in this process (_lite_engine)
        if self.kind == "milvus-lite":
            Path(uri).parent.mkdir(parents=True, exist_ok=True)
            arrow_on_malloc()
            faster_unflushed_search()
            faster_search()
            faster_vector_checks()
        try:
            self._client = MilvusClient(uri=uri, token=token, timeout=timeout)
            self._ensure_collection()
        except MilvusException as exc:
            if self.kind == "milvus-lite" and "Open local milvus failed" == exc.message:
                raise StoreUnavailable(
                    f"the Milvus Lite file {uri} is in use by another process (a running server?): "
                    "Milvus Lite allows one process per file"
                ) from exc
            raise StoreUnavailable(f"cannot open the vector store at {uri}: {exc.message}") from exc
        if self.kind == "milvus-lite":
            self._schedule.start()  # from the opening thread, whose priority flushes keep

    def _ensure_collection(self) -> None:
        """Create the collection and its index if missing; safe when several workers race."""
        client = self._client
        if not client.has_collection(self.collection):
            try:
                client.create_collection(self.collection, schema=self._schema(), consistency_level="Strong")
            except MilvusException:
                if not client.has_collection(self.collection):  # not another worker's win: a real error
                    raise
        if not client.list_indexes(self.collection):
            try:
                # sync=False: Milvus Lite does not implement the call a synchronous build waits on.
                client.create_index(self.collection, self._index_params(), sync=False)
            except MilvusException:
                if not client.list_indexes(self.collection):
                    raise
        client.load_collection(self.collection)
        fields = {f["name"] for f in client.describe_collection(self.collection)["fields"]}
        # Collections made before albums lack the field (Milvus 2.3 cannot add one): no album filters there.
        self.has_albums = "albums" in fields
        self._output = [*FIELDS, "albums"] if self.has_albums else FIELDS

    def _schema(self) -> CollectionSchema:
        schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
        schema.add_field("pk", DataType.INT64, is_primary=True)
        schema.add_field("vector", DataType.FLOAT_VECTOR, dim=self.dim)
        schema.add_field("sha256", DataType.VARCHAR, max_length=64)
        schema.add_field("filename", DataType.VARCHAR, max_length=1024)
        schema.add_field("width", DataType.INT32)
        schema.add_field("height", DataType.INT32)
        schema.add_field("source", DataType.VARCHAR, max_length=64)
        schema.add_field("mime", DataType.VARCHAR, max_length=64)
        schema.add_field("added_at", DataType.INT64)
        # The album and every album above it: "in this album or below" is one array_contains.
        schema.add_field(
            "albums", DataType.ARRAY, element_type=DataType.VARCHAR, max_capacity=MAX_DEPTH, max_length=512
        )
        return schema

    def _row(self, rec: Record, vec: np.ndarray) -> dict[str, Any]:
        row: dict[str, Any] = {"pk": pk_of(rec.sha256), "vector": FloatRow(vec.astype(np.float32).tolist())}
        row |= {name: getattr(rec, name) for name in FIELDS}
        if self.has_albums:
            row["albums"] = lineage(rec.album)
        return row

    def album_filter(self, album: str) -> str:
        """Return the filter for ``album`` and its sub-albums; refuse it on a collection without albums."""
        if album and not self.has_albums:
            raise Conflict(
                "this library was created before albums, so it cannot be narrowed to one: copy it to a new "
                "collection with `flask --app wsgi migrate --to URI --collection NAME` (README, Albums)"
            )
        return milvus_filter(album)

    def _index_params(self) -> IndexParams:
        hnsw_m, ef_construction = self._index
        index = MilvusClient.prepare_index_params()
        # Build params must be nested under "params" or Milvus silently ignores them.
        index.add_index(
            field_name="vector",
            index_type=self.index_type,
            metric_type=self.metric,
            params={"params": {"M": hnsw_m, "efConstruction": ef_construction}},
        )
        return index

    def upsert(self, items: Sequence[tuple[Record, np.ndarray]]) -> None:
        """Insert or replace the given records with their vectors, keyed by content id."""
        if not items:
            return
        rows = [self._row(rec, vec) for rec, vec in items]
        engine = self._lite_engine()
        with self._write_lock:
            if engine is not None:
                self._call(engine.insert, rows)
            else:
                self._call(self._client.upsert, self.collection, rows)
            self._written(len(rows))

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
            while rows := iterator.next():
                found.update((row["sha256"], row["added_at"]) for row in rows)
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
            while rows := iterator.next():
                yield [(_record(row), np.asarray(row["vector"], dtype=np.float32)) for row in rows]
        finally:
            iterator.close()

    def search(self, vector: np.ndarray, top_k: int, album: str = "") -> list[Hit]:
        """Return the ``top_k`` nearest images by cosine similarity, best first (in ``album`` if given).

        Searches made meanwhile by other threads with the same filter and ``ef`` go in one call.
        """
        expr = self.album_filter(album)
        self._schedule.search_made()
        return self._searches((expr, max(self.search_ef, top_k)), (vector, top_k))

    def _search_many(self, key: tuple[str, int], queries: list[tuple[np.ndarray, int]]) -> list[list[Hit]]:
        """Search several vectors in one call (the same filter and ``ef``: each gets what it would alone)."""
        expr, ef = key
        data = [vector.astype(np.float32).tolist() for vector, _ in queries]
        result = self._search(data, expr, max(top_k for _, top_k in queries), self._output, ef)
        return [
            [Hit(_record(hit["entity"]), float(hit["distance"])) for hit in hits[:top_k]]
            for hits, (_, top_k) in zip(result, queries, strict=True)
        ]

    def neighbours(self, vectors: Sequence[np.ndarray], top_k: int) -> list[list[tuple[str, float]]]:
        """Return, for each vector, the content ids and similarities of its ``top_k`` nearest images."""
        data = [np.asarray(v, dtype=np.float32).tolist() for v in vectors]
        result = self._search(data, "", top_k, ["sha256"], max(self.search_ef, top_k))
        return [[(hit["entity"]["sha256"], float(hit["distance"])) for hit in hits] for hits in result]

    def _search(self, data: list[list[float]], expr: str, limit: int, fields: list[str], ef: int) -> Any:
        """Search (on Milvus Lite, its engine in this process)."""
        engine = self._lite_engine()
        if engine is not None:
            return self._call(engine.search, data, expr, limit, fields, ef, self.metric)
        return self._call(
            self._client.search,
            self.collection,
            data=data,
            anns_field="vector",
            filter=expr,
            limit=limit,
            output_fields=fields,
            search_params={"metric_type": self.metric, "params": {"ef": ef}},
            consistency_level=self.search_consistency,
        )

    def _rows(self, pks: list[int], fields: list[str], consistency: str) -> Any:
        """Return the rows of those primary keys that exist (on Milvus Lite, from its engine in this process)."""
        engine = self._lite_engine()
        if engine is not None:
            return self._call(engine.get, pks, fields)
        return self._call(
            self._client.get, self.collection, ids=pks, output_fields=fields, consistency_level=consistency
        )

    def _lite_engine(self) -> LiteEngine | None:
        """Return Milvus Lite's engine in this process (see services/lite.py); None on a server."""
        if self.kind != "milvus-lite" or not self.direct:
            return None
        return LiteEngine.find(self.uri, self.collection)

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
        found = (_record(row) for row in rows)
        return {rec.sha256: rec for rec in found if wanted.get(pk_of(rec.sha256)) == rec.sha256}

    def count(self) -> int:
        """Return the number of indexed images."""
        engine = self._lite_engine()
        if engine is not None:
            return int(self._call(engine.count))
        rows = self._call(
            self._client.query, self.collection, output_fields=["count(*)"], consistency_level=self.consistency
        )
        return int(rows[0]["count(*)"])

    def flush(self) -> None:
        """Persist what has been written so far, and have it indexed.

        Milvus Lite searches rows that are not flushed yet by brute force (``bench/store.py``);
        after a flush it builds their HNSW index in the background within seconds.
        """
        with self._write_lock:
            self._flush()

    def checkpoint(self) -> None:
        """Make what was written so far survive a crash: a flush on Milvus Lite, nothing on a server.

        A server logs every write as it arrives and seals segments by itself; flushing after each
        job cost a worker about 3 s and leaves small segments, which Milvus's docs advise against.
        """
        if self.kind == "milvus-lite":
            self.flush()

    def _flush(self) -> None:
        if self.kind != "milvus-lite":
            self._call(self._client.flush, self.collection)
            return
        with self._exclusive():
            self._invoke(self._client.flush, self.collection)
        self._schedule.flushed()

    @property
    def unflushed(self) -> int:
        """Return how many rows were written since the last flush (Milvus Lite only)."""
        return self._schedule.unflushed

    def _written(self, rows: int) -> None:
        """Count rows written (under the write lock) for the flush schedule (Milvus Lite only)."""
        if self.kind == "milvus-lite":
            self._schedule.written(rows)

    def _scheduled_flush(self) -> None:
        """Flush what the schedule says is due (from its thread); a failure is retried at its next tick."""
        try:
            with self._write_lock:
                if self._schedule.due():
                    self._flush()
        except StoreUnavailable as exc:
            log.warning("scheduled flush of %s failed: %s", self.collection, exc.message)

    @contextmanager
    def _exclusive(self) -> Iterator[None]:
        """Run a step alone: wait for calls in flight, and hold new ones until it is done."""
        with self._gate:
            if not self._gate.wait_for(lambda: not self._exclusive_held, self.timeout):
                raise StoreUnavailable("the vector store is busy; try again")
            self._exclusive_held = True
            self._gate.wait_for(lambda: self._in_flight == 0)
        try:
            yield
        finally:
            with self._gate:
                self._exclusive_held = False
                self._gate.notify_all()

    def drop(self) -> None:
        """Delete the whole collection (a library's retired one, after a reindex) and close the client."""
        self._schedule.stop(self.timeout)
        try:
            self._call(self._client.drop_collection, self.collection)
        finally:
            self._client.close()

    def close(self) -> None:
        """Close the client, flushing first so a graceful stop loses nothing (if the store answers)."""
        self._schedule.stop(self.timeout)
        try:
            self.flush()
        except StoreUnavailable:
            pass  # a server that is down has nothing of ours to flush
        finally:
            self._client.close()

    def _call(self, method: Any, *args: Any, **kwargs: Any) -> Any:
        with self._gate:
            if not self._gate.wait_for(lambda: not self._exclusive_held, self.timeout):
                raise StoreUnavailable("the vector store is busy flushing; try again")
            self._in_flight += 1
        try:
            return self._invoke(method, *args, **kwargs)
        finally:
            with self._gate:
                self._in_flight -= 1
                self._gate.notify_all()

    def _invoke(self, method: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(*args, timeout=self.timeout, **kwargs)
        except MilvusException as exc:
            raise StoreUnavailable(f"the vector store failed: {exc.message}") from exc


def _record(row: dict[str, Any]) -> Record:
    albums = row.get("albums") or [""]
    return Record(**{name: row[name] for name in FIELDS}, album=albums[-1])
