"""The embedding pipelines: Towhee pipelines of the operators in services/operators.py, around an ONNX model."""

from __future__ import annotations

import os
import threading
import warnings
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

with warnings.catch_warnings():
    # towhee 1.1.3 imports pkg_resources, which warns about its own deprecation.
    warnings.simplefilter("ignore", UserWarning)
    from towhee import ops, pipe

from webapp.errors import ModelMissing, WebappError
from webapp.models import MODELS, ModelIdentity, file_sha256
from webapp.services import operators  # noqa: F401 - registers the ris/... operators the pipelines name
from webapp.services.imaging import Box, Decoded, QueryImage
from webapp.services.in_thread import InThread
from webapp.services.query_helpers import QueryHelpers
from webapp.services.telemetry import QUERIES

K = TypeVar("K")


def _rows(*columns: list[Any]) -> list[tuple[Any, ...]]:
    """Turn a window's columns back into rows."""
    return list(zip(*columns, strict=True))


class Embedder:
    """Turns image bytes into unit vectors with one Towhee pipeline per use."""

    def __init__(
        self,
        model_dir: str | os.PathLike[str],
        model: str,
        max_pixels: int = 50_000_000,
        batch_size: int = 16,
        threads: int = 0,
        query_processes: int = 0,
    ) -> None:
        self.spec = MODELS[model]
        self.max_pixels = max_pixels
        self.model_path = Path(model_dir) / f"{model}.onnx"
        if not self.model_path.is_file():
            raise ModelMissing(f"the model file {self.model_path} does not exist; build it with `{self.spec.build}`")
        threads = threads or os.cpu_count() or 1
        self.query_processes = query_processes
        self._helpers_args = (str(model_dir), model, max_pixels, query_processes)
        self._helpers: QueryHelpers | None = None
        self._helpers_lock = threading.Lock()
        size = self.spec.input_size
        one = {"model_path": str(self.model_path), "threads": threads, "max_pixels": max_pixels, "size": size}
        # A search's image alone: run in the request's thread (services/in_thread.py).
        self._one = InThread(
            pipe.input("data")
            .map("data", ("decoded", "vector"), ops.ris.embed_image(**one))
            .output("decoded", "vector")
        )
        self._region = InThread(
            pipe.input("data", "box")
            .map(("data", "box"), ("decoded", "vector"), ops.ris.embed_image(**one))
            .output("decoded", "vector")
        )
        self._many = (
            pipe.input("items")
            .flat_map("items", ("key", "data"), lambda items: items)
            .map("data", "decoded", ops.ris.decode(max_pixels=max_pixels, draft=size, background=True))
            .map("decoded", "tensor", ops.ris.preprocess(size=size))
            .window(
                ("key", "decoded", "tensor"),
                ("keys", "decodeds", "vectors"),
                batch_size,
                batch_size,
                ops.ris.embed_batch(model_path=str(self.model_path), threads=threads),
            )
            .flat_map(("keys", "decodeds", "vectors"), ("k", "d", "v"), _rows)
            .output("k", "d", "v")
        )

    @property
    def name(self) -> str:
        """Return the model's name."""
        return self.spec.name

    @property
    def dim(self) -> int:
        """Return the embedding dimension."""
        return self.spec.dim

    @property
    def identity(self) -> ModelIdentity:
        """Return what a collection embedded by this model is bound to (see services/binding.py)."""
        variant = "int8" if self.spec.quantized_from else "fp32"
        return ModelIdentity(self.spec.name, variant, file_sha256(self.model_path), self.spec.dim)

    def embed(self, data: bytes, box: Box | None = None) -> tuple[Decoded, np.ndarray]:
        """Decode and embed one image (or the ``box`` region of it), raising a domain error for a bad one."""
        decoded, vector = (self._one(data) if box is None else self._region(data, box)).get()
        if isinstance(vector, WebappError):
            raise vector
        return decoded, vector

    def embed_query(self, data: bytes, box: Box | None = None) -> tuple[QueryImage, np.ndarray]:
        """Decode and embed a search's query image (or its region): in a helper process while
        searches overlap, if this embedder has helpers (services/query_helpers.py); else here."""
        helpers = self.query_helpers()
        if helpers is not None:
            return helpers.embed(data, box)
        QUERIES.labels("worker").inc()
        return self._embed_query_here(data, box)

    def _embed_query_here(self, data: bytes, box: Box | None) -> tuple[QueryImage, np.ndarray]:
        decoded, vector = self.embed(data, box)
        return QueryImage.of(decoded), vector

    def query_helpers(self) -> QueryHelpers | None:
        """Return the query helpers, started at the first call (None if it has none, or once closed)."""
        if self._helpers is None and self.query_processes > 0:
            with self._helpers_lock:
                if self._helpers is None and self.query_processes > 0:
                    self._helpers = QueryHelpers(*self._helpers_args, here=self._embed_query_here)
        return self._helpers

    def close(self) -> None:
        """Stop the query helpers, if any were started; later queries are embedded here."""
        with self._helpers_lock:
            helpers, self._helpers, self.query_processes = self._helpers, None, 0
        if helpers is not None:
            helpers.close()

    def embed_many(
        self, items: Iterable[tuple[K, bytes]]
    ) -> Iterator[tuple[K, Decoded | WebappError, np.ndarray | None]]:
        """Embed many images in batches; yield (key, decoded or error, vector or None) in order."""
        queue = self._many(list(items))
        while (row := queue.get()) is not None:
            yield row[0], row[1], row[2]
