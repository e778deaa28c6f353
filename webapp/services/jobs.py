"""Ingestion jobs as persisted: the store (pure persistence) behind a Protocol; their items: job_items.py."""

from __future__ import annotations

import logging
import socket
import time
import uuid
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import fields
from typing import Any, Protocol

from sqlalchemy import func, select, update

from webapp.errors import Conflict, NotFound, WebappError
from webapp.services.database import job_items, jobs, page_bounds
from webapp.services.job_items import JobItems
from webapp.services.job_states import (
    ACTIVE,
    EMPTIED,
    RESUMABLE,
    TRANSITIONS,
    CheckedFile,
    DuplicateFile,
    Failure,
    ItemResult,
    Job,
    JobStatus,
    Match,
    is_dead,
    local_owner,
    sources_of,
)

__all__ = [
    "ACTIVE",
    "RESUMABLE",
    "DuplicateFile",
    "Failure",
    "ItemResult",
    "Job",
    "JobStatus",
    "JobStore",
    "local_owner",
]

log = logging.getLogger(__name__)
STALE_AFTER = 20.0  # seconds without a heartbeat before a local job counts as interrupted
HEARTBEAT_EVERY = 5.0
QUEUE_OWNER = "queue"  # jobs carried by the task queue: its redelivery, not a heartbeat, keeps them alive


class JobRepository(Protocol):
    """Job persistence as the ingestion service uses it (JobStore: SQLAlchemy; a fake in unit tests)."""

    def create(
        self,
        kind: str,
        source: str,
        owner: str,
        names: list[str] | None = None,
        job_id: str = "",
        album: str = "",
        started_by: str = "",
    ) -> Job: ...
    def set_items(self, job_id: str, names: list[str], chunk_size: int = 256) -> None: ...
    def names(self, job_id: str, state: str | None = None) -> list[str]: ...
    def items(self, job_id: str, state: str | None = None) -> list[tuple[int, str]]: ...
    def get(self, job_id: str) -> Job: ...
    def recent(self, offset: int, limit: int, kinds: Collection[str] = ()) -> tuple[list[Job], int]: ...
    def failures(self, job_id: str, limit: int = 1000, offset: int = 0, after: int = -1) -> list[Failure]: ...
    def failure_count(self, job_id: str, after: int = -1) -> int: ...
    def duplicates(self, job_id: str, limit: int = 1000, offset: int = 0, after: int = -1) -> list[DuplicateFile]: ...
    def duplicate_count(self, job_id: str, after: int = -1) -> int: ...
    def has_items(self, job_id: str) -> bool: ...
    def pending(self, job_id: str, chunk: int) -> list[tuple[int, str]]: ...
    def pending_chunks(self, job_id: str) -> list[int]: ...
    def record(
        self, job_id: str, results: list[ItemResult], matches: Mapping[int, Sequence[Match]] | None = None
    ) -> int: ...
    def checked(
        self, job_id: str, limit: int = 100, offset: int = 0, after: int = -1, states: Sequence[str] = ...
    ) -> list[CheckedFile]: ...
    def checked_count(self, job_id: str, after: int = -1, states: Sequence[str] = ...) -> int: ...
    def compared(self, job_id: str) -> dict[str, int]: ...
    def added_by(self, job_id: str, sha256s: Iterable[str]) -> set[str]: ...
    def loads_of(self, sha256: str) -> list[str]: ...
    def indexed_items(self, job_id: str) -> list[tuple[int, str]]: ...
    def reopen_items(self, job_id: str, seqs: list[int]) -> None: ...
    def move(self, job_id: str, target: JobStatus, error: str | None = None) -> bool: ...
    def still_wanted(self, job_id: str) -> bool: ...
    def active_ids(self) -> list[str]: ...
    def request_cancel(self, job_id: str, emptied: bool = False) -> Job: ...
    def requeue(self, job_id: str, owner: str) -> Job: ...
    def claim_stalled(self, idle_since: float) -> list[Job]: ...
    def latest_of(self, kind: str, source: str) -> Job | None: ...


