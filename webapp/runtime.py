"""Per-process services, created lazily on first use: after Gunicorn forks, never at import."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

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


class Runtime:
    """Builds the library (ONNX session, Milvus client, image store) once per process."""

    def __init__(self, settings: dict[str, Any]) -> None:
        self.settings = settings
        self._library: Library | None = None
        self._database: Database | None = None
        self._jobs: JobStore | None = None
        self._runner: JobRunner | None = None
        self._lock = threading.Lock()

    @property
    def database(self) -> Database:
        """Return the SQLite database of jobs and catalogue, creating it on first use."""
        if self._database is None:
            self._database = Database(Path(self.settings["DATA_DIR"]) / "webapp.sqlite")
        return self._database

    @property
    def library(self) -> Library:
        """Return the library, building it on first use."""
        if self._library is None:
            with self._lock:
                if self._library is None:
                    self._library = self._build()
        return self._library

    def _build(self) -> Library:
        s = self.settings
        embedder = Embedder(
            s["MODEL_DIR"],
            s["MODEL"],
            max_pixels=s["MAX_IMAGE_PIXELS"],
            batch_size=s["EMBED_BATCH_SIZE"],
            threads=s["ONNX_THREADS"],
        )
        vectors = MilvusVectorStore(
            s["MILVUS_URI"],
            s["COLLECTION"],
            embedder.dim,
            token=s["MILVUS_TOKEN"],
            hnsw_m=s["HNSW_M"],
            ef_construction=s["HNSW_EF_CONSTRUCTION"],
            search_ef=s["SEARCH_EF"],
            timeout=s["MILVUS_TIMEOUT"],
            consistency=s["MILVUS_CONSISTENCY"],
        )
        images = ImageStore(Path(s["DATA_DIR"]) / "images")
        return Library(embedder, vectors, images, Catalog(self.database), s["THUMBNAIL_SIZE"])

    @property
    def jobs(self) -> JobStore:
        """Return the job store (SQLite only: no model or Milvus needed to read jobs)."""
        if self._jobs is None:
            with self._lock:
                if self._jobs is None:
                    self._jobs = JobStore(self.database, Path(self.settings["DATA_DIR"]) / "spool")
                    self._jobs.reap_dead()
        return self._jobs

    @property
    def runner(self) -> JobRunner:
        """Return this process's job runner, building the library first if needed."""
        library = self.library
        jobs = self.jobs
        if self._runner is None:
            with self._lock:
                if self._runner is None:
                    self._runner = JobRunner(jobs, library, self.settings)
        return self._runner

    def close(self) -> None:
        """Stop the job runner, then flush and close the vector store (on worker exit)."""
        with self._lock:
            if self._runner is not None:
                self._runner.stop()
                self._runner = None
            if self._library is not None:
                self._library.vectors.close()
                self._library = None


def runtime() -> Runtime:
    """Return the current app's runtime."""
    rt: Runtime = current_app.extensions[EXTENSION]
    return rt


def library() -> Library:
    """Return the current app's library."""
    return runtime().library
