"""Deleting many images in a job: an album with its sub-albums, or what one load added; and
restoring what one such deletion put in the trash, which undoes it.

A selection of up to 500 images is deleted in its request (``Library.delete_many``). An album or a
load can hold any number, so its deletion is a job like an album's move: a batch at a time into
the trash, with progress, cancel and resume (it goes on with what is still there), and carried by
the task queue when scaled out. Each image it deletes is written in the trash with the job's id,
so undoing the deletion (a restore, a job too) brings back exactly those.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from webapp.errors import Conflict, InvalidInput, NotFound
from webapp.services.job_states import LOADS, OF_ALBUM, OF_JOB, job_tag
from webapp.services.jobs import ACTIVE, Job, JobStatus, JobStore
from webapp.services.library import Library
from webapp.services.records import Record
from webapp.services.trash import Trash

KIND, RESTORE = "delete", "restore"
BATCH = 500  # images deleted at a time: one request's selection at most
RESTORE_BATCH = 100  # images restored at a time: each is embedded again, as an upload is


class Deletions:
    """Starts and runs the jobs that delete an album, or the images a load added, into the trash,
    and the restores that undo such a deletion."""

    def __init__(self, jobs: JobStore, library: Callable[[], Library], owner: str) -> None:
        self.jobs = jobs
        self._library = library
        self.owner = owner

    @property
    def library(self) -> Library:
        """Return the library whose images go."""
        return self._library()

    def start_album(self, album: str, send: Callable[[str, str], None], by: str = "") -> Job:
        """Queue deleting ``album`` and its sub-albums, for the account ``by``; return its job."""
        if not album:
            raise InvalidInput("name the album to delete (the library's images without one stay)")
        if not self.library.listed(album):
            raise NotFound(f"the album {album} has no images")
        return self._submit(KIND, OF_ALBUM + album, send, by)

    def undo(self, job_id: str, send: Callable[[str, str], None], by: str = "") -> Job:
        """Undo a load (delete what it added) or a deletion (restore what it deleted), for the
        account ``by``; return the job that does it. One undo at a time: while one stands (409), it
        is the one to follow, or to resume."""
        job = self.jobs.get(job_id)
        if (undo := self.standing_undo(job)) is not None:
            raise Conflict(_undone_already(undo))
        if job.kind == KIND:
            return self.start_restore(job_id, send, by)
        return self.start_load(job_id, send, by)

    def undone_by(self, job: Job) -> Job | None:
        """Return the latest job started to undo ``job`` (a load's deletion, a deletion's restore),
        whatever became of it; None if none was, or ``job`` cannot be undone."""
        if job.kind != KIND and job.kind not in LOADS:
            return None
        return self.jobs.latest_of(RESTORE if job.kind == KIND else KIND, OF_JOB + job.id)

    def standing_undo(self, job: Job) -> Job | None:
        """Return the job that undoes ``job`` while it stands: queued, running, stopped (resume it,
        rather than start another) or done. A load's undo done and undone in turn (its deletion
        restored) no longer stands: the load's images are back, and can be undone again."""
        undo = self.undone_by(job)
        if undo is not None and undo.status == JobStatus.DONE and job.kind in LOADS:
            again = self.undone_by(undo)
            return None if again is not None and again.status == JobStatus.DONE else undo
        return undo

    def start_restore(self, deletion_id: str, send: Callable[[str, str], None], by: str = "") -> Job:
        """Queue restoring what the deletion ``deletion_id`` put in the trash, for the account ``by``."""
        deletion, trash = self.jobs.get(deletion_id), self.library.trash
        if deletion.status in ACTIVE:
            raise Conflict("the deletion is still under way: cancel it first, then undo it")
        if trash is None:
            raise Conflict("the trash is off (WEBAPP_TRASH_DAYS is 0): what the deletion deleted is gone for good")
        if not trash.count_deleted_in(deletion_id):
            raise Conflict("nothing this deletion deleted is in the trash any more (restored, removed or expired)")
        return self._submit(RESTORE, OF_JOB + deletion_id, send, by)

    def start_load(self, load_id: str, send: Callable[[str, str], None], by: str = "") -> Job:
        """Queue deleting the images the load ``load_id`` added that the library still holds as it
        added them, for the account ``by``; return its job."""
        load = self.jobs.get(load_id)
        if load.kind not in LOADS:
            raise Conflict("only a load of images or a deletion can be undone")
        if load.status in ACTIVE:
            raise Conflict("the load is still under way: cancel it first, then undo what it added")
        if not load.added:
            raise Conflict("the load added no images: there is nothing to undo")
        return self._submit(KIND, OF_JOB + load_id, send, by)

    def _submit(self, kind: str, source: str, send: Callable[[str, str], None], by: str) -> Job:
        """Queue a deletion or a restore: one of each kind at a time (409 while another runs)."""
        if running := self.jobs.active_of(kind):
            doing = "deleted" if kind == KIND else "restored"
            raise Conflict(f"images are being {doing} already (job {running.id}); try again when it ends")
        return self.jobs.submit(kind, source, self.owner, lambda job_id: send(kind, job_id), started_by=by)

    def run(self, job_id: str, should_stop: Callable[[], bool] = lambda: False) -> None:
        """Delete the job's images, a batch at a time, into the trash."""
        self.jobs.run_whole(job_id, "deletion", lambda job: self._run(job, should_stop))

    def run_restore(self, job_id: str, should_stop: Callable[[], bool] = lambda: False) -> None:
        """Restore what the job's deletion put in the trash, a batch at a time."""
        self.jobs.run_whole(job_id, "restore", lambda job: self._restore(job, should_stop))

    def _restore(self, job: Job, should_stop: Callable[[], bool]) -> None:
        lib, deletion_id = self.library, job.source.removeprefix(OF_JOB)
        trash = lib.trash
        if trash is None:
            raise Conflict("the trash is off (WEBAPP_TRASH_DAYS is 0): nothing can be restored")
        left, batches = trash.count_deleted_in(deletion_id), _trash_batches(trash, deletion_id)

        def restore(ids: list[str]) -> None:
            # One that fails to come back stays in the trash, and is passed. Resumed, the job goes
            # on from what an earlier run did: that is out of the trash.
            back = [outcome.record for _, outcome in trash.restore(lib, ids) if outcome.status == "added"]
            self.jobs.changed(job.id, "restored", [record for record in back if record is not None])

        self._in_batches(job, job.processed, job.processed + left, batches, restore, should_stop)

    def _run(self, job: Job, should_stop: Callable[[], bool]) -> None:
        lib, source = self.library, job.source
        if source.startswith(OF_ALBUM):  # resumed, it goes on from what an earlier run did: that left the album
            album = source.removeprefix(OF_ALBUM)
            done, batches = job.processed, _album_batches(lib, album)
            total, only = done + lib.listed(album), None
        else:  # resumed, it goes on past the load's images an earlier run looked at (the load has ended)
            load_id = source.removeprefix(OF_JOB)
            done = job.processed
            total, batches = self.jobs.get(load_id).added, _load_batches(self.jobs, load_id, done)
            # What the library holds as that load added it: one deleted since, then added again by
            # another load or an upload, stays.
            only = _added_by(load_id)

        def delete(ids: list[str]) -> None:
            self.jobs.changed(job.id, "deleted", lib.delete_many(ids, job.started_by, job.id, only))

        self._in_batches(job, done, total, batches, delete, should_stop)

    def _in_batches(
        self,
        job: Job,
        done: int,
        total: int,
        batches: Iterator[tuple[int, list[str]]],
        work: Callable[[list[str]], None],
        should_stop: Callable[[], bool],
    ) -> None:
        """Do ``work`` on each batch of ids, with the job's progress (``done`` so far, then how many
        images each looked at), until done, cancelled (what was done stays) or stopped (interrupted:
        resumable)."""
        self.jobs.progress(job.id, done, total)
        for examined, ids in batches:
            if should_stop():
                self.jobs.move(job.id, JobStatus.INTERRUPTED)
                return
            if not self.jobs.still_wanted(job.id):
                return
            work(ids)
            done += examined
            self.jobs.progress(job.id, done, max(done, total))
        self.jobs.move(job.id, JobStatus.DONE)


