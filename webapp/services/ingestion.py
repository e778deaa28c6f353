"""Ingestion: the one door to starting, cancelling, resuming and following jobs.

Every view, command and compatibility route starts jobs here; their units of work are in
services/units.py.
"""

from __future__ import annotations

import logging
import shutil
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any, Protocol, TypeVar

from webapp.errors import Conflict, InvalidInput, NotFound, StoreUnavailable, WebappError
from webapp.services.adding import clean_path
from webapp.services.archives import check_archive
from webapp.services.job_items import CHECKED
from webapp.services.job_states import (
    CHECK,
    CHECKS,
    KEEPS_NEW,
    LOADS,
    NEW,
    OF_JOB,
    UPLOADED,
    WHOLE_JOBS,
    CheckedFile,
    job_tag,
    source_kind,
)
from webapp.services.jobs import RESUMABLE, DuplicateFile, Failure, Job, JobStatus
from webapp.services.records import Record
from webapp.services.sources import allowed_folder
from webapp.services.units import UnitsOfWork

log = logging.getLogger(__name__)
Item = TypeVar("Item", Failure, DuplicateFile, CheckedFile)


class Upload(Protocol):
    """An uploaded file (werkzeug's FileStorage fits)."""

    filename: str | None

    def save(self, dst: Any) -> None: ...


class WorkQueue(Protocol):
    """What carries units of work: a thread of this process, or a task queue."""

    owner: str  # recorded on the jobs it carries

    def send(self, task: str, job_id: str, chunk: int = 0) -> None: ...
    def depth(self) -> int | None: ...


