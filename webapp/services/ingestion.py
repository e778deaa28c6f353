"""Ingestion: the one door to starting, cancelling and resuming jobs, and the units of work.

A job is split into chunks of CHUNK items. Two units of work carry it, whatever engine runs them
(a thread of this process in the embedded default, Celery workers on any machine when scaled out):
``prepare`` lists the source's items and sends one ``chunk`` message per chunk; ``chunk``
processes that chunk's pending items. Item ids are content hashes and items are recorded only
while pending, so a chunk delivered twice (a worker died mid-chunk) counts nothing twice.
"""

from __future__ import annotations

import logging
import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol

from webapp.errors import Conflict, InvalidInput, NotFound, StoreUnavailable, WebappError
from webapp.services.albums import within
from webapp.services.jobs import RESUMABLE, Failure, ItemResult, Job, JobRepository, JobStatus
from webapp.services.library import Batch, Library, Outcome
from webapp.services.priority import background_thread
from webapp.services.sources import Source, allowed_folder, check_archive, open_source

log = logging.getLogger(__name__)
CHUNK = 256  # items per unit of work: a few seconds of one worker, so workers share a big job
BATCH = 64  # files read, embedded and written per step (the model sees EMBED_BATCH_SIZE at a time)

Progress = Callable[[Job], None]
ShouldStop = Callable[[], bool]


class Upload(Protocol):
    """An uploaded file (werkzeug's FileStorage fits)."""

    filename: str | None

    def save(self, dst: Any) -> None: ...


class WorkQueue(Protocol):
    """What carries units of work: a thread of this process, or a task queue."""

    owner: str  # recorded on the jobs it carries

    def send(self, task: str, job_id: str, chunk: int = 0) -> None: ...
    def depth(self) -> int | None: ...


UPLOADED = ("files", "archive")  # the kinds of job whose files wait in the uploads folder
LOADS = ("folder", "cli", *UPLOADED)  # the kinds of job that load images (not reindexes or duplicate scans)


@dataclass(frozen=True)
class Limits:
    """What one job may bring."""

    max_job_files: int
    max_file_bytes: int
    max_archive_entries: int
    max_archive_expanded_bytes: int
    import_roots: list[str]
    upload_retention: float = 7 * 24 * 3600  # seconds an unfinished job keeps its uploaded files


