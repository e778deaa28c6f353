"""The Milvus collection of a library: its fields, its index, and rows to and from records."""

from __future__ import annotations

from typing import Any

import numpy as np
from pymilvus import CollectionSchema, DataType, MilvusClient
from pymilvus.exceptions import MilvusException
from pymilvus.milvus_client.index import IndexParams

from webapp.services.albums import MAX_DEPTH, lineage
from webapp.services.lite import FloatRow
from webapp.services.records import Record, pk_of

FIELDS = ["sha256", "filename", "width", "height", "source", "mime", "added_at"]
METRIC = "COSINE"
INDEX_TYPE = "HNSW"


def ensure(client: MilvusClient, name: str, dim: int, hnsw_m: int, ef_construction: int) -> bool:
    """Create the collection and its index if missing, load it, and say whether it has albums.

    Safe when several workers race to create it. Collections made before albums lack the field
    (Milvus 2.3 cannot add one): no album filters there.
    """
    if not client.has_collection(name):
        try:
            client.create_collection(name, schema=schema(dim), consistency_level="Strong")
        except MilvusException:
            if not client.has_collection(name):  # not another worker's win: a real error
                raise
    if not client.list_indexes(name):
        try:
            # sync=False: Milvus Lite does not implement the call a synchronous build waits on.
            client.create_index(name, index_params(hnsw_m, ef_construction), sync=False)
        except MilvusException:
            if not client.list_indexes(name):
                raise
    client.load_collection(name)
    return "albums" in {f["name"] for f in client.describe_collection(name)["fields"]}


def schema(dim: int) -> CollectionSchema:
    """Return the fields of a library's collection for vectors of ``dim`` dimensions."""
    fields = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
    fields.add_field("pk", DataType.INT64, is_primary=True)
    fields.add_field("vector", DataType.FLOAT_VECTOR, dim=dim)
    fields.add_field("sha256", DataType.VARCHAR, max_length=64)
    fields.add_field("filename", DataType.VARCHAR, max_length=1024)
    fields.add_field("width", DataType.INT32)
    fields.add_field("height", DataType.INT32)
    fields.add_field("source", DataType.VARCHAR, max_length=64)
    fields.add_field("mime", DataType.VARCHAR, max_length=64)
    fields.add_field("added_at", DataType.INT64)
    # The album and every album above it: "in this album or below" is one array_contains.
    fields.add_field("albums", DataType.ARRAY, element_type=DataType.VARCHAR, max_capacity=MAX_DEPTH, max_length=512)
    return fields


def index_params(hnsw_m: int, ef_construction: int) -> IndexParams:
    """Return the vector field's HNSW index by cosine."""
    index = MilvusClient.prepare_index_params()
    # Build params must be nested under "params" or Milvus silently ignores them.
    index.add_index(
        field_name="vector",
        index_type=INDEX_TYPE,
        metric_type=METRIC,
        params={"params": {"M": hnsw_m, "efConstruction": ef_construction}},
    )
    return index


def row(rec: Record, vec: np.ndarray, albums: bool) -> dict[str, Any]:
    """Return the row that stores ``rec`` with its vector (with its album's lineage if ``albums``)."""
    out: dict[str, Any] = {"pk": pk_of(rec.sha256), "vector": FloatRow(vec.astype(np.float32).tolist())}
    out |= {name: getattr(rec, name) for name in FIELDS}
    if albums:
        out["albums"] = lineage(rec.album)
    return out


def record(row: dict[str, Any]) -> Record:
    """Return the record a stored row (or a search hit's entity) describes."""
    return Record(**{name: row[name] for name in FIELDS}, album=record_album(row))


def record_album(row: dict[str, Any]) -> str:
    """Return the album of a stored row: the last of its lineage ("" for none)."""
    albums = row.get("albums") or [""]
    return str(albums[-1])
