"""Milvus Lite specifics: its engine called in this process, and its storage's allocator."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from webapp.errors import StoreUnavailable


class LiteEngine:
    """Milvus Lite's own collection behind a pymilvus client, in this process.

    milvus-lite 3 runs in the client's process, behind a gRPC server that pymilvus reaches over
    loopback: a search paid 1.8 ms of CPU (the GIL held most of it) to encode, send, decode and
    re-encode what the engine answers in 1.4 (README, Measured). Its server manager keeps the
    engine of each file it serves, and the same collection object answers both ways: these calls
    pass it what its gRPC server would. Searches, reads by key and counts use it; writes, flushes
    and the schema keep to pymilvus's API.
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
        self, data: list[list[float]], expr: str, limit: int, fields: list[str], ef: int, metric: str, timeout: float
    ) -> Any:
        """Return each query's hits as pymilvus would: dicts of id, distance and entity."""
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