class Ingestion:
    """Starts jobs, follows them, and runs their units of work."""

    def __init__(
        self,
        store: JobRepository,
        library: Callable[[], Library],
        uploads: Path,
        limits: Limits,
        queue: Callable[[], WorkQueue],
        legacy_spool: Path | None = None,
        chunk_size: int = CHUNK,
    ) -> None:
        self.store = store
        self._library = library
        self.uploads = uploads  # shared storage: a worker on another machine reads what a web machine wrote
        self.limits = limits
        self._queue = queue
        self.legacy_spool = legacy_spool  # where jobs of earlier releases spooled their files
        self.chunk_size = chunk_size

    @property
    def library(self) -> Library:
        """Return the library the units of work write to."""
        return self._library()

    @property
    def queue(self) -> WorkQueue:
        """Return what carries the units of work."""
        return self._queue()

    # The one door: every view, command and compatibility route starts jobs here.

    def start_folder(self, folder: str, trusted: bool = False, album: str = "") -> Job:
        """Start loading a folder on the server (under an import root unless ``trusted``).

        Each file's album is its folder relative to ``folder``, below ``album`` if one is given.
        """
        path = Path(folder).resolve() if trusted else allowed_folder(folder, self.limits.import_roots)
        kind = "cli" if trusted else "folder"
        return self._submit(self.store.create(kind, str(path), self.queue.owner, album=album))

    def start_files(self, uploads: list[Upload], album: str = "") -> Job:
        """Start loading uploaded files (saved to shared storage first) into ``album``."""
        if not uploads:
            raise InvalidInput("send at least one file")
        if len(uploads) > self.limits.max_job_files:
            raise InvalidInput(f"too many files ({len(uploads)}); the limit is {self.limits.max_job_files}")
        queue = self.queue
        job_id = uuid.uuid4().hex
        with self._spooling(job_id) as folder:
            for seq, upload in enumerate(uploads):
                upload.save(folder / f"{seq:06d}")
        label = f"{len(uploads)} uploaded file{'s' if len(uploads) != 1 else ''}"
        job = self.store.create("files", label, queue.owner, job_id=job_id, album=album)
        self.store.set_items(job_id, [u.filename or "unnamed" for u in uploads], self.chunk_size)
        return self._submit(job)

    def start_archive(self, upload: Upload, album: str = "") -> Job:
        """Start loading an uploaded zip archive (refusing anything else, or a bomb); its folders are albums."""
        queue = self.queue
        job_id = uuid.uuid4().hex
        with self._spooling(job_id) as folder:
            upload.save(folder / "archive.zip")
            limits = self.limits
            check_archive(folder / "archive.zip", limits.max_archive_entries, limits.max_archive_expanded_bytes)
        name = upload.filename or "archive.zip"
        return self._submit(self.store.create("archive", name, queue.owner, None, job_id, album))

    def cancel(self, job_id: str) -> Job:
        """Cancel a job; chunks in flight stop after their current batch, what they indexed stays."""
        return self.store.request_cancel(job_id)

    def empty_library(self) -> int:
        """Cancel every queued and running job, then remove every image; return how many there were.

        Cancelled first, so no job refills the library: a chunk checks before each batch that its
        job is still wanted, and again before it writes the batch it embedded meanwhile.
        """
        for job_id in self.store.active_ids():
            try:
                self.store.request_cancel(job_id)
            except Conflict:
                pass  # it ended meanwhile
        return self.library.clear()

    def resume(self, job_id: str) -> Job:
        """Queue an interrupted, failed or cancelled job again; it skips what it already processed."""
        job = self.store.get(job_id)
        if job.kind == "reindex":
            raise Conflict("run the reindex again (`flask --app wsgi reindex`): it continues where it stopped")
        if job.kind == "duplicates":
            raise Conflict("start a new duplicate scan instead (Duplicates page, or POST /api/v1/duplicates/scan)")
        if job.kind in UPLOADED and job.status in RESUMABLE and not self.upload_dir(job_id).is_dir():
            days = self.limits.upload_retention / 86400
            raise Conflict(
                f"this job's uploaded files were removed {days:g} days after it stopped "
                "(WEBAPP_UPLOAD_RETENTION_HOURS): start a new job with them"
            )
        queue = self.queue
        return self._submit(self.store.requeue(job_id, queue.owner))

    def get(self, job_id: str) -> Job:
        """Return a job's state."""
        return self.store.get(job_id)

    def recent(self, offset: int, limit: int, loads_only: bool = False) -> tuple[list[Job], int]:
        """Return a page of jobs (only loads of images, if ``loads_only``), newest first, and how many there are."""
        return self.store.recent(offset, limit, LOADS if loads_only else ())

    def failures(self, job_id: str) -> list[Failure]:
        """Return the files a job could not index, with their reasons."""
        return self.store.failures(job_id)

    def upload_dir(self, job_id: str) -> Path:
        """Return the folder of a job's uploaded files (a legacy spool if that is where they are)."""
        folder = self.uploads / job_id
        legacy = self.legacy_spool / job_id if self.legacy_spool else None
        return legacy if legacy is not None and legacy.is_dir() and not folder.is_dir() else folder

    @contextmanager
    def _spooling(self, job_id: str) -> Iterator[Path]:
        folder = self.uploads / job_id
        folder.mkdir(parents=True)
        try:
            yield folder
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise

    def drop_stale_uploads(self) -> list[str]:
        """Remove uploaded files no job will read again; return the ids of the jobs they belonged to.

        A finished job drops its files as it ends; these are the files of jobs that stopped
        unfinished longer than the retention ago (they can no longer be resumed), of jobs that no
        longer exist, and of finished jobs whose worker died before removing them.
        """
        if not self.uploads.is_dir():
            return []
        now, dropped = time.time(), []
        for folder in self.uploads.iterdir():
            try:
                job: Job | None = self.store.get(folder.name)
            except NotFound:
                job = None
            if job is None:
                stale = folder.stat().st_mtime < now - 3600  # not a job being created right now
            elif job.status == JobStatus.DONE:
                stale = True
            else:
                stale = not job.active and (job.finished_at or now) < now - self.limits.upload_retention
            if stale:
                shutil.rmtree(folder, ignore_errors=True)
                dropped.append(folder.name)
        return dropped

    def _submit(self, job: Job) -> Job:
        try:
            self.drop_stale_uploads()  # now and then, as jobs start: no timer needed
        except (OSError, WebappError) as exc:
            log.warning("could not look for stale uploads: %s", exc)
        try:
            self.queue.send("prepare", job.id)
        except StoreUnavailable as exc:
            self.store.move(job.id, JobStatus.FAILED, exc.message)  # resumable once the queue is back
            raise
        return self.store.get(job.id)

    # The units of work.

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
        self.store.move(job_id, JobStatus.RUNNING)
        return self.store.pending_chunks(job_id)

    def run_chunk(self, job_id: str, chunk: int, should_stop: ShouldStop = lambda: False) -> None:
        """Process a chunk's pending items; the last chunk to end marks the job done."""
        job = self.store.get(job_id)
        if not job.active:
            return
        self.store.move(job_id, JobStatus.RUNNING)
        try:
            with self._source(job) as source:
                stopped = self._process(job, chunk, source, should_stop)
        except WebappError as exc:
            self.store.move(job_id, JobStatus.FAILED, exc.message)
            return
        except Exception:  # a job must never take the worker down with it
            log.exception("job %s chunk %d failed", job_id, chunk)
            self.store.move(job_id, JobStatus.FAILED, "an unexpected error stopped the job (its worker logged it)")
            return
        if stopped:
            self.store.move(job_id, JobStatus.INTERRUPTED)
        else:
            self._finish(job_id)

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
            if job.kind == "duplicates":
                self.queue.send("duplicates", job.id)  # a scan starts over: it has no items
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

    def run_here(self, folder: Path, owner: str, progress: Progress | None = None) -> Job:
        """Load a folder in the calling thread (the ``ingest`` command); return the job's final state."""
        job_id = self.store.create("cli", str(folder.resolve()), owner).id
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
        shutil.rmtree(self.upload_dir(job_id), ignore_errors=True)  # first: a flush can take seconds
        try:
            self.library.vectors.checkpoint()  # what the job indexed survives a crash
        except WebappError as exc:
            log.warning("job %s: could not flush the vector store: %s", job_id, exc.message)

    @contextmanager
    def _source(self, job: Job) -> Iterator[Source]:
        settings = {"MAX_FILE_BYTES": self.limits.max_file_bytes, "IMPORT_ROOTS": self.limits.import_roots}
        with open_source(job.kind, job.source, self.upload_dir(job.id), settings) as source:
            yield source

    def _reconcile(self, job_id: str) -> None:
        """Before resuming, reopen items whose vectors a crash lost (Milvus Lite's unflushed writes)."""
        done = self.store.indexed_items(job_id)
        lost: list[int] = []
        for start in range(0, len(done), 1000):
            part = done[start : start + 1000]
            present = self.library.vectors.get({sha for _, sha in part})
            lost += [seq for seq, sha in part if sha not in present]
        if lost:
            reopened = set(lost)
            self.library.forget({sha for seq, sha in done if seq in reopened})
            self.store.reopen_items(job_id, lost)

    def _process(self, job: Job, chunk: int, source: Source, should_stop: ShouldStop) -> bool:
        """Embed batch N+1 while batch N is written; tell whether the job was stopped midway."""
        library, job_id = self.library, job.id
        tag = f"job:{job_id[:8]}"
        items = self.store.pending(job_id, chunk)
        writing: tuple[list[tuple[int, str]], Future[list[Outcome] | None]] | None = None
        in_flight: set[str] = set()
        stopped = False
        with ThreadPoolExecutor(1, thread_name_prefix="ingest-write", initializer=background_thread) as writer:
            for start in range(0, len(items) + BATCH, BATCH):
                batch_items = items[start : start + BATCH]
                if batch_items and (should_stop() or not self.store.still_wanted(job_id)):
                    stopped, batch_items = should_stop(), []
                prepared = None
                if batch_items:
                    entries = [source.read(seq, name) for seq, name in batch_items]
                    if job.album:
                        entries = [replace(e, album=within(job.album, e.album)) for e in entries]
                    batch = library.prepare(entries, tag, in_flight)
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

    def _commit(self, job_id: str, batch: Batch) -> list[Outcome] | None:
        """Write a batch unless its job was cancelled (the library emptied) while it was embedded.

        Its thumbnails are made when first asked for, not here (Library.thumbnail).
        """
        return self.library.commit(batch, thumbnails=False) if self.store.still_wanted(job_id) else None

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
