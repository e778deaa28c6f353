"""Milvus Lite specifics: its engine called in this process, and its storage's allocator."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from webapp.errors import StoreUnavailable


class LiteEngine:
    """Milvus Lite's own collection behind a pymilvus client, in this process.

    milvus-lite 3 runs in the client's process, behind a gRPC server that pymilvus reaches over
    loopback: a search paid 1.8 ms of CPU (the GIL held most of it) to encode, send, decode and
    re-encode what the engine answers in 1.4 (README, Measured). Its server manager keeps the
    engine of each file it serves, and the same collection object answers both ways: these calls
    pass it what its gRPC server would. Searches, reads by key, counts, the writing of rows and
    flushes use it; deletes and the schema keep to pymilvus's API.
    """

    def __init__(self, collection: Any) -> None:
        self.collection = collection

    @classmethod
    def find(cls, uri: str, name: str) -> LiteEngine | None:
        """Return the engine of collection ``name`` in the Lite file ``uri`` if this process serves it.

        None if a later milvus-lite keeps its engine elsewhere: then every call goes through gRPC.
        """
        try:
            from milvus_lite import server_manager_instance

            _, db, _ = server_manager_instance._servers[os.path.abspath(uri)]
            return cls(db.get_collection(name))
        except Exception:  # noqa: BLE001 - anything unexpected: the documented way, over gRPC
            return None

    # ``timeout`` is what the store passes every call; nothing here waits on a network.

    def search(
        self, data: list[Any], expr: str, limit: int, fields: list[str], ef: int, metric: str, timeout: float
    ) -> Any:
        """Return each query's hits as pymilvus would: dicts of id, distance and entity.

        ``data`` may hold float32 arrays: the engine stacks them as they are, where pymilvus needs
        lists of floats (40 µs a query to make and read back).
        """
        with _errors():
            return self.collection.search(
                query_vectors=data,
                top_k=limit,
                metric_type=metric,
                expr=expr or None,
                output_fields=fields,
                anns_field="vector",
                search_params={"ef": ef, "metric_type": metric},
            )

    def get(self, pks: list[int], fields: list[str], timeout: float) -> Any:
        """Return the rows of those primary keys that exist."""
        with _errors():
            return self.collection.get(pks, output_fields=fields)

    def insert(self, rows: list[dict[str, Any]], timeout: float) -> None:
        """Write whole rows, replacing those of the same keys (what an upsert of every field does).

        milvus-lite's upsert reads each key's stored row to merge in the fields a partial update
        leaves out, then inserts the merged rows; these carry every field. Writing 64 rows took
        18.6-23.4 ms of CPU over gRPC, 4.0-5.0 here, their vectors being ``FloatRow``s (``make
        bench-lite``, two runs).
        """
        with _errors():
            self.collection.insert(rows)

    def flush(self) -> None:
        """Write the rows not flushed yet to a segment, as the gRPC server's flush does.

        In the caller's thread and with no deadline: over gRPC, a flush that outlived its deadline
        went on in the server's thread after the caller had been told it failed. Any failure is
        the store's, as its gRPC server reports it (at the interpreter's exit, scheduling the merge
        that follows a flush raises RuntimeError).
        """
        with _errors():
            try:
                self.collection.flush()
            except RuntimeError as exc:
                raise StoreUnavailable(f"the vector store failed: {exc}") from exc

    def count(self, timeout: float) -> int:
        """Return the number of live rows, as the gRPC server answers ``count(*)``."""
        with _errors():
            return int(self.collection.num_entities)


@contextmanager
def _errors() -> Iterator[None]:
    from milvus_lite import MilvusLiteError

    try:
        yield
    except MilvusLiteError as exc:
        raise StoreUnavailable(f"the vector store failed: {exc}") from exc
    except OSError as exc:  # its own files: a full disk, a read-only mount (a 500 before)
        raise StoreUnavailable(f"the vector store failed: {exc}") from exc


def arrow_on_malloc() -> None:
    """Have pyarrow (Milvus Lite's storage) allocate with malloc rather than its own mimalloc pool.

    mimalloc keeps for itself what Lite's flushes and segment merges free: a process held
    1,476-1,636 MB after writing 20,000 vectors, against 978-983 MB with malloc, which gives large
    blocks back to the system (``make bench-memory``, README: Memory). ARROW_DEFAULT_MEMORY_POOL,
    if set, still decides.
    """
    if "ARROW_DEFAULT_MEMORY_POOL" not in os.environ:
        import pyarrow

        pyarrow.set_memory_pool(pyarrow.system_memory_pool())


class FloatRow(list[float]):
    """A float32 vector's values as a list: floats by construction, so not checked one by one."""


PATCHED_VERSION = "3.2.2"  # the milvus-lite whose code the replacements of its pieces were written against


def replace_piece(owner: Any, name: str, wrap: Callable[[Any], Any]) -> bool:
    """Replace milvus-lite's ``owner.name`` with ``wrap(it)``, once, on PATCHED_VERSION only.

    ``wrap`` returns a function whose ``__wrapped__`` is the original. Return whether the
    replacement is in place (False on any other version: its own code stays).
    """
    from importlib.metadata import version

    if getattr(getattr(owner, name), "__wrapped__", None) is not None:
        return True
    if version("milvus-lite") != PATCHED_VERSION:
        return False
    setattr(owner, name, wrap(getattr(owner, name)))
    return True


def faster_unflushed_search() -> bool:
    """Have Milvus Lite gather the vectors of rows not yet flushed as arrays, not row by row.

    milvus-lite 3.2.2 copies each such row's vector into a Python list of floats and back for
    every search, under the lock its writes take: 0.04 ms a row, so 2,048 rows waiting made a
    search over 1,000 flushed ones take 117 ms instead of 1.3 (``make bench-lite``). The same arrays
    come from each Arrow batch's buffer directly; asked for no vector field (the app's search keeps
    unit vectors of its own, services/lite_units.py), it builds no table either. Only that version
    is patched (its code was read);
    other versions, and partitions or vector columns this does not expect, keep their own way.
    Return whether the patch is in place.
    """
    from milvus_lite.storage.memtable import MemTable

    return replace_piece(MemTable, "to_search_snapshot", _rowless)


def _rowless(original: Any) -> Any:
    import numpy as np
    import pyarrow as pa

    def to_search_snapshot(
        self: Any, vector_field: str | None, partition_names: list[str] | None = None, include_table: bool = False
    ) -> Any:
        with self._lock:  # batches only grow, and each is immutable: a snapshot of both is consistent
            batches = tuple(self._insert_batches)
            entries = list(self._pk_index.items())
        if partition_names is not None or not entries:
            return original(self, vector_field, partition_names, include_table)
        # Every batch as one table, with no Python loop over them: single uploads leave one row each.
        # Neither vectors nor a table asked for (services/lite_units.py keeps the vectors): no table.
        try:
            whole = pa.Table.from_batches(batches) if vector_field is not None or include_table else None
        except pa.ArrowInvalid:  # batches of different schemas: milvus-lite's own way copes
            return original(self, vector_field, partition_names, include_table)
        column = whole.column(vector_field).combine_chunks() if whole is not None and vector_field is not None else None
        if column is not None and not _dense(column):
            return original(self, vector_field, partition_names, include_table)
        pks = [pk for pk, _ in entries]
        places = np.array([place for _, place in entries], dtype=np.uint64)  # (batch, row, seq) each
        where, rows, seqs = places[:, 0].astype(np.intp), places[:, 1].astype(np.intp), places[:, 2]
        at = np.cumsum([0] + [batch.num_rows for batch in batches])[where] + rows  # each entry's row in ``whole``
        vectors = np.zeros((0, 0), dtype=np.float32)  # what milvus-lite gives when no vector field is asked for
        if column is not None:
            vectors = column.flatten().to_numpy(zero_copy_only=False).reshape(-1, column.type.list_size)[at]
        row_refs = list(zip(where.tolist(), rows.tolist(), strict=True))
        table = None
        if whole is not None and include_table:
            table = whole.take(pa.array(at, type=pa.int64()))
            if "_partition" in table.column_names:
                table = table.drop(["_partition"])
        return pks, seqs, vectors, row_refs, table

    to_search_snapshot._rowless = True  # type: ignore[attr-defined]
    to_search_snapshot.__wrapped__ = original  # type: ignore[attr-defined]
    return to_search_snapshot


def _dense(column: Any) -> bool:
    import pyarrow as pa

    kind = column.type
    return bool(pa.types.is_fixed_size_list(kind) and pa.types.is_float32(kind.value_type) and not column.null_count)


def faster_vector_checks() -> bool:
    """Have Milvus Lite check a ``FloatRow`` vector's length, not each of its values in Python.

    milvus-lite 3.2.2 checks every row it writes against the schema, and each of a vector's 1,280
    values with ``isinstance``: 7-9 of the 11-14 ms its engine took to write 64 rows (``make
    bench-lite``). A ``FloatRow`` holds a float32 array's values; the row is checked with its
    vector's length alone, every other field as before, and whatever the check fills in (a
    default) is kept. Other rows, and other versions, keep the whole check. Return whether the
    patch is in place.
    """
    import milvus_lite.engine.collection as collection

    return replace_piece(collection, "validate_record", _by_length)


class _Length(tuple[()]):
    """Stands in for a vector whose values need no check: it has the vector's length and no items."""

    length: int

    def __new__(cls, length: int) -> _Length:
        shown = super().__new__(cls)
        shown.length = length
        return shown

    def __len__(self) -> int:
        return self.length


def _by_length(original: Any) -> Any:
    from milvus_lite.schema.types import DataType

    def validate_record(record: Any, schema: Any, default_properties: dict[str, Any] | None = None) -> None:
        field = next((f for f in schema.fields if f.dtype == DataType.FLOAT_VECTOR), None)
        vector = record.get(field.name) if field is not None and isinstance(record, dict) else None
        if type(vector) is not FloatRow:
            return original(record, schema, default_properties=default_properties)
        assert field is not None
        shown = {**record, field.name: _Length(len(vector))}
        original(shown, schema, default_properties=default_properties)
        record.update((name, value) for name, value in shown.items() if name != field.name)

    validate_record.__wrapped__ = original  # type: ignore[attr-defined]
    return validate_record
