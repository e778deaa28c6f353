"""Per-process services, created lazily on first use: after Gunicorn forks, never at import."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from flask import current_app

from webapp.services.catalog import Catalog
from webapp.services.embedding import Embedder
from webapp.services.images import ImageStore
from webapp.services.jobs import JobStore
from webapp.services.library import Library
from webapp.services.runner import JobRunner
from webapp.services.sqlite import Database
from webapp.services.vectors import MilvusVectorStore

EXTENSION = "webapp"
T = TypeVar("T")


class Runtime:
    """Builds each service once per process; one that fails (store down) is retried next time."""

    def __init__(self, settings: dict[str, Any]) -> None:
        self.settings = settings
        self._services: dict[str, Any] = {}
        self._lock = threading.RLock()

    def _once(self, name: str, build: Callable[[], T]) -> T:
        service = self._services.get(name)
        if service is None:
            with self._lock:
                service = self._services.get(name)
                if service is None:
                    service = self._services[name] = build()
        return service

    @property
    def database(self) -> Database:
        """Return the SQLite database of jobs and catalogue."""
        return self._once("database", lambda: Database(Path(self.settings["DATA_DIR"]) / "webapp.sqlite"))

    @property
    def embedder(self) -> Embedder:
        """Return the embedding pipeline (raises ModelMissing if the model is not built)."""
        s = self.settings
        return self._once(
            "embedder",
            lambda: Embedder(
                s["MODEL_DIR"],
                s["MODEL"],
                max_pixels=s["MAX_IMAGE_PIXELS"],
                batch_size=s["EMBED_BATCH_SIZE"],
                threads=s["ONNX_THREADS"],
            ),
        )

    @property
    def vectors(self) -> MilvusVectorStore:
        """Return the vector store (raises StoreUnavailable while Milvus cannot be reached)."""
        s = self.settings
        return self._once("vectors", lambda: self.store_at(s["MILVUS_URI"], s["COLLECTION"], s["MILVUS_TOKEN"]))

    def store_at(self, uri: str, collection: str, token: str = "") -> MilvusVectorStore:
        """Open a vector store with this app's index, search and consistency settings."""
        s = self.settings
        return MilvusVectorStore(
            uri,
            collection,
            self.embedder.dim,
            token=token,
            hnsw_m=s["HNSW_M"],
            ef_construction=s["HNSW_EF_CONSTRUCTION"],
            search_ef=s["SEARCH_EF"],
            timeout=s["MILVUS_TIMEOUT"],
            consistency=s["MILVUS_CONSISTENCY"],
        )

    @property
    def library(self) -> Library:
        """Return the library: model, vector store, image files and catalogue together."""
        s = self.settings
        return self._once(
            "library",
            lambda: Library(
                self.embedder,
                self.vectors,
                ImageStore(Path(s["DATA_DIR"]) / "images"),
                Catalog(self.database),
                s["THUMBNAIL_SIZE"],
            ),
        )

    @property
    def jobs(self) -> JobStore:
        """Return the job store (SQLite only: no model or Milvus needed to read jobs)."""

        def build() -> JobStore:
            s = self.settings
            limits = (s["MAX_ARCHIVE_ENTRIES"], s["MAX_ARCHIVE_EXPANDED_BYTES"])
            store = JobStore(self.database, Path(s["DATA_DIR"]) / "spool", limits)
            store.reap_dead()
            return store

        return self._once("jobs", build)

    @property
    def runner(self) -> JobRunner:
        """Return this process's job runner (it needs the library)."""
        return self._once("runner", lambda: JobRunner(self.jobs, self.library, self.settings))

    def built(self, name: str) -> bool:
        """Tell whether a service has been built in this process."""
        return name in self._services

    def close(self) -> None:
        """Stop the job runner, then flush and close the vector store (on worker exit)."""
        with self._lock:
            runner = self._services.pop("runner", None)
            if runner is not None:
                runner.stop()
            vectors = self._services.pop("vectors", None)
            self._services.pop("library", None)
            if vectors is not None:
                vectors.close()


def runtime() -> Runtime:
    """Return the current app's runtime."""
    rt: Runtime = current_app.extensions[EXTENSION]
    return rt


def library() -> Library:
    """Return the current app's library."""
    return runtime().library
