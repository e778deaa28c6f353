"""A library is bound to the model that embedded it: vectors of two models must never share a collection.

Both models this app ships make 1280-d vectors, so Milvus would take either without complaint and
searches would silently compare apples with oranges. The first process that opens a library
records the model's identity (name, variant and a SHA-256 of its file) beside its collection in
the database; every later process must bring the same model or is refused with what to do.

A reindex (services/reindex.py) fills a second collection with another model's vectors while the
first one keeps answering, then switches the library over in one transaction: every process
follows the database to the library's active collection and its model.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, insert, select, update
from sqlalchemy.exc import IntegrityError

from webapp.errors import ModelMismatch
from webapp.models import ModelIdentity
from webapp.services.database import Database, collections

ACTIVE, BUILDING, RETIRED = "active", "building", "retired"


@dataclass(frozen=True)
class Binding:
    """One collection of a library, and the model of its vectors."""

    collection: str
    library: str
    state: str
    model: ModelIdentity


def _binding(row: Any) -> Binding:
    model = ModelIdentity(row.model, row.variant, row.model_sha256, row.dim)
    return Binding(row.name, row.library, row.state, model)


class ModelBinding:
    """The record of which collection serves each library, and with which model."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def active(self, library: str) -> Binding | None:
        """Return the collection a library searches now (None: never opened)."""
        return self._one(library, ACTIVE)

    def building(self, library: str) -> Binding | None:
        """Return the collection a reindex of the library is filling (None: no reindex)."""
        return self._one(library, BUILDING)

    def any_recorded(self) -> bool:
        """Tell whether any library's model is recorded (a database of a release before binding: none)."""
        with self.db.connect() as conn:
            return conn.execute(select(collections.c.name).limit(1)).first() is not None

    def retired(self, library: str) -> list[Binding]:
        """Return the collections a library no longer searches."""
        with self.db.connect() as conn:
            query = select(collections).where(collections.c.library == library, collections.c.state == RETIRED)
            return [_binding(row) for row in conn.execute(query)]

    def bind(self, library: str, model: ModelIdentity) -> str:
        """Return the collection to open for ``library`` with ``model``; bind it on first use.

        A library that already has vectors of another model is refused, with what to do.
        """
        try:
            with self.db.connect() as conn:
                if self._one(library, ACTIVE, conn) is None:
                    # A new library, or the collection of an earlier release: its name is the library's.
                    self._insert(conn, library, library, ACTIVE, model)
                    return library
        except IntegrityError:
            pass  # another process bound it at the same moment (the first start of a scaled-out library)
        current = self.active(library)
        assert current is not None
        if current.model != model and current.model.name == model.name:
            raise ModelMismatch(
                f"the library {library} holds vectors of {current.model.short}, but the model file here is "
                f"{model.short}: it was rebuilt or changed since, and may embed differently. Re-embed the "
                f"library with the file here: `flask --app wsgi reindex --model {model.name}` (or bring back "
                "the file it was made with)"
            )
        if current.model != model:
            raise ModelMismatch(
                f"the library {library} holds vectors of {current.model.short}, but this app is set to embed "
                f"with {model.short}: searches would compare vectors of two models. Set "
                f"WEBAPP_MODEL={current.model.name} (with that model file), or re-embed the library: "
                f"`flask --app wsgi reindex --model {model.name}`"
            )
        return current.collection

    def start_building(self, library: str, model: ModelIdentity) -> str:
        """Return the collection a reindex to ``model`` fills: the one a stopped reindex began, or a new one."""
        with self.db.connect() as conn:
            current = self._one(library, BUILDING, conn)
            if current is not None and current.model == model:
                return current.collection
            if current is not None:  # a reindex to another model was abandoned: its collection is dropped later
                conn.execute(update(collections).where(collections.c.name == current.collection).values(state=RETIRED))
            name = f"{library}_{re.sub(r'[^A-Za-z0-9]', '_', model.name)}_{int(time.time())}"
            self._insert(conn, name, library, BUILDING, model)
            return name

    def switch(self, library: str, collection: str) -> None:
        """Make ``collection`` the one the library searches, in one transaction; retire the previous one."""
        with self.db.connect() as conn:
            mine = collections.c.library == library
            conn.execute(update(collections).where(mine, collections.c.state == ACTIVE).values(state=RETIRED))
            conn.execute(update(collections).where(mine, collections.c.name == collection).values(state=ACTIVE))

    def forget(self, collection: str) -> None:
        """Remove a dropped collection's record."""
        with self.db.connect() as conn:
            conn.execute(collections.delete().where(collections.c.name == collection))

    def _one(self, library: str, state: str, conn: Connection | None = None) -> Binding | None:
        query = select(collections).where(collections.c.library == library, collections.c.state == state)
        if conn is not None:
            row = conn.execute(query).first()
        else:
            with self.db.connect() as fresh:
                row = fresh.execute(query).first()
        return None if row is None else _binding(row)

    @staticmethod
    def _insert(conn: Connection, name: str, library: str, state: str, model: ModelIdentity) -> None:
        values = {"name": name, "library": library, "state": state, "model": model.name, "variant": model.variant}
        row = {**values, "model_sha256": model.sha256, "dim": model.dim, "created_at": time.time()}
        conn.execute(insert(collections).values(**row))