def _undone_already(undo: Job) -> str:
    """Say why a job cannot be undone again while ``undo`` stands."""
    if undo.status == JobStatus.DONE:
        return f"the job was undone already, by job {undo.id}"
    if undo.status in ACTIVE:
        return f"the job is being undone (job {undo.id}): follow that job"
    return f"undoing the job stopped ({undo.status}, job {undo.id}): resume that job"


def _album_batches(library: Library, album: str) -> Iterator[tuple[int, list[str]]]:
    """Yield how many images of the album and below each batch looked at, and their ids, oldest
    first (a keyset: one that cannot be deleted is passed, not met again)."""
    after: tuple[int, str] | None = None
    while page := library.catalog.following(album, after, BATCH):
        yield len(page), [sha for _, sha, _ in page]
        after = page[-1][:2]


def _load_batches(jobs: JobStore, load_id: str, skip: int = 0) -> Iterator[tuple[int, list[str]]]:
    """Yield the ids of the images the load added, BATCH at a time, in its order, past the first ``skip``."""
    after = -1
    while items := jobs.added_items(load_id, after, BATCH, skip if after == -1 else 0):
        yield len(items), [sha for _, sha in items]
        after = items[-1][0]


def _added_by(load_id: str) -> Callable[[Record], bool]:
    """Return whether a record is of an image as the load ``load_id`` added it."""
    tag = job_tag(load_id)
    return lambda record: record.source == tag


def _trash_batches(trash: Trash, deletion_id: str) -> Iterator[tuple[int, list[str]]]:
    """Yield the ids of the images the deletion put in the trash that it still holds, RESTORE_BATCH
    at a time (a keyset: one that fails to come back is passed, not met again)."""
    after = ""
    while ids := trash.deleted_in(deletion_id, after, RESTORE_BATCH):
        yield len(ids), ids
        after = ids[-1]
