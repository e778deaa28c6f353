"""A reindex of this process's library: one at a time, in the calling thread or in the background."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from webapp.errors import Conflict, ModelMismatch, ModelMissing
from webapp.models import ModelIdentity
from webapp.services.binding import ModelBinding
from webapp.services.images import ImageStore
from webapp.services.jobs import Job, local_owner
from webapp.services.priority import AtThisPriority, background_thread
from webapp.services.queues import Heartbeat

if TYPE_CHECKING:
    from webapp.runtime import Runtime
    from webapp.services.embedding import Embedder
    from webapp.services.reindex import Reindexer
    from webapp.services.vectors import MilvusVectorStore

log = logging.getLogger(__name__)


class Reindexing:
    """Starts a runtime's reindex (services/reindex.py), one at a time per process."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self._running = threading.Lock()
        self._switched: threading.Thread | None = None  # a background reindex at its switch or past it

    def settle(self, timeout: float) -> None:
        """Wait up to ``timeout`` s for a background reindex that is switching the library to end.

        The runtime calls this before it closes (on worker exit): what is left after the switch (a
        few seconds for the other processes to follow, the last catch-up from the old collection,
        dropping it) reads the store the runtime would close. A reindex still copying is not
        waited for: its job is interrupted, and a reindex run again continues it.
        """
        thread = self._switched
        if thread is not None:
            thread.join(timeout)

    def start(self, model: str, progress: Callable[[Job], None] | None, background: bool, by: str = "") -> Job:
        """Re-embed the library with ``model`` and switch over, for the account ``by``; return the job
        (at once in the background)."""
        if not self._running.acquire(blocking=False):
            raise Conflict("a reindex is running in this process already")
        try:
            run = self._begin(model, progress, by)
        except BaseException:
            self._running.release()
            raise
        if not background:
            return run.finish(lambda: self.runtime.follow(now=True))
        self._in_background(run)
        return run.job

    def _begin(self, model: str, progress: Callable[[Job], None] | None, by: str) -> _Run:
        """Open the new model and the library's collection, and create the reindex's job."""
        from webapp.services.reindex import Reindexer  # with the model's and Milvus's libraries: not at import

        rt = self.runtime
        s = rt.settings
        target = rt.embedder_for(model)
        active, current, opened = self._source()
        run = _Run(active, opened, target, local_owner(), progress, self._running.release)
        try:
            run.reindexer = Reindexer(
                s["COLLECTION"],
                ModelBinding(rt.database),
                rt.jobs,
                ImageStore(s["STORAGE_DIR"]),
                lambda name, dim: rt.store_at(s["MILVUS_URI"], name, s["MILVUS_TOKEN"], dim),
                settle_seconds=2 * float(s["LIBRARY_FOLLOW_SECONDS"]),
            )
            run.job = run.reindexer.begin(current, target, run.owner, list(active.ids()), by)
        except BaseException:
            run.close_source()  # start() lets the next reindex start
            raise
        return run

    def _in_background(self, run: _Run) -> None:
        """Run the reindex in a thread of its own at idle priority, its job kept alive by a heartbeat."""
        # Following the switch opens the new store, whose flusher thread must not inherit the idle
        # priority (priority.py): the switch runs in a thread started here.
        rt, job = self.runtime, run.job
        heartbeat, switcher = Heartbeat(rt.jobs, run.owner), AtThisPriority("reindex-switch")

        def switching() -> None:
            self._switched = threading.current_thread()

        def work() -> None:
            background_thread()  # the web process's searches go first
            try:
                run.finish(lambda: switcher.call(lambda: rt.follow(now=True)), switching)
            except Exception:  # the job says it failed; the log says why
                log.exception("reindex job %s failed", job.id)
            finally:
                self._switched = None
                heartbeat.stop()
                switcher.close()

        heartbeat.start()
        threading.Thread(target=work, name="reindex", daemon=True).start()

    def _source(self) -> tuple[MilvusVectorStore, ModelIdentity, bool]:
        """Return the collection the library searches now, its model, and whether it was opened for the reindex only.

        A process refused the library (its model file was rebuilt since, or is missing) can still
        reindex it: a reindex reads the collection's records and the stored originals, never the
        old model, so the collection is opened by itself.
        """
        rt = self.runtime
        try:
            return rt.vectors, rt.embedder.identity, False
        except (ModelMismatch, ModelMissing):
            s = rt.settings
            active = ModelBinding(rt.database).active(s["COLLECTION"])
            if active is None:
                raise
            store = rt.store_at(s["MILVUS_URI"], active.collection, s["MILVUS_TOKEN"], active.model.dim)
            return store, active.model, True


@dataclass
class _Run:
    """One reindex under way: its source collection, its target model, its job, and how it ends."""

    active: MilvusVectorStore
    opened: bool  # the collection was opened for this reindex only: close it at the end
    target: Embedder
    owner: str
    progress: Callable[[Job], None] | None
    release: Callable[[], None]
    reindexer: Reindexer = field(init=False)
    job: Job = field(init=False)

    def finish(self, switched: Callable[[], None], switching: Callable[[], None] | None = None) -> Job:
        """Re-embed, switch the library over and drop the old collection; then end the run."""
        try:
            return self.reindexer.finish(
                self.job.id, self.active, self.target, self.owner, switched, self.progress, switching
            )
        finally:
            self.end()

    def close_source(self) -> None:
        """Close the library's collection if it was opened for this reindex only."""
        if self.opened:
            self.active.close()

    def end(self) -> None:
        """Close what was opened for this reindex and let the next one start."""
        self.close_source()
        self.release()
