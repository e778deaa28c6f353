"""Re-embed a library with another model into a new collection, then switch every process over.

The library keeps answering from its active collection the whole time. Every stored original is
read again and embedded with the new model into a collection of its own (a `reindex` job shows
the progress; run again, it continues where it stopped). Images added or deleted meanwhile are
caught up, the database switches the library to the new collection in one transaction, every
process follows within a few seconds (Runtime.follow), and what landed in the old collection in
those seconds is caught up too before it is dropped.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np

from webapp.errors import Conflict
from webapp.models import ModelIdentity
from webapp.services.album_moves import KIND as MOVE
from webapp.services.binding import ModelBinding
from webapp.services.embedding import Embedder
from webapp.services.images import ImageStore
from webapp.services.jobs import ItemResult, Job, JobStatus, JobStore
from webapp.services.records import Record
from webapp.services.vectors import MilvusVectorStore

log = logging.getLogger(__name__)
BATCH = 32
Progress = Callable[[Job], None]


@dataclass
class Stores:
    """What a reindex reads from and writes to."""

    active: MilvusVectorStore  # the collection the library searches now
    target: MilvusVectorStore  # the new model's collection, being filled


class Reindexer:
    """Moves a library to another model without a moment when searches stop answering."""

    def __init__(
        self,
        library: str,
        binding: ModelBinding,
        jobs: JobStore,
        images: ImageStore,
        open_store: Callable[[str, int], MilvusVectorStore],
        settle_seconds: float,
    ) -> None:
        self.library = library
        self.binding = binding
        self.jobs = jobs
        self.images = images
        self._open_store = open_store  # (collection, dim) -> an open store
        self.settle_seconds = settle_seconds  # how long other processes take to follow a switch

    def begin(self, current: ModelIdentity, target_model: Embedder, owner: str, listed: list[str], by: str = "") -> Job:
        """Create the new model's collection (or take up a stopped reindex's) and the job that shows
        progress, started by the account ``by``.

        ``current`` is the model of the library's vectors; the target may be the same model with
        another file (rebuilt): only the identities must differ.
        """
        target = target_model.identity
        if current == target:
            raise Conflict(f"the library is embedded with {current.short} already")
        if moving := self.jobs.active_of(MOVE):
            raise Conflict(f"an album is being moved (job {moving.id}): reindex once it has ended")
        self.binding.start_building(self.library, target)
        same_name = current.name == target.name  # a rebuilt file: say which files
        label = f"{current.short} to {target.short}" if same_name else f"{current.name} to {target.name}"
        job = self.jobs.create("reindex", label, owner, sorted(listed), started_by=by)
        self.jobs.move(job.id, JobStatus.RUNNING)
        return job

    def finish(
        self,
        job_id: str,
        active: MilvusVectorStore,
        target_model: Embedder,
        owner: str,
        switched: Callable[[], None],
        progress: Progress | None = None,
        switching: Callable[[], None] | None = None,
    ) -> Job:
        """Re-embed every image, switch the library over, drop the old collection; return the job's end.

        ``switching`` is called right before the switch (what follows reads the old collection, so
        the calling process should not close it), ``switched`` right after it, so the calling
        process follows at once.
        """
        building = self.binding.building(self.library)
        if building is None or building.model != target_model.identity:
            raise Conflict("another reindex took over this library's new collection")
        stores = Stores(active, self._open_store(building.collection, target_model.dim))
        try:
            shas = self.jobs.names(job_id)
            if not self._copy(job_id, shas, stores, target_model, owner, progress):
                return self.jobs.get(job_id)  # cancelled: the library stays as it was
            self._catch_up(stores.active, stores.target, target_model)  # what changed while copying
            stores.target.flush()
            old = active.collection
            if switching is not None:
                switching()
            self.binding.switch(self.library, building.collection)
            switched()
            log.warning("library %s now searches %s (%s)", self.library, building.collection, building.model.short)
            time.sleep(self.settle_seconds)  # until every process searches the new collection
            self._catch_up(stores.active, stores.target, target_model)  # what landed in the old one meanwhile
            stores.target.flush()
            self._drop(old, target_model.dim)
        except Exception as exc:
            self.jobs.move(job_id, JobStatus.FAILED, getattr(exc, "message", "the reindex stopped; run it again"))
            raise
        finally:
            stores.target.close()
        self.jobs.move(job_id, JobStatus.DONE)
        return self.jobs.get(job_id)

    def _copy(
        self,
        job_id: str,
        shas: list[str],
        stores: Stores,
        model: Embedder,
        owner: str,
        progress: Progress | None,
    ) -> bool:
        """Embed every listed image into the target, skipping those a stopped reindex copied already.

        Returns False if the job was cancelled meanwhile.
        """
        seq_of = {sha: i for i, sha in enumerate(shas)}
        for start in range(0, len(shas), BATCH):
            if not self.jobs.still_wanted(job_id):
                return False
            batch = shas[start : start + BATCH]
            done = set(stores.target.get(batch))
            records = stores.active.get([s for s in batch if s not in done])
            results = [ItemResult(seq_of[s], "added", "", s) for s in done]
            written, failed = self._embed_into(stores.target, model, records.values())
            results += [ItemResult(seq_of[s], "added", "", s) for s in written]
            results += [ItemResult(seq_of[s], "failed", reason, s) for s, reason in failed.items()]
            gone = set(batch) - done - set(records)  # deleted since the list was made
            results += [ItemResult(seq_of[s], "duplicate", "", s) for s in gone]
            self.jobs.record(job_id, results)
            self.jobs.heartbeat(owner)
            if progress is not None:
                progress(self.jobs.get(job_id))
        return True

    def _embed_into(
        self, target: MilvusVectorStore, model: Embedder, records: Iterable[Record]
    ) -> tuple[list[str], dict[str, str]]:
        """Embed stored originals with ``model`` into ``target``; return what was written and what failed."""
        items: list[tuple[Record, bytes]] = []
        failed: dict[str, str] = {}
        for record in records:
            path = self.images.original(record.sha256)
            if path is None:
                failed[record.sha256] = "its original file is missing (run `flask --app wsgi check`)"
            else:
                items.append((record, path.read_bytes()))
        rows: list[tuple[Record, np.ndarray]] = []
        for record, decoded, vector in model.embed_many(items):
            if vector is None:
                failed[record.sha256] = getattr(decoded, "message", "it could not be embedded")
            else:
                rows.append((record, vector))
        if rows:
            target.upsert(rows)
        return [r.sha256 for r, _ in rows], failed

    def _catch_up(self, source: MilvusVectorStore, target: MilvusVectorStore, model: Embedder) -> None:
        """Make the target hold exactly the images the source holds (added or deleted meanwhile)."""
        wanted, have = set(source.ids()), set(target.ids())
        missing = sorted(wanted - have)
        for start in range(0, len(missing), BATCH):
            self._embed_into(target, model, source.get(missing[start : start + BATCH]).values())
        if extra := sorted(have - wanted):
            target.delete(extra)

    def _drop(self, collection: str, dim: int) -> None:
        """Drop the collection the library no longer searches, and its record."""
        try:
            self._open_store(collection, dim).drop()
        except Exception:  # the library is switched already: a leftover collection is only wasted space
            log.exception("could not drop the retired collection %s", collection)
            return
        self.binding.forget(collection)
