"""A library is bound to the model that embedded it: vectors of two models must never share a collection.

Both models this app ships make 1280-d vectors, so Milvus would take either without complaint and
searches would silently compare apples with oranges. The first process that opens a collection
records the model's identity (name, variant and a SHA-256 of its file) beside it in the database;
every later process must bring the same model or is refused with what to do.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from sqlalchemy import insert, select

from webapp.errors import ModelMismatch
from webapp.services.database import Database, collections


@dataclass(frozen=True)
class ModelIdentity:
    """Which model made a collection's vectors."""

    name: str
    variant: str  # "fp32" or "int8"
    sha256: str  # of the ONNX file: a re-export or re-quantization that changes it changes the vectors
    dim: int

    @property
    def short(self) -> str:
        """Return the identity as people read it: name, variant and the hash's first 12 digits."""
        return f"{self.name} ({self.variant}, file {self.sha256[:12]})"


@cache
def file_sha256(path: Path) -> str:
    """Return the SHA-256 of a model file (read once per process)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class ModelBinding:
    """The record of which model each collection of a library was embedded with."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def bound(self, collection: str) -> ModelIdentity | None:
        """Return the model a collection is bound to (None: not bound yet)."""
        with self.db.connect() as conn:
            row = conn.execute(select(collections).where(collections.c.name == collection)).first()
        return None if row is None else ModelIdentity(row.model, row.variant, row.model_sha256, row.dim)

    def bind(self, collection: str, model: ModelIdentity) -> None:
        """Bind a collection to ``model`` on first use; refuse a different model afterwards."""
        with self.db.connect() as conn:
            row = conn.execute(select(collections).where(collections.c.name == collection)).first()
            if row is None:
                values = {"name": collection, "model": model.name, "variant": model.variant, "dim": model.dim}
                conn.execute(insert(collections).values(**values, model_sha256=model.sha256, created_at=time.time()))
                return
        bound = ModelIdentity(row.model, row.variant, row.model_sha256, row.dim)
        if bound != model:
            raise ModelMismatch(
                f"the collection {collection} holds vectors of {bound.short}, but this app is set to embed with "
                f"{model.short}: searches would compare vectors of two models. Set WEBAPP_MODEL={bound.name} "
                f"(with that model file), or re-embed the library: `flask --app wsgi reindex --model {model.name}`"
            )
