"""Milvus Lite's flushes, shorter (milvus-lite 3.2.2 only).

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
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from webapp.services.lite import replace_piece


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
