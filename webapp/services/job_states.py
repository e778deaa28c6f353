"""What a job is: its states and their transitions, its persisted record, its items' outcomes."""

from __future__ import annotations

import os
import socket
import time
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from webapp.services.records import Record


class JobStatus(StrEnum):
    """Where a job is in its life."""

    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"
    INTERRUPTED = "interrupted"  # its process stopped or died; resumable


ACTIVE = (JobStatus.QUEUED, JobStatus.RUNNING)
# Kinds of job that are one unit of work, whose task is named as the kind: a scan, an album's move, a
# deletion, and the restore that undoes one.
WHOLE_JOBS = ("duplicates", "move", "delete", "restore")
# How the source of a deletion or a restore starts: an album (a deletion), or a job (the load a
# deletion undoes, the deletion a restore undoes).
OF_ALBUM, OF_JOB = "album ", "job "
LOADS = ("folder", "cli", "files", "archive")  # the kinds of job that load images (not reindexes, scans, moves...)
# A check compares files with the library and adds nothing (services/checks.py): its kind names its source.
CHECK = "check-"
CHECKS = tuple(CHECK + kind for kind in LOADS)
IN_LIBRARY, SIMILAR, NEW = "in_library", "similar", "new"  # what a check finds of a file it reads
VERDICTS = (IN_LIBRARY, SIMILAR, NEW)
UPLOADED = ("files", "archive", f"{CHECK}files", f"{CHECK}archive")  # whose files wait in the uploads folder
# Checks that keep the files they found new once done, for as long as a stopped job keeps its own,
# so they can be added without uploading them again (Ingestion.load_new).
KEEPS_NEW = (f"{CHECK}files", f"{CHECK}archive")
RESUMABLE = (JobStatus.INTERRUPTED, JobStatus.FAILED, JobStatus.CANCELLED)
EMPTIED = 2  # cancel_requested of a job cancelled because the library was emptied (1: cancelled)
# Every move a job can make; the store refuses (or skips) any other.
TRANSITIONS: dict[JobStatus, frozenset[JobStatus]] = {
    JobStatus.QUEUED: frozenset({JobStatus.RUNNING, JobStatus.CANCELLED, JobStatus.FAILED, JobStatus.INTERRUPTED}),
    JobStatus.RUNNING: frozenset({JobStatus.DONE, JobStatus.FAILED, JobStatus.CANCELLED, JobStatus.INTERRUPTED}),
    JobStatus.INTERRUPTED: frozenset({JobStatus.QUEUED, JobStatus.CANCELLED}),
    JobStatus.FAILED: frozenset({JobStatus.QUEUED, JobStatus.CANCELLED}),
    JobStatus.CANCELLED: frozenset({JobStatus.QUEUED}),
    JobStatus.DONE: frozenset(),
}


def sources_of(target: JobStatus) -> list[str]:
    """Return the states a job may move to ``target`` from."""
    return [str(s) for s, targets in TRANSITIONS.items() if target in targets]


@dataclass(frozen=True)
class Job:
    """A job's persisted state."""

    id: str
    kind: str
    source: str
    status: JobStatus
    total: int | None
    processed: int
    added: int
    duplicates: int
    failed: int
    created_at: float
    started_at: float | None
    finished_at: float | None
    run_started_at: float | None
    run_start_processed: int
    heartbeat: float
    owner: str
    cancel_requested: int
    error: str | None
    album: str = ""  # the album its files go into (their own folders below it)
    started_by: str = ""  # the account that started it ("" with access control off); its images' adder

    @property
    def active(self) -> bool:
        """Tell whether the job is queued or running."""
        return self.status in ACTIVE

    @property
    def emptied(self) -> bool:
        """Tell whether the job was cancelled because the library was emptied: what it wrote since goes too."""
        return self.cancel_requested == EMPTIED

    @property
    def rate(self) -> float | None:
        """Images per second in the current (or last) run."""
        if self.run_started_at is None:
            return None
        end = self.finished_at if not self.active and self.finished_at else time.time()
        elapsed = end - self.run_started_at
        done = self.processed - self.run_start_processed
        return done / elapsed if elapsed > 0 and done > 0 else None

    @property
    def eta_seconds(self) -> float | None:
        """Seconds left at the current rate, while running."""
        rate = self.rate
        if self.status != JobStatus.RUNNING or not rate or self.total is None:
            return None
        return max(self.total - self.processed, 0) / rate


@dataclass(frozen=True)
class Failure:
    """A file a job could not index, and why; ``seq`` is its place in the job."""

    name: str
    reason: str
    seq: int = -1


@dataclass(frozen=True)
class DuplicateFile:
    """A file a job did not add because the library held its bytes already.

    ``sha256`` is that image's id, ``seq`` the file's place in the job, and ``record`` the image as
    the library holds it now (None: not read yet, or deleted since).
    """

    name: str
    sha256: str
    seq: int = -1
    record: Record | None = None


# What a check found close to a file: an image's id, its similarity, and whether it is the same picture.
Match = tuple[str, float, bool]


@dataclass(frozen=True)
class CheckedFile:
    """A file a check compared with the library (services/checks.py): its verdict (``state``: in_library,
    similar, new), or why it could not be read (failed), and its closest images, best first (Match);
    ``records`` the images as the library holds them now (those deleted since left out)."""

    name: str
    seq: int
    state: str
    reason: str = ""
    matches: tuple[Match, ...] = ()
    records: dict[str, Record] | None = None

    @property
    def shown(self) -> Match | None:
        """Return the match to show first: the first that is the same picture, else the closest."""
        return next((m for m in self.matches if m[2]), self.matches[0] if self.matches else None)


@dataclass(frozen=True)
class ItemResult:
    """What processing one job item gave: added, duplicate or failed (a check's: services/checks.py)."""

    seq: int
    state: str
    reason: str = ""
    sha256: str | None = None


def source_kind(kind: str) -> str:
    """Return the kind of source a job of ``kind`` reads (a check's: the files, archive or folder it compares)."""
    return kind.removeprefix(CHECK)


def job_tag(job_id: str) -> str:
    """Return the source an image a job loaded is recorded with (the job's id, shortened)."""
    return f"job:{job_id[:8]}"


def local_owner() -> str:
    """Return this process's owner tag (host:pid) for jobs run in its own threads."""
    return f"{socket.gethostname()}:{os.getpid()}"


def is_dead(owner: str, host: str) -> bool:
    """Tell whether ``owner`` (host:pid) is a process of this host that has exited."""
    owner_host, _, pid = owner.rpartition(":")
    if owner_host != host or not pid.isdigit():
        return False
    if int(pid) == os.getpid():
        # Reaping runs before this process owns any job: an earlier process had this pid
        # (common in containers, where a restarted worker gets the same pid).
        return True
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False
