"""Milvus Lite's album filters evaluated with arrays (milvus-lite 3.2.2 only).

milvus-lite 3.2.2 evaluates ``array_contains`` with its row-by-row Python backend, which first
turns the whole table into Python objects, the vectors included: a search narrowed to an album
took 1.6-1.7 s at 20,000 images, against 5 ms for the whole library (``bench/moves.py``,
2026-12-03). ``mask`` answers the two shapes the app sends (``array_contains(albums, "a")`` and
``array_contains_any(albums, ["a", "b"])``, services/albums.py) with pyarrow's vectorised
functions over the one column; any other filter goes to milvus-lite.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc


def contained(compiled: Any) -> tuple[str, list[str]] | None:
    """Return the array field and the strings a filter asks an array to hold any of; None for any
    other filter."""
    from milvus_lite.search.filter.ast import ArrayContainsOp, FieldRef, ListLit, StringLit

    ast = getattr(compiled, "ast", None)
    if not isinstance(ast, ArrayContainsOp) or ast.mode not in ("any_one", "any"):
        return None
    if not isinstance(ast.value, FieldRef):
        return None
    values = ast.values.elements if isinstance(ast.values, ListLit) else (ast.values,)
    if not values or not all(isinstance(v, StringLit) for v in values):
        return None
    return ast.value.name, [v.value for v in values]


def mask(compiled: Any, table: Any, theirs: Any) -> np.ndarray:
    """Return which rows of ``table`` the filter keeps: by arrays for an album filter, else ``theirs()``."""
    asked = contained(compiled)
    if asked is None or asked[0] not in table.schema.names:
        return np.asarray(theirs(), dtype=bool)
    field, names = asked
    column = table.column(field)
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    if not pa.types.is_list(column.type) and not pa.types.is_large_list(column.type):
        return np.asarray(theirs(), dtype=bool)
    flat, parents = pc.list_flatten(column), pc.list_parent_indices(column)
    hit = pc.is_in(flat, value_set=pa.array(names, type=flat.type)).to_numpy(zero_copy_only=False)
    out = np.zeros(len(column), dtype=bool)
    out[parents.to_numpy()[hit]] = True
    return out
