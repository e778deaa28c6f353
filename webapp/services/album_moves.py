"""Moving and renaming albums: one image at once, or an album with its sub-albums in a job.

An album is a label of each image, kept twice: in the catalogue (the pages' lists and counts) and
in Milvus beside the image's vector (searches' filters). Moving an album rewrites both for each of
its images (``Library.move``), a batch at a time, so a large one is a job like a scan: progress,
cancel, resume (it goes on with what is still in the old album), and carried by the task queue
when scaled out.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from unicodedata import normalize

from webapp.errors import Conflict, InvalidInput, NotFound
from webapp.services.albums import MAX_MOVED, renamed
from webapp.services.jobs import Job, JobStatus, JobStore
from webapp.services.library import Library
from webapp.services.records import Record

KIND = "move"
BATCH = 500  # images read, relabelled and written back at a time


class AlbumMoves:
    """Puts images in other albums, keeping the catalogue and the vector store in step."""

    def __init__(
        self, jobs: JobStore, library: Callable[[], Library], reindexing: Callable[[], bool], owner: str
    ) -> None:
        self.jobs = jobs
        self._library = library
        self._reindexing = reindexing  # a reindex copies albums as they were: no move meanwhile
        self.owner = owner

    @property
    def library(self) -> Library:
        """Return the library whose images move."""
        return self._library()

    def move_image(self, sha256: str, album: str) -> Record:
        """Put one image in ``album`` ("" for none); return its record."""
        moved = self.move_images([sha256], album)
        if not moved:
            raise NotFound(f"no image with id {sha256} in the library")
        return moved[0]

    def move_images(self, sha256s: Sequence[str], album: str) -> list[Record]:
        """Put images in ``album`` ("" for none); return the records of those in the library."""
        if len(sha256s) > MAX_MOVED:
            raise InvalidInput(f"move at most {MAX_MOVED} images at once (or their whole album)")
        self._refuse_during_reindex()
        return self.library.move(dict.fromkeys(sha256s, album))

    def start(self, album: str, to: str, send: Callable[[str, str], None], by: str = "") -> Job:
        """Queue moving ``album`` and its sub-albums to ``to`` ("" for the top level), for the account
        ``by``; return its job."""
        if not album:
            raise InvalidInput("name the album to move")
        if to == album:
            raise InvalidInput(f"the album is named {album} already")
        # Another spelling of the same name (é as one character or as e and an accent) merges the
        # two, which lists showed apart; anything else at or below the album is a move into itself.
        if renamed(to, album, "") is not None and normalize("NFC", to) != normalize("NFC", album):
            raise InvalidInput(f"the album {album} cannot be moved into itself ({to})")
        self._refuse_during_reindex()
        if running := self.jobs.active_of(KIND):
            raise Conflict(f"an album is being moved already (job {running.id}); try again when it ends")
        if not self.library.listed(album):
            raise NotFound(f"the album {album} has no images")
        self.library.vectors.album_filter(album)  # 409 on a library made before albums
        return self.jobs.submit(KIND, album, self.owner, lambda job_id: send(KIND, job_id), album=to, started_by=by)

    def run(self, job_id: str, should_stop: Callable[[], bool] = lambda: False) -> None:
        """Move every image of the job's album, oldest first, a batch at a time."""
        self.jobs.run_whole(job_id, "move", lambda job: self._run(job, should_stop))

    def _run(self, job: Job, should_stop: Callable[[], bool]) -> None:
        self._refuse_during_reindex()  # one may have started since the move was queued
        lib, old, new = self.library, job.source, job.album
        catalog = lib.catalog
        done, total = 0, lib.listed(old)
        self.jobs.progress(job.id, done, total)
        after: tuple[int, str] | None = None
        while page := catalog.following(old, after, BATCH):
            if should_stop():
                self.jobs.move(job.id, JobStatus.INTERRUPTED)
                return
            if not self.jobs.still_wanted(job.id):
                return  # cancelled (emptying the library cancels it too): what moved stays moved
            # The catalogue's album decides: where a move was cut short, the vectors may be ahead of it.
            targets = {sha: renamed(album, old, new) for _, sha, album in page}
            moved = lib.move({sha: album for sha, album in targets.items() if album is not None})
            self.jobs.changed(job.id, "moved", moved)
            done += len(page)
            after = page[-1][:2]
            self.jobs.progress(job.id, done, max(done, total))
        lib.covers.rename(old, new)  # the covers people chose go with their albums
        self.jobs.move(job.id, JobStatus.DONE)
        lib.vectors.checkpoint()

    def _refuse_during_reindex(self) -> None:
        if self._reindexing():
            raise Conflict("the library is being re-embedded (reindex): move images once it has switched over")