class Ingestion(UnitsOfWork):
    """Starts jobs and follows them; runs their units of work (UnitsOfWork)."""

    def start_folder(
        self, folder: str, trusted: bool = False, album: str = "", by: str = "", check: bool = False
    ) -> Job:
        """Start loading a folder on the server (under an import root unless ``trusted``), for the account ``by``.

        Each file's album is its folder relative to ``folder``, below ``album`` if one is given. With
        ``check``, nothing is added: each file is compared with the library (with ``album`` only, if
        given; services/checks.py). So for the other sources.
        """
        path = Path(folder).resolve() if trusted else allowed_folder(folder, self.limits.import_roots)
        kind = self._kind("cli" if trusted else "folder", check, album)
        return self._submit(self.store.create(kind, str(path), self.queue.owner, album=album, started_by=by))

    def _kind(self, kind: str, check: bool, album: str) -> str:
        """Return the kind of a job reading a source of ``kind``: a check's, if asked (refused for an
        album on a library made before albums, before any file is taken)."""
        if not check:
            return kind
        self.library.vectors.album_filter(album)
        return CHECK + kind

    def start_files(self, uploads: list[Upload], album: str = "", by: str = "", check: bool = False) -> Job:
        """Start loading uploaded files (saved to shared storage first) into ``album``, for the account ``by``."""
        if not uploads:
            raise InvalidInput("send at least one file")
        if len(uploads) > self.limits.max_job_files:
            raise InvalidInput(f"too many files ({len(uploads)}); the limit is {self.limits.max_job_files}")
        queue = self.queue
        job_id = uuid.uuid4().hex
        with self._spooling(job_id) as folder:
            for seq, upload in enumerate(uploads):
                upload.save(folder / f"{seq:06d}")
        kind = self._kind("files", check, album)
        job = self.store.create(kind, _uploaded(len(uploads)), queue.owner, job_id=job_id, album=album, started_by=by)
        self.store.set_items(job_id, [clean_path(u.filename) for u in uploads], self.chunk_size)
        return self._submit(job)

    def start_archive(self, upload: Upload, album: str = "", by: str = "", check: bool = False) -> Job:
        """Start loading an uploaded zip archive (refusing anything else, or a bomb), for the account
        ``by``; its folders are albums."""
        queue, kind = self.queue, self._kind("archive", check, album)
        job_id = uuid.uuid4().hex
        with self._spooling(job_id) as folder:
            upload.save(folder / "archive.zip")
            limits = self.limits
            check_archive(folder / "archive.zip", limits.max_archive_entries, limits.max_archive_expanded_bytes)
        name = clean_path(upload.filename, "archive.zip")
        return self._submit(self.store.create(kind, name, queue.owner, None, job_id, album, by))

    def load_new(self, check_id: str, album: str = "", by: str = "") -> Job:
        """Start loading the files a check found new (neither their bytes nor the same picture in
        the library), into ``album``, for the account ``by``.

        From a server folder, checked against the import roots again: a file changed since the
        check is loaded as it is now. Uploaded files and archives are kept by their check for
        UPLOAD_RETENTION_HOURS (KEEPS_NEW): the load reads links to them (copies where the storage
        has no links), so the check can add them again, into another album.
        """
        check = self.store.get(check_id)
        if check.kind not in CHECKS:
            raise Conflict("only a check can add the files it found new")
        if check.status != JobStatus.DONE:
            raise Conflict(f"the check is {check.status}: let it finish (resume it) first")
        new = self.store.items(check_id, NEW)
        if not new:
            raise Conflict("the check found no new file")
        names = [name for _, name in new]
        if check.kind not in KEEPS_NEW:
            path = allowed_folder(check.source, self.limits.import_roots)
            job = self.store.create("folder", str(path), self.queue.owner, album=album, started_by=by)
            self.store.set_items(job.id, names, self.chunk_size)
            return self._submit(job)
        kept = self.upload_dir(check_id)
        if self.kept_until(check) is None:
            days = self.limits.upload_retention / 86400
            if (check.finished_at or 0) + self.limits.upload_retention > time.time():
                raise Conflict("the check's files were removed on request: check them again, or upload the new ones")
            raise Conflict(
                f"the check's files were removed {days:g} days after it ended (WEBAPP_UPLOAD_RETENTION_HOURS): "
                "check them again, or upload the new ones"
            )
        job_id = uuid.uuid4().hex
        with self._spooling(job_id) as folder:
            if check.kind == f"{CHECK}archive":
                _link(kept / "archive.zip", folder / "archive.zip")
            for i, (seq, _) in enumerate(new if check.kind == f"{CHECK}files" else ()):
                _link(kept / f"{seq:06d}", folder / f"{i:06d}")
        kind = source_kind(check.kind)
        label = _uploaded(len(new)) if kind == "files" else check.source
        job = self.store.create(kind, label, self.queue.owner, job_id=job_id, album=album, started_by=by)
        self.store.set_items(job_id, names, self.chunk_size)
        return self._submit(job)

    def discard_kept(self, check_id: str) -> int:
        """Remove the files a finished check of uploads or an archive kept of those it found new,
        before its retention is over; return how many files it found new. Conflict if it keeps none."""
        check = self.store.get(check_id)
        if self.kept_until(check) is None:
            raise Conflict(
                "the check keeps no files: only a finished check of uploaded files or an archive keeps "
                "those it found new, until WEBAPP_UPLOAD_RETENTION_HOURS after it ended"
            )
        shutil.rmtree(self.upload_dir(check_id), ignore_errors=True)
        return self.store.checked_count(check_id, states=(NEW,))

    def kept_until(self, check: Job) -> float | None:
        """Return until when (seconds since the epoch) a finished check of uploaded files or an
        archive keeps the files it found new; None if it keeps none (any more)."""
        if check.kind not in KEEPS_NEW or check.status != JobStatus.DONE or not self.upload_dir(check.id).is_dir():
            return None
        until = (check.finished_at or time.time()) + self.limits.upload_retention
        if until <= time.time() or not self.store.checked_count(check.id, states=(NEW,)):
            return None  # (a check that found none removes its files just after it is done)
        return until

    def cancel(self, job_id: str) -> Job:
        """Cancel a job; chunks in flight stop after their current batch, what they indexed stays."""
        return self.store.request_cancel(job_id)

    def empty_library(self) -> int:
        """Cancel every queued and running job, then remove every image; return how many there were.

        Cancelled first, so no job refills the library: a chunk checks before each batch that its
        job is still wanted, and again before it writes the batch it embedded meanwhile; a batch
        that was being written by another process takes itself back (services/units.py).
        """
        for job_id in self.store.active_ids():
            try:
                self.store.request_cancel(job_id, emptied=True)
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
        if job.kind in LOADS and (undo := self.store.latest_of("delete", OF_JOB + job.id)) is not None:
            # Its undo deletes what it added, counted by its place among them: more added since would shift it.
            raise Conflict(f"this load was undone (job {undo.id}): start a new load with its files instead")
        if job.kind in UPLOADED and job.status in RESUMABLE and not self.upload_dir(job_id).is_dir():
            days = self.limits.upload_retention / 86400
            raise Conflict(
                f"this job's uploaded files were removed {days:g} days after it stopped "
                "(WEBAPP_UPLOAD_RETENTION_HOURS): start a new job with them"
            )
        queue = self.queue
        # A move goes on with the images still in its old album (services/album_moves.py), a
        # deletion with those still there (services/deletions.py).
        return self._submit(self.store.requeue(job_id, queue.owner), job.kind if job.kind in WHOLE_JOBS else "prepare")

    def get(self, job_id: str) -> Job:
        """Return a job's state."""
        return self.store.get(job_id)

    def job_that_added(self, image: Record) -> str | None:
        """Return the id of the job that added an image as the library holds it, if a job did."""
        return next((job_id for job_id in self.store.loads_of(image.sha256) if job_tag(job_id) == image.source), None)

    def recent(self, offset: int, limit: int, loads_only: bool = False) -> tuple[list[Job], int]:
        """Return a page of jobs (only loads of images, if ``loads_only``), newest first, and how many there are."""
        return self.store.recent(offset, limit, LOADS if loads_only else ())

    def failures(self, job_id: str, limit: int = 1000, offset: int = 0, after: int = -1) -> list[Failure]:
        """Return the files a job could not index, with their reasons (the first 1000 by default).

        ``after`` starts past that place in the job (see ``all_failures``).
        """
        return self.store.failures(job_id, limit, offset, after)

    def failure_count(self, job_id: str, after: int = -1) -> int:
        """Return how many files past ``after`` in the job it could not index."""
        return self.store.failure_count(job_id, after)

    def all_failures(self, job_id: str, page: int = 5000) -> Iterator[Failure]:
        """Yield every file a job could not index, a page of the database at a time, each once."""
        return _every(lambda after: self.store.failures(job_id, page, after=after), page)

    def duplicates(self, job_id: str, limit: int = 100, offset: int = 0, after: int = -1) -> list[DuplicateFile]:
        """Return the files a job found already in the library (the first 100 by default), each with
        the image it matched as the library holds it now (``record`` None: deleted since).

        ``after`` starts past that place in the job, as for ``failures``.
        """
        found = self.store.duplicates(job_id, limit, offset, after)
        records = self.library.records((d.sha256 for d in found), fresh=False)  # shown: a page need not wait
        return [replace(d, record=records.get(d.sha256)) for d in found]

    def duplicate_count(self, job_id: str, after: int = -1) -> int:
        """Return how many files past ``after`` in the job it found already in the library."""
        return self.store.duplicate_count(job_id, after)

    def all_duplicates(self, job_id: str, page: int = 1000) -> Iterator[DuplicateFile]:
        """Yield every file a job found already in the library, with its image, a page at a time, each once."""
        return _every(lambda after: self.duplicates(job_id, page, after=after), page)

    def checked(
        self, job_id: str, limit: int = 100, offset: int = 0, after: int = -1, states: Sequence[str] = CHECKED
    ) -> list[CheckedFile]:
        """Return the files a check compared with the library (the first 100 by default; only those
        of ``states``, if given), each with its verdict and its closest images as the library holds
        them now (``after`` as for ``failures``)."""
        files = self.store.checked(job_id, limit, offset, after, states)
        records = self.library.records({m[0] for f in files for m in f.matches}, fresh=False)
        return [replace(f, records=records) for f in files]

    def checked_count(self, job_id: str, after: int = -1, states: Sequence[str] = CHECKED) -> int:
        """Return how many files past ``after`` in a check it compared, or could not read (of ``states``)."""
        return self.store.checked_count(job_id, after, states)

    def all_checked(self, job_id: str, page: int = 1000) -> Iterator[CheckedFile]:
        """Yield every file a check compared, with its closest images, a page at a time, each once."""
        return _every(lambda after: self.checked(job_id, page, after=after), page)

    def compared(self, job_id: str) -> dict[str, int]:
        """Return how many files a check found in the library, like one of its images, or new."""
        return self.store.compared(job_id)

    @contextmanager
    def _spooling(self, job_id: str) -> Iterator[Path]:
        folder = self.uploads / job_id
        try:
            folder.mkdir(parents=True)
            yield folder
        except OSError as exc:  # a full disk, a read-only mount: say so (503)
            shutil.rmtree(folder, ignore_errors=True)
            reason = exc.strerror or exc
            raise StoreUnavailable(f"the upload could not be saved ({reason}); no job was started") from exc
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise

    def drop_stale_uploads(self) -> list[str]:
        """Remove uploaded files no job will read again; return the ids of the jobs they belonged to.

        A finished job drops its files as it ends; these are the files of jobs that stopped
        unfinished longer than the retention ago (they can no longer be resumed), of checks that
        ended as long ago (the files they found new), of jobs that no longer exist, and of finished
        jobs whose worker died before removing them.
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
                stale = self.kept_until(job) is None  # what a check found new is kept a while
            else:
                stale = not job.active and (job.finished_at or now) < now - self.limits.upload_retention
            if stale:
                shutil.rmtree(folder, ignore_errors=True)
                dropped.append(folder.name)
        return dropped

    def _submit(self, job: Job, task: str = "prepare") -> Job:
        try:
            self.drop_stale_uploads()  # now and then, as jobs start: no timer needed
        except (OSError, WebappError) as exc:
            log.warning("could not look for stale uploads: %s", exc)
        try:
            self.queue.send(task, job.id)
        except StoreUnavailable as exc:
            self.store.move(job.id, JobStatus.FAILED, exc.message)  # resumable once the queue is back
            raise
        return self.store.get(job.id)


def _every(read: Callable[[int], Sequence[Item]], page: int) -> Iterator[Item]:
    """Yield every item ``read(after)`` gives, page after page, each once.

    Each page starts past the last item of the one before, not at an offset: while a job runs, a
    file before that place may fail (or be found a duplicate) meanwhile, and would have shifted
    the pages (it is left out).
    """
    after = -1
    while items := read(after):
        yield from items
        if len(items) < page:
            return
        after = items[-1].seq


def _uploaded(count: int) -> str:
    """Return the source a job of ``count`` uploaded files shows."""
    return f"{count} uploaded file{'s' if count != 1 else ''}"


def _link(kept: Path, to: Path) -> None:
    """Give a job a kept file: a hard link, or a copy where the storage has none; nothing if it is gone."""
    try:
        to.hardlink_to(kept)
    except FileNotFoundError:
        return  # removed meanwhile: the job reports the file as gone
    except OSError:
        shutil.copyfile(kept, to)
