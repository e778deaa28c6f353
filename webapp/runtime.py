"""Per-process services, created lazily on first use: after Gunicorn forks, never at import."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from flask import Flask, current_app

from webapp.services.accounts import Accounts
from webapp.services.binding import ModelBinding
from webapp.services.catalog import Catalog
from webapp.services.database import Database, sqlite_url
from webapp.services.embedding import Embedder
from webapp.services.images import ImageStore
from webapp.services.imaging import return_large_buffers_to_the_system
from webapp.services.ingestion import Ingestion, Limits, WorkQueue
from webapp.services.jobs import JobStore
from webapp.services.library import Library
from webapp.services.queues import CeleryQueue, LocalQueue
from webapp.services.vectors import MilvusVectorStore

EXTENSION = "webapp"
T = TypeVar("T")


class Runtime:
    """Builds each service once per process; one that fails (store down) is retried next time."""

    def __init__(self, settings: dict[str, Any], app: Flask | None = None) -> None:
        self.settings = settings
        self.app = app  # the Celery tasks run in its context (scale-out only)
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
        """Return the database of jobs and catalogue (SQLite in DATA_DIR unless DATABASE_URL is set)."""
        s = self.settings
        url = s["DATABASE_URL"] or sqlite_url(Path(s["DATA_DIR"]) / "webapp.sqlite")
        return self._once("database", lambda: Database(url))

    @property
    def accounts(self) -> Accounts:
        """Return the accounts and API tokens (in the database)."""
        return self._once("accounts", lambda: Accounts(self.database))

    @property
    def embedder(self) -> Embedder:
        """Return the embedding pipeline (raises ModelMissing if the model is not built)."""
        s = self.settings

        def build() -> Embedder:
            return_large_buffers_to_the_system()  # this process decodes images: keep its peak bounded
            return Embedder(
                s["MODEL_DIR"],
                s["MODEL"],
                max_pixels=s["MAX_IMAGE_PIXELS"],
                batch_size=s["EMBED_BATCH_SIZE"],
                threads=s["ONNX_THREADS"],
            )

        return self._once("embedder", build)

    @property
    def vectors(self) -> MilvusVectorStore:
        """Return the vector store (raises StoreUnavailable while Milvus cannot be reached)."""
        s = self.settings

        def build() -> MilvusVectorStore:
            # Before opening the store: a refused model must not hold the Milvus Lite file.
            ModelBinding(self.database).bind(s["COLLECTION"], self.embedder.identity)
            return self.store_at(s["MILVUS_URI"], s["COLLECTION"], s["MILVUS_TOKEN"])

        return self._once("vectors", build)

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
            flush_seconds=float(s["MILVUS_FLUSH_SECONDS"]),
            flush_rows=int(s["MILVUS_FLUSH_ROWS"]),
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
                ImageStore(s["STORAGE_DIR"]),
                Catalog(self.database),
                s["THUMBNAIL_SIZE"],
            ),
        )

    @property
    def jobs(self) -> JobStore:
        """Return the job store (the database only: no model or Milvus needed to read jobs)."""

        def build() -> JobStore:
            store = JobStore(self.database)
            if not self.settings["BROKER_URL"]:
                store.reap_dead()  # local jobs of a process that died are interrupted
            return store

        return self._once("jobs", build)

    @property
    def queue(self) -> WorkQueue:
        """Return what carries units of work: Celery when BROKER_URL is set, else a thread here."""
        if self.settings["BROKER_URL"]:
            return self._once("queue", lambda: CeleryQueue(self.celery, self.settings["BROKER_URL"]))

        def build() -> LocalQueue:
            self.library  # noqa: B018 - open the model and the store now: fail before accepting work
            return LocalQueue(self._handle, self.jobs)

        return self._once("queue", build)

    def queue_depth(self) -> int | None:
        """Return how many units of work wait (without opening the library to ask)."""
        if self.settings["BROKER_URL"] or self.built("queue"):
            return self.queue.depth()
        return 0

    @property
    def celery(self) -> Any:
        """Return the Celery app (scale-out only)."""
        from webapp.tasks import make_celery

        if self.app is None:
            raise RuntimeError("the task queue needs the Flask app")
        app = self.app
        return self._once("celery", lambda: make_celery(app))

    @property
    def ingestion(self) -> Ingestion:
        """Return the ingestion service: the one door to jobs."""
        s = self.settings
        limits = Limits(
            max_job_files=s["MAX_JOB_FILES"],
            max_file_bytes=s["MAX_FILE_BYTES"],
            max_archive_entries=s["MAX_ARCHIVE_ENTRIES"],
            max_archive_expanded_bytes=s["MAX_ARCHIVE_EXPANDED_BYTES"],
            import_roots=s["IMPORT_ROOTS"],
            upload_retention=float(s["UPLOAD_RETENTION_HOURS"]) * 3600,
        )
        uploads = Path(s["STORAGE_DIR"]) / "uploads"
        legacy = Path(s["DATA_DIR"]) / "spool"
        return self._once(
            "ingestion",
            lambda: Ingestion(
                self.jobs, lambda: self.library, uploads, limits, lambda: self.queue, legacy, int(s["JOB_CHUNK_SIZE"])
            ),
        )

    def _handle(self, task: str, job_id: str, chunk: int, should_stop: Callable[[], bool]) -> None:
        if task == "prepare":
            self.ingestion.prepare(job_id)
        else:
            self.ingestion.run_chunk(job_id, chunk, should_stop)

    def built(self, name: str) -> bool:
        """Tell whether a service has been built in this process."""
        return name in self._services

    def close(self) -> None:
        """Stop the local queue, then flush and close the vector store (on worker exit)."""
        with self._lock:
            queue = self._services.pop("queue", None)
            if isinstance(queue, LocalQueue):
                queue.stop()
            vectors = self._services.pop("vectors", None)
            self._services.pop("library", None)
            if vectors is not None:
                vectors.close()
            database = self._services.pop("database", None)
            if database is not None:
                database.dispose()
            self._services.pop("jobs", None)
            self._services.pop("ingestion", None)


def runtime() -> Runtime:
    """Return the current app's runtime."""
    rt: Runtime = current_app.extensions[EXTENSION]
    return rt


def library() -> Library:
    """Return the current app's library."""
    return runtime().library
