"""The units of work of a job, whatever engine runs them.

A job is split into chunks of CHUNK items. Two units of work carry it (a thread of this process in
the embedded default, Celery workers on any machine when scaled out): ``prepare`` lists the
source's items and sends one ``chunk`` message per chunk; ``chunk`` processes that chunk's pending
items. Item ids are content hashes and items are recorded only while pending, so a chunk delivered
twice (a worker died mid-chunk) counts nothing twice. Jobs are started by ``Ingestion``
(services/ingestion.py), the one door.
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Protocol

from webapp.errors import WebappError
from webapp.services.adding import Batch, Entry, Outcome
from webapp.services.albums import within
from webapp.services.checks import LayoutCache, compare
from webapp.services.job_states import CHECK, CHECKS, KEEPS_NEW, NEW, WHOLE_JOBS, job_tag, source_kind
from webapp.services.jobs import ItemResult, Job, JobRepository, JobStatus
from webapp.services.library import Library
from webapp.services.priority import PRIORITY, background_thread
from webapp.services.sources import Source, open_source
from webapp.services.telemetry import CHECKED

log = logging.getLogger(__name__)
CHUNK = 256  # items per unit of work: a few seconds of one worker, so workers share a big job
BATCH = 64  # files read, embedded and written per step (the model sees EMBED_BATCH_SIZE at a time)
# ... and at most this many of their bytes, past the file that crosses it: a job of 96 scans of
# 26 MB peaked at 5.9 GB, the next batch read while one was written (README, Large files).
BATCH_BYTES = 256 * 1024 * 1024

Progress = Callable[[Job], None]
ShouldStop = Callable[[], bool]


class WorkQueue(Protocol):
    """What carries units of work: a thread of this process, or a task queue."""

    owner: str  # recorded on the jobs it carries

    def send(self, task: str, job_id: str, chunk: int = 0) -> None: ...
    def depth(self) -> int | None: ...


@dataclass(frozen=True)
class Limits:
    """What one job may bring."""

    max_job_files: int
    max_file_bytes: int
    max_archive_entries: int
    max_archive_expanded_bytes: int
    import_roots: list[str]
    upload_retention: float = 7 * 24 * 3600  # seconds an unfinished job keeps its uploaded files


class UnitsOfWork:
    """Runs a job's units of work: listing its items, and processing its chunks."""

    def __init__(
        self,
        store: JobRepository,
        library: Callable[[], Library],
        uploads: Path,
        limits: Limits,
        queue: Callable[[], WorkQueue],
        legacy_spool: Path | None = None,
        chunk_size: int = CHUNK,
        near: float = 0.96,
    ) -> None:
        self.store = store
        self._library = library
        self.uploads = uploads  # shared storage: a worker on another machine reads what a web machine wrote
        self.limits = limits
        self._queue = queue
        self.legacy_spool = legacy_spool  # where jobs of earlier releases spooled their files
        self.chunk_size = chunk_size
        self.near = near  # DUPLICATE_THRESHOLD: what a check calls the same picture (services/checks.py)
        self.layouts = LayoutCache()  # the library's, for the chunks of a check this process runs

    @property
    def library(self) -> Library:
        """Return the library the units of work write to."""
        return self._library()

    @property
    def queue(self) -> WorkQueue:
        """Return what carries the units of work."""
        return self._queue()

    def upload_dir(self, job_id: str) -> Path:
        """Return the folder of a job's uploaded files (a legacy spool if that is where they are)."""
        folder = self.uploads / job_id
        legacy = self.legacy_spool / job_id if self.legacy_spool else None
        return legacy if legacy is not None and legacy.is_dir() and not folder.is_dir() else folder

    def prepare(self, job_id: str) -> None:
        """List the job's items (or, resuming, reopen those a crash lost) and send its chunks."""
        chunks = self._prepare(job_id)
        for chunk in chunks:
            self.queue.send("chunk", job_id, chunk)
        if not chunks:
            self._finish(job_id)

    def _prepare(self, job_id: str) -> list[int]:
        job = self.store.get(job_id)
        if not job.active:
            return []
        try:
            if self.store.has_items(job_id):
                self._reconcile(job_id)
            else:
                with self._source(job) as source:
                    self.store.set_items(job_id, source.names(), self.chunk_size)
        except WebappError as exc:
            self.store.move(job_id, JobStatus.FAILED, exc.message)
            return []
        except Exception:  # failed, not left queued forever (a redelivery would only crash again)
            log.exception("job %s could not list its files", job_id)
            self.store.move(job_id, JobStatus.FAILED, "an unexpected error stopped the job (its worker logged it)")
            return []
        self.store.move(job_id, JobStatus.RUNNING)
        return self.store.pending_chunks(job_id)

    def run_chunk(self, job_id: str, chunk: int, should_stop: ShouldStop = lambda: False) -> None:
        """Process a chunk's pending items; the last chunk to end marks the job done."""
        job = self.store.get(job_id)
        if not job.active:
            return
        self.store.move(job_id, JobStatus.RUNNING)
        try:
            self._run_chunk(job, chunk, should_stop)
        finally:
            if job.kind.startswith(CHECK) and not self.store.get(job_id).active:
                self.layouts.forget(job_id)

    def _run_chunk(self, job: Job, chunk: int, should_stop: ShouldStop) -> None:
        try:
            with self._source(job) as source:
                stopped = self._process(job, chunk, source, should_stop)
        except WebappError as exc:
            self.store.move(job.id, JobStatus.FAILED, exc.message)
            return
        except Exception:  # a job must never take the worker down with it
            log.exception("job %s chunk %d failed", job.id, chunk)
            self.store.move(job.id, JobStatus.FAILED, "an unexpected error stopped the job (its worker logged it)")
            return
        if stopped:
            self.store.move(job.id, JobStatus.INTERRUPTED)
        else:
            self._finish(job.id)

    def redeliver_stalled(self, idle_for: float) -> list[str]:
        """Send again the work of queue jobs that made no progress for ``idle_for`` seconds.

        Celery on Redis redelivers a chunk its worker held unacknowledged when it died, after the
        visibility timeout; but a message popped from the queue by a worker killed before it
        recorded it as unacknowledged is gone. When the queue is empty and a job has not moved for
        longer than the timeout, its messages are lost: its pending chunks are sent again (a chunk
        delivered twice counts nothing twice). Returns the ids of the jobs it resent.
        """
        if self.queue.depth() != 0:  # messages still wait (or the broker is unreachable): nothing is lost yet
            return []
        resent = []
        for job in self.store.claim_stalled(time.time() - idle_for):
            log.warning(
                "job %s made no progress for %.0f s with an empty queue: sending its work again", job.id, idle_for
            )
            if job.kind in WHOLE_JOBS:
                self.queue.send(job.kind, job.id)  # a scan starts over, a move goes on: no items
            elif job.status == JobStatus.QUEUED:
                self.queue.send("prepare", job.id)
            else:
                chunks = self.store.pending_chunks(job.id)
                for chunk in chunks:
                    self.queue.send("chunk", job.id, chunk)
                if not chunks:
                    self._finish(job.id)  # its last chunk's worker died after recording, before finishing
            resent.append(job.id)
        return resent

    def run_here(
        self,
        folder: Path,
        owner: str,
        progress: Progress | None = None,
        by: str = "",
        check: bool = False,
        only: list[str] | None = None,
    ) -> Job:
        """Load a folder in the calling thread (the ``ingest`` command, run by the login ``by``), or
        with ``check`` compare it with the library; return the job's final state. ``only``: load
        these of its files (paths under it) and no others."""
        job_id = self.store.create(f"{CHECK}cli" if check else "cli", str(folder.resolve()), owner, started_by=by).id
        if only is not None:
            self.store.set_items(job_id, only, self.chunk_size)
        for chunk in self._prepare(job_id):
            self.run_chunk(job_id, chunk)
            if progress is not None:
                progress(self.store.get(job_id))
        self._finish(job_id)
        return self.store.get(job_id)

    def _finish(self, job_id: str) -> None:
        """Mark the job done if nothing is left; then flush and drop its uploaded files."""
        if not self.store.move(job_id, JobStatus.DONE):
            return
        self._drop_uploads(job_id)  # first: a flush can take seconds
        try:
            self.library.vectors.checkpoint()  # what the job indexed survives a crash
        except WebappError as exc:
            log.warning("job %s: could not flush the vector store: %s", job_id, exc.message)

    def _drop_uploads(self, job_id: str) -> None:
        """Remove a finished job's uploaded files, but those a check found new (KEEPS_NEW): the
        files themselves, or the archive if any of its entries is new (Ingestion.load_new adds
        them; Ingestion.drop_stale_uploads removes them once UPLOAD_RETENTION_HOURS are over)."""
        folder = self.upload_dir(job_id)
        new = self.store.items(job_id, NEW) if self.store.get(job_id).kind in KEEPS_NEW else []
        if not new:
            shutil.rmtree(folder, ignore_errors=True)
            return
        kept = {f"{seq:06d}" for seq, _ in new} | {"archive.zip"}
        for path in folder.iterdir() if folder.is_dir() else ():
            if path.name not in kept:
                path.unlink(missing_ok=True)

    @contextmanager
    def _source(self, job: Job) -> Iterator[Source]:
        limits, spool, kind = self.limits, self.upload_dir(job.id), source_kind(job.kind)
        with open_source(kind, job.source, spool, limits.max_file_bytes, limits.import_roots) as source:
            yield source

    def _reconcile(self, job_id: str) -> None:
        """Before resuming, reopen items whose vectors a crash lost (Milvus Lite's unflushed writes)."""
        done = self.store.indexed_items(job_id)
        lost: list[int] = []
        for start in range(0, len(done), 1000):
            part = done[start : start + 1000]
            present = self.library.records({sha for _, sha in part})
            lost += [seq for seq, sha in part if sha not in present]
        if lost:
            reopened = set(lost)
            self.library.forget({sha for seq, sha in done if seq in reopened})
            self.store.reopen_items(job_id, lost)

    def _process(self, job: Job, chunk: int, source: Source, should_stop: ShouldStop) -> bool:
        """Embed batch N+1 while batch N is written; tell whether the job was stopped midway."""
        if job.kind in CHECKS:
            return self._check(job, chunk, source, should_stop)
        library, job_id = self.library, job.id
        tag = job_tag(job_id)
        items = self.store.pending(job_id, chunk)
        writing: tuple[list[tuple[int, str]], Future[list[Outcome] | None]] | None = None
        in_flight: set[str] = set()
        stopped = False
        start = 0
        with ThreadPoolExecutor(1, thread_name_prefix="ingest-write", initializer=background_thread) as writer:
            while True:
                batch_items: list[tuple[int, str]] = []
                if start < len(items) and (should_stop() or not self.store.still_wanted(job_id)):
                    stopped, start = should_stop(), len(items)
                if start < len(items):
                    batch_items, entries = _read_batch(source, items, start)
                    start += len(batch_items)
                prepared = None
                if batch_items:
                    entries = [
                        replace(e, album=within(job.album, e.album) if job.album else e.album, added_by=job.started_by)
                        for e in entries
                    ]
                    batch = library.prepare(entries, tag, in_flight, thumbnails=False)
                    in_flight |= batch.new_shas
                    prepared = (batch_items, writer.submit(self._commit, job_id, batch))
                if writing is not None:
                    done_items, future = writing
                    if (outcomes := future.result()) is not None:  # None: cancelled, left pending
                        self._record(job_id, tag, done_items, outcomes)
                writing = prepared
                if writing is None:
                    break
        return stopped

    def _check(self, job: Job, chunk: int, source: Source, should_stop: ShouldStop) -> bool:
        """Compare a check's chunk with the library a batch at a time (services/checks.py), each
        after the searches people are waiting for; tell whether the job was stopped midway."""
        items, start = self.store.pending(job.id, chunk), 0
        known = self.layouts.of(job.id, self.library.catalog, job.album)  # read if a file needs them
        while start < len(items):
            if (stop := should_stop()) or not self.store.still_wanted(job.id):
                return stop
            batch_items, entries = _read_batch(source, items, start)
            start += len(batch_items)
            PRIORITY.step_aside()
            found = compare(self.library, entries, job.album, self.near, known)
            verdicts = dict(zip((seq for seq, _ in batch_items), found, strict=True))
            results = [ItemResult(seq, v.state, v.reason) for seq, v in verdicts.items()]
            if self.store.record(job.id, results, {seq: v.matches for seq, v in verdicts.items()}):
                for verdict in found:  # counted once: a batch done twice (a redelivered chunk) records nothing
                    CHECKED.labels(verdict.state).inc()
        return False

    def _commit(self, job_id: str, batch: Batch) -> list[Outcome] | None:
        """Write a batch unless its job was cancelled (the library emptied) while it was embedded.

        If the library was emptied while it was written, through another process (which cannot wait
        for this one's writes), the images it added are deleted again, and it counts as not written.
        Its JPEGs' thumbnails are made when first asked for (Library.thumbnail), the others' were
        made as they were embedded (Library.prepare).
        """
        outcomes = self.library.commit(batch, wanted=lambda: self.store.still_wanted(job_id))
        if outcomes is not None and self.store.get(job_id).emptied:
            self.library.take_back([o.record.sha256 for o in outcomes if o.status == "added" and o.record])
            return None
        return outcomes

    def _record(self, job_id: str, tag: str, items: list[tuple[int, str]], outcomes: list[Outcome]) -> None:
        """Record outcomes; an image this job wrote before its worker died still counts as added."""
        ours = {o.record.sha256 for o in outcomes if o.status == "duplicate" and o.record and o.record.source == tag}
        ours -= self.store.added_by(job_id, ours)
        # Its worker may have died between the vectors and the catalogue: finish that write too.
        self.library.complete([o.record for o in outcomes if o.record and o.record.sha256 in ours])
        results = []
        for (seq, _), o in zip(items, outcomes, strict=True):
            sha = o.record.sha256 if o.record else None
            state = "added" if o.status == "duplicate" and sha in ours else o.status
            if state == "added" and sha in ours:
                ours.discard(sha)  # a second copy in the same job is a duplicate
            results.append(ItemResult(seq, state, o.reason, sha))
        self.store.record(job_id, results)


def _read_batch(source: Source, items: list[tuple[int, str]], start: int) -> tuple[list[tuple[int, str]], list[Entry]]:
    """Read the next batch of a chunk's items from ``start``: BATCH files, or fewer once BATCH_BYTES are read."""
    taken: list[tuple[int, str]] = []
    entries: list[Entry] = []
    read = 0
    for seq, name in items[start : start + BATCH]:
        if read >= BATCH_BYTES:
            break
        entry = source.read(seq, name)
        taken.append((seq, name))
        entries.append(entry)
        read += len(entry.data) if isinstance(entry.data, bytes) else 0
    return taken, entries
