"""Per-process services, created lazily on first use: after Gunicorn forks, never at import."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from flask import Flask, current_app

from webapp import building
from webapp.errors import ModelMismatch, WebappError
from webapp.following import Following
from webapp.reindexing import Reindexing
from webapp.services import images
from webapp.services.accounts import Accounts
from webapp.services.activity import Activity
from webapp.services.binding import ModelBinding
from webapp.services.catalog import Catalog
from webapp.services.database import Database
from webapp.services.housekeeping import Housekeeping
from webapp.services.images import ImageStore
from webapp.services.ingestion import Ingestion
from webapp.services.jobs import Job, JobStore
from webapp.services.queues import CeleryQueue, LocalQueue
from webapp.services.retiring import Retirement
from webapp.services.trash import Trash
from webapp.services.units import WorkQueue

if TYPE_CHECKING:  # imported where they are built: a command that needs no model or Milvus starts without them
    from webapp.services.album_moves import AlbumMoves
    from webapp.services.deletions import Deletions
    from webapp.services.duplicates import Duplicates
    from webapp.services.embedding import Embedder
    from webapp.services.library import Library
    from webapp.services.review import Review
    from webapp.services.vectors import MilvusVectorStore

EXTENSION = "webapp"
T = TypeVar("T")
log = logging.getLogger(__name__)


class Runtime:
    """Builds each service once per process; one that fails (store down) is retried next time."""

    def __init__(self, settings: dict[str, Any], app: Flask | None = None) -> None:
        self.settings = settings
        self.app = app  # the Celery tasks run in its context (scale-out only)
        self._services: dict[str, Any] = {}
        self._lock = threading.RLock()
        self._following = Following(settings, lambda: self.database)
        self._reindexing = Reindexing(self)
        self._retired = Retirement()

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
        return self._once("database", lambda: Database(building.database_url(self.settings)))

    @property
    def accounts(self) -> Accounts:
        """Return the accounts and API tokens (in the database)."""
        return self._once("accounts", lambda: Accounts(self.database))

    @property
    def activity(self) -> Activity:
        """Return the activity log (in the database)."""
        return self._once("activity", lambda: Activity(self.database, float(self.settings["ACTIVITY_DAYS"])))

    @property
    def trash(self) -> Trash | None:
        """Return the trash of deleted images (rows in the database, files in STORAGE_DIR/trash), or
        None if TRASH_DAYS is 0: deletions are final."""
        days = self.settings["TRASH_DAYS"]
        if not days:
            return None
        files = ImageStore(Path(self.settings["STORAGE_DIR"]) / "trash")
        return self._once("trash", lambda: Trash(self.database, files, days))

    def start_housekeeping(self) -> None:
        """Remove, from now on and every hour, the images expired from the trash and the uploads no
        job will read again, from a thread of this server process (services/housekeeping.py)."""
        trash = self.trash
        chores: list[tuple[str, Callable[[], object]]] = []
        if trash is not None:
            chores.append(("remove the expired images from the trash", trash.purge))
        chores.append(("remove the uploads no job will read again", lambda: self.ingestion.drop_stale_uploads()))
        self._once("housekeeping", lambda: Housekeeping(chores)).start()

    @property
    def model(self) -> str:
        """Return the name of the model this process embeds with (webapp/following.py says which)."""
        return self._following.model()

    @property
    def embedder(self) -> Embedder:
        """Return the embedding pipeline of the library's model (raises ModelMissing if it is not built)."""
        self.follow()
        return self._once("embedder", lambda: self.embedder_for(self.model))

    def embedder_for(self, model: str) -> Embedder:
        """Return a new embedding pipeline of ``model`` with this app's settings."""
        return building.embedder(self.settings, model)

    @property
    def vectors(self) -> MilvusVectorStore:
        """Return the vector store (raises StoreUnavailable while Milvus cannot be reached)."""
        s = self.settings
        self.follow()

        def build() -> MilvusVectorStore:
            # Before opening the store: a refused model must not hold the Milvus Lite file.
            collection = ModelBinding(self.database).bind(s["COLLECTION"], self.embedder.identity)
            store = self.store_at(s["MILVUS_URI"], collection, s["MILVUS_TOKEN"])
            self._following.collection = collection
            return store

        return self._once("vectors", build)

    def follow(self, now: bool = False) -> None:
        """Switch to the collection and model the library searches, if a reindex changed them.

        Looks at the database at most every LIBRARY_FOLLOW_SECONDS; the process that switched the
        library calls it with ``now``.
        """
        active = self._following.changed(now)
        if active is None:
            return
        s = self.settings
        with self._lock:
            if active.collection == self._following.collection:
                return
            try:
                embedder = self.embedder_for(active.model.name)
                if embedder.identity != active.model:
                    raise ModelMismatch(f"the model file here is not {active.model.short}")
                store = self.store_at(s["MILVUS_URI"], active.collection, s["MILVUS_TOKEN"], embedder.dim)
            except WebappError as exc:
                log.error("cannot follow library %s to %s: %s", s["COLLECTION"], active.collection, exc.message)
                return
            old = self._services.get("vectors")
            old_embedder = self._services.get("embedder")
            self._services.update(embedder=embedder, vectors=store)
            self._services.pop("library", None)
            self._following.switched(active)
            log.warning(
                "library %s now searches %s with %s; where WEBAPP_MODEL is set, set it to %s for the next start",
                s["COLLECTION"],
                active.collection,
                active.model.short,
                active.model.name,
            )
            self._retired.retire(old, old_embedder)  # the searches still under way finish with them

    def reindex(
        self, model: str, progress: Callable[[Job], None] | None = None, background: bool = False, by: str = ""
    ) -> Job:
        """Re-embed the library with ``model`` and switch over (webapp/reindexing.py), for the account
        ``by``; return the job. In the background, the job is returned as soon as it is created.
        """
        return self._reindexing.start(model, progress, background, by)

    def store_at(self, uri: str, collection: str, token: str = "", dim: int | None = None) -> MilvusVectorStore:
        """Open a vector store with this app's index, search and consistency settings."""
        return building.vector_store(self.settings, uri, collection, token, dim or self.embedder.dim)

    @property
    def library(self) -> Library:
        """Return the library: model, vector store, image files and catalogue together."""
        self.follow()  # a reindex by another process (or machine) may have switched the library

        def build() -> Library:
            from webapp.services.library import Library

            s = self.settings
            store = ImageStore(s["STORAGE_DIR"])
            return Library(self.embedder, self.vectors, store, Catalog(self.database), s["THUMBNAIL_SIZE"], self.trash)

        return self._once("library", build)

    def storage_state(self) -> str:
        """Say whether STORAGE_DIR holds the library's newest originals and takes new files (or raise)."""
        settled = Catalog(self.database).newest_before(time.time() - images.SETTLED, 5)
        return images.storage_state(ImageStore(self.settings["STORAGE_DIR"]), settled)

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
        limits = building.job_limits(s)
        uploads = Path(s["STORAGE_DIR"]) / "uploads"
        legacy = Path(s["DATA_DIR"]) / "spool"
        return self._once(
            "ingestion",
            lambda: Ingestion(
                self.jobs,
                lambda: self.library,
                uploads,
                limits,
                lambda: self.queue,
                legacy,
                int(s["JOB_CHUNK_SIZE"]),
                float(s["DUPLICATE_THRESHOLD"]),
            ),
        )

    @property
    def duplicates(self) -> Duplicates:
        """Return the near-duplicate finder (its scans travel like ingestion's units of work)."""
        from webapp.services.duplicates import Duplicates

        threshold = float(self.settings["DUPLICATE_THRESHOLD"])
        return self._once(
            "duplicates",
            lambda: Duplicates(self.database, self.jobs, lambda: self.library, threshold, self.queue.owner),
        )

    @property
    def review(self) -> Review:
        """Return what a person decides about the near-duplicate groups (keep one, keep all, take out)."""
        from webapp.services.review import Review

        return self._once("review", lambda: Review(self.duplicates))

    @property
    def album_moves(self) -> AlbumMoves:
        """Return what moves images between albums (an album's move travels like a scan)."""
        from webapp.services.album_moves import AlbumMoves

        def reindexing() -> bool:
            return ModelBinding(self.database).building(self.settings["COLLECTION"]) is not None

        return self._once(
            "album_moves", lambda: AlbumMoves(self.jobs, lambda: self.library, reindexing, self.queue.owner)
        )

    @property
    def deletions(self) -> Deletions:
        """Return what deletes an album or a load's images in a job (it travels like a move)."""
        from webapp.services.deletions import Deletions

        return self._once("deletions", lambda: Deletions(self.jobs, lambda: self.library, self.queue.owner))

    def _handle(self, task: str, job_id: str, chunk: int, should_stop: Callable[[], bool]) -> None:
        if task == "duplicates":
            self.duplicates.run(job_id, should_stop)
        elif task == "move":
            self.album_moves.run(job_id, should_stop)
        elif task == "delete":
            self.deletions.run(job_id, should_stop)
        elif task == "restore":
            self.deletions.run_restore(job_id, should_stop)
        elif task == "prepare":
            self.ingestion.prepare(job_id)
        else:
            self.ingestion.run_chunk(job_id, chunk, should_stop)

    def built(self, name: str) -> bool:
        """Tell whether a service has been built in this process."""
        return name in self._services

    def close(self) -> None:
        """Let a reindex past its switch end, stop the local queue, then flush and close the vector
        store (on worker exit)."""
        self._reindexing.settle(2 * float(self.settings["LIBRARY_FOLLOW_SECONDS"]) + 15)
        with self._lock:
            housekeeping = self._services.pop("housekeeping", None)
            if housekeeping is not None:
                housekeeping.stop()  # first: its next round would build what is closed below again
            queue = self._services.pop("queue", None)
            if isinstance(queue, LocalQueue):
                queue.stop()
            vectors = self._services.pop("vectors", None)
            self._services.pop("library", None)
            if vectors is not None:
                vectors.close()
            embedder = self._services.pop("embedder", None)
            if embedder is not None:
                embedder.close()  # its query helpers
            self._retired.close_all()  # stores and models searched before a reindex switched the library
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