class JobStore(JobItems):
    """Jobs and their items in the database, shared by every process of one library."""

    def create(
        self,
        kind: str,
        source: str,
        owner: str,
        names: list[str] | None = None,
        job_id: str = "",
        album: str = "",
        started_by: str = "",
    ) -> Job:
        """Create a queued job (started by the account ``started_by``); ``names`` lists its items (in
        chunks of 256) when they are known already."""
        job_id = job_id or uuid.uuid4().hex
        now = time.time()
        with self.db.connect() as conn:
            conn.execute(
                jobs.insert().values(
                    id=job_id,
                    kind=kind,
                    source=source,
                    status=JobStatus.QUEUED,
                    total=None if names is None else len(names),
                    created_at=now,
                    heartbeat=now,
                    owner=owner,
                    album=album,
                    started_by=started_by[:64],
                )
            )
        if names is not None:
            self.set_items(job_id, names)
        return self.get(job_id)

    def get(self, job_id: str) -> Job:
        """Return a job, reporting a local active one whose process went silent as interrupted."""
        with self.db.connect() as conn:
            row = conn.execute(select(jobs).where(jobs.c.id == job_id)).mappings().first()
            if row is None:
                raise NotFound(f"no job with id {job_id}")
            stale = row["owner"] != QUEUE_OWNER and time.time() - row["heartbeat"] > STALE_AFTER
            if row["status"] in ACTIVE and stale:
                conn.execute(update(jobs).where(jobs.c.id == job_id).values(status=JobStatus.INTERRUPTED))
                return _job({**row, "status": JobStatus.INTERRUPTED})
        return _job(dict(row))

    def recent(self, offset: int, limit: int, kinds: Collection[str] = ()) -> tuple[list[Job], int]:
        """Return a page of jobs (of ``kinds`` only, if given), newest first, and how many there are."""
        offset, limit = page_bounds(offset, limit)
        where = [jobs.c.kind.in_(kinds)] if kinds else []
        with self.db.connect() as conn:
            query = select(jobs.c.id).where(*where).order_by(jobs.c.created_at.desc()).limit(limit).offset(offset)
            ids = list(conn.scalars(query))
            total = int(conn.scalar(select(func.count()).select_from(jobs).where(*where)) or 0)
        return [self.get(i) for i in ids], total

    def active_of(self, kind: str) -> Job | None:
        """Return a queued or running job of ``kind``, if there is one."""
        return next((job for job in map(self.get, self.active_ids()) if job.kind == kind), None)

    def latest_of(self, kind: str, source: str) -> Job | None:
        """Return the latest job of ``kind`` started on ``source``, if there is one."""
        query = select(jobs.c.id).where(jobs.c.kind == kind, jobs.c.source == source)
        with self.db.connect() as conn:
            job_id = conn.scalar(query.order_by(jobs.c.created_at.desc()).limit(1))
        return None if job_id is None else self.get(job_id)

    def submit(
        self, kind: str, source: str, owner: str, send: Callable[[str], None], album: str = "", started_by: str = ""
    ) -> Job:
        """Create a job that is one unit of work (a scan, a move) and send it; if it cannot be sent,
        it is left failed (resumable) and the error raised."""
        job = self.create(kind, source, owner, album=album, started_by=started_by)
        try:
            send(job.id)
        except WebappError as exc:
            self.move(job.id, JobStatus.FAILED, exc.message)
            raise
        return self.get(job.id)

    def run_whole(self, job_id: str, what: str, work: Callable[[Job], None]) -> None:
        """Run a job that is one unit of work: running, then whatever ``work`` makes of it; failed,
        with the reason, if it raises. Never raises itself: a job must not take its worker down."""
        job = self.get(job_id)
        if not job.active:
            return
        self.move(job_id, JobStatus.RUNNING)
        try:
            work(job)
        except WebappError as exc:
            self.move(job_id, JobStatus.FAILED, exc.message)
        except Exception:
            log.exception("%s %s failed", what, job_id)
            self.move(job_id, JobStatus.FAILED, f"an unexpected error stopped the {what} (its worker logged it)")

    def count_by_status(self) -> dict[str, int]:
        """Return how many jobs are in each state."""
        with self.db.connect() as conn:
            rows = conn.execute(select(jobs.c.status, func.count()).group_by(jobs.c.status)).all()
        return {str(status): int(n) for status, n in rows}

    def move(self, job_id: str, target: JobStatus, error: str | None = None) -> bool:
        """Move a job to ``target`` if its state allows it (see TRANSITIONS); tell whether it moved."""
        now = time.time()
        values: dict[str, Any] = {"status": target}
        if target == JobStatus.RUNNING:
            values |= {
                "started_at": func.coalesce(jobs.c.started_at, now),
                "run_started_at": now,
                "run_start_processed": jobs.c.processed,
                "heartbeat": now,
                "finished_at": None,
                "error": None,
            }
        elif target == JobStatus.QUEUED:
            values |= {"cancel_requested": 0, "heartbeat": now, "error": None, "finished_at": None}
        else:
            values |= {"finished_at": now, "error": error}
        query = update(jobs).where(jobs.c.id == job_id, jobs.c.status.in_(sources_of(target))).values(**values)
        if target == JobStatus.DONE:  # only once nothing is left to do, whoever finishes last
            left = select(job_items.c.seq).where(job_items.c.job_id == job_id, job_items.c.state == "pending")
            query = query.where(~left.exists())
        with self.db.connect() as conn:
            return conn.execute(query).rowcount == 1

    def own(self, job_id: str, owner: str) -> None:
        """Record which process (or the queue) carries a job now."""
        with self.db.connect() as conn:
            conn.execute(update(jobs).where(jobs.c.id == job_id).values(owner=owner, heartbeat=time.time()))

    def active_ids(self) -> list[str]:
        """Return the ids of the queued and running jobs."""
        with self.db.connect() as conn:
            return list(conn.scalars(select(jobs.c.id).where(jobs.c.status.in_([str(s) for s in ACTIVE]))))

    def request_cancel(self, job_id: str, emptied: bool = False) -> Job:
        """Cancel a job: it stops taking new items at once; what it indexed stays, unless the library
        is being ``emptied``: then a batch it was writing meanwhile is taken back (Job.emptied)."""
        job = self.get(job_id)
        if JobStatus.CANCELLED not in TRANSITIONS[job.status]:
            raise Conflict(f"job {job_id} is already {job.status}")
        with self.db.connect() as conn:
            conn.execute(update(jobs).where(jobs.c.id == job_id).values(cancel_requested=EMPTIED if emptied else 1))
        self.move(job_id, JobStatus.CANCELLED)
        return self.get(job_id)

    def requeue(self, job_id: str, owner: str) -> Job:
        """Queue an interrupted, failed or cancelled job again."""
        job = self.get(job_id)
        if job.status not in RESUMABLE or not self.move(job_id, JobStatus.QUEUED):
            names = ", ".join(RESUMABLE)
            raise Conflict(f"job {job_id} is {job.status}; only {names} jobs can be resumed")
        self.own(job_id, owner)
        return self.get(job_id)

    def still_wanted(self, job_id: str) -> bool:
        """Tell whether a job should go on (not cancelled, failed or interrupted meanwhile)."""
        with self.db.connect() as conn:
            row = conn.execute(select(jobs.c.status, jobs.c.cancel_requested).where(jobs.c.id == job_id)).first()
        return row is not None and row[0] in ACTIVE and not row[1]

    def claim_stalled(self, idle_since: float) -> list[Job]:
        """Return the active queue jobs with no progress since ``idle_since``, claimed for a resend.

        Claiming bumps their heartbeat in a conditional update, so of several workers sweeping at
        once only one resends a given job's work.
        """
        query = select(jobs.c.id).where(
            jobs.c.owner == QUEUE_OWNER,
            jobs.c.status.in_([str(s) for s in ACTIVE]),
            jobs.c.cancel_requested == 0,
            jobs.c.heartbeat < idle_since,
        )
        claimed = []
        with self.db.connect() as conn:
            for job_id in list(conn.scalars(query)):
                bump = update(jobs).where(jobs.c.id == job_id, jobs.c.heartbeat < idle_since)
                if conn.execute(bump.values(heartbeat=time.time())).rowcount == 1:
                    claimed.append(job_id)
        return [self.get(job_id) for job_id in claimed]

    def progress(self, job_id: str, processed: int, total: int) -> None:
        """Record how far a job without items (a duplicate scan) got."""
        with self.db.connect() as conn:
            conn.execute(
                update(jobs).where(jobs.c.id == job_id).values(processed=processed, total=total, heartbeat=time.time())
            )

    def heartbeat(self, owner: str) -> None:
        """Tell other processes that this process's active jobs are alive."""
        with self.db.connect() as conn:
            conn.execute(
                update(jobs)
                .where(jobs.c.owner == owner, jobs.c.status.in_([str(s) for s in ACTIVE]))
                .values(heartbeat=time.time())
            )

    def reap_dead(self) -> None:
        """Mark interrupted the active local jobs of processes on this host that no longer exist."""
        host = socket.gethostname()
        with self.db.connect() as conn:
            rows = conn.execute(select(jobs.c.id, jobs.c.owner).where(jobs.c.status.in_([str(s) for s in ACTIVE])))
            dead = [job_id for job_id, owner in rows if is_dead(owner, host)]
            if dead:
                query = update(jobs).where(jobs.c.id.in_(dead)).values(status=JobStatus.INTERRUPTED)
                conn.execute(query)


def _job(row: dict[str, Any]) -> Job:
    values = {f.name: row[f.name] for f in fields(Job)}
    values["status"] = JobStatus(values["status"])
    return Job(**values)
