"""Which model and collection a process serves, and whether a reindex has switched the library since."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from webapp.errors import WebappError
from webapp.models import DEFAULT, UNBOUND_DEFAULT
from webapp.services.binding import Binding, ModelBinding
from webapp.services.catalog import Catalog
from webapp.services.database import Database


class Following:
    """The library's model and collection as this process knows them; the database says when they change."""

    def __init__(self, settings: dict[str, Any], database: Callable[[], Database]) -> None:
        self.settings = settings
        self._database = database
        self._model: str | None = settings["MODEL"] or None  # WEBAPP_MODEL, until a reindex switches it
        self.collection: str | None = None  # the collection this process searches, once opened
        self._next_look = 0.0
        self._lock = threading.Lock()

    def model(self) -> str:
        """Return the name of the model this process embeds with.

        WEBAPP_MODEL if it is set; else the model the library is bound to, so that a library keeps
        its model when the default changes; else, for a new library, the default (webapp.models).
        A database with images but no library's model recorded was made by a release before
        binding, with efficientnet-lite0. A reindex switches the model (``switched``).
        """
        if self._model is None:
            database = self._database()  # before the lock: the runtime's own lock builds it
            with self._lock:
                if self._model is None:
                    binding = ModelBinding(database)
                    active = binding.active(self.settings["COLLECTION"])
                    if active is not None:
                        self._model = active.model.name
                    elif not binding.any_recorded() and Catalog(database).total():
                        self._model = UNBOUND_DEFAULT
                    else:
                        self._model = DEFAULT
        return self._model

    def changed(self, now: bool = False) -> Binding | None:
        """Return the library's binding if a reindex made another collection active, else None.

        Looks at the database at most every LIBRARY_FOLLOW_SECONDS (at once with ``now``), and
        only once this process has opened a collection.
        """
        if self.collection is None or (not now and time.monotonic() < self._next_look):
            return None
        self._next_look = time.monotonic() + float(self.settings["LIBRARY_FOLLOW_SECONDS"])
        try:
            active = ModelBinding(self._database()).active(self.settings["COLLECTION"])
        except WebappError:
            return None  # the database is down: keep searching what this process has
        if active is None or active.collection == self.collection:
            return None
        return active

    def switched(self, active: Binding) -> None:
        """Record that this process now serves ``active``'s collection with its model."""
        self._model, self.collection = active.model.name, active.collection
