"""Ingestion jobs: persisted in SQLite, run in a background thread, resumable after a crash."""

from __future__ import annotations

import os
import shutil
import socket
import time
import uuid
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Protocol

from webapp.errors import Conflict, NotFound, WebappError
from webapp.services.sources import check_archive
from webapp.services.sqlite import Database

SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    source TEXT NOT NULL,
    status TEXT NOT NULL,
    total INTEGER,
    processed INTEGER NOT NULL DEFAULT 0,
    added INTEGER NOT NULL DEFAULT 0,
    duplicates INTEGER NOT NULL DEFAULT 0,
    failed INTEGER NOT NULL DEFAULT 0,
    created_at REAL NOT NULL,
    started_at REAL,
    finished_at REAL,
    run_started_at REAL,
    run_start_processed INTEGER NOT NULL DEFAULT 0,
    heartbeat REAL NOT NULL,
    owner TEXT NOT NULL,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    error TEXT
);
CREATE TABLE IF NOT EXISTS job_items (
    job_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    name TEXT NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending',
    reason TEXT,
    sha256 TEXT,
    PRIMARY KEY (job_id, seq)
);
CREATE INDEX IF NOT EXISTS jobs_by_time ON jobs (created_at DESC);
"""

ACTIVE = ("queued", "running")
RESUMABLE = ("interrupted", "failed", "cancelled")
STALE_AFTER = 20.0  # seconds without a heartbeat before an active job counts as interrupted
HEARTBEAT_EVERY = 5.0


@dataclass(frozen=True)
class Job:
    """A job's persisted state."""

    id: str
    kind: str
    source: str
    status: str
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

    @property
    def rate(self) -> float | None:
        """Images per second in the current (or last) run."""
        if self.run_started_at is None:
            return None
        end = self.finished_at if self.status not in ACTIVE and self.finished_at else time.time()
        elapsed = end - self.run_started_at
        done = self.processed - self.run_start_processed
        return done / elapsed if elapsed > 0 and done > 0 else None

    @property
    def eta_seconds(self) -> float | None:
        """Seconds left at the current rate, while running."""
        rate = self.rate
        if self.status != "running" or not rate or self.total is None:
            return None
        return max(self.total - self.processed, 0) / rate


@dataclass(frozen=True)
class Failure:
    """A file a job could not index, and why."""

    name: str
    reason: str


class Upload(Protocol):
    """An uploaded file (werkzeug's FileStorage fits)."""

    filename: str | None

    def save(self, dst: Any) -> None: ...


def _owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _is_dead(owner: str, host: str) -> bool:
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


class JobStore:
    """Jobs and their items in SQLite, shared by every worker of one data directory."""

    def __init__(self, db: Database, spool: Path, archive_limits: tuple[int, int] = (100_000, 2**34)) -> None:
        self.db = db
        self.spool = spool
        self.archive_limits = archive_limits  # (entries, expanded bytes) of one zip archive
        db.migrate(SCHEMA)

    def create_from_files(self, uploads: list[Upload]) -> Job:
        """Spool uploaded files and create a queued job for them."""
        job_id = uuid.uuid4().hex
        spool = self.spool_dir(job_id)
        spool.mkdir(parents=True)
        for seq, upload in enumerate(uploads):
            upload.save(spool / f"{seq:06d}")
        label = f"{len(uploads)} uploaded file{'s' if len(uploads) != 1 else ''}"
        return self.create("files", label, [u.filename or "unnamed" for u in uploads], job_id)

    def create_from_archive(self, upload: Upload) -> Job:
        """Spool an uploaded zip archive (refusing anything else, or a bomb) and create a queued job."""
        job_id = uuid.uuid4().hex
        spool = self.spool_dir(job_id)
        spool.mkdir(parents=True)
        upload.save(spool / "archive.zip")
        try:
            check_archive(spool / "archive.zip", *self.archive_limits)
        except WebappError:
            shutil.rmtree(spool, ignore_errors=True)
            raise
        return self.create("archive", upload.filename or "archive.zip", None, job_id)

    def create(self, kind: str, source: str, names: list[str] | None = None, job_id: str = "") -> Job:
        """Create a queued job; ``names`` lists its items when they are known already."""
        job_id = job_id or uuid.uuid4().hex
        now = time.time()
        with self.db.connect() as conn:
            conn.execute(
                "INSERT INTO jobs (id, kind, source, status, total, created_at, heartbeat, owner)"
                " VALUES (?, ?, ?, 'queued', ?, ?, ?, ?)",
                (job_id, kind, source, None if names is None else len(names), now, now, _owner()),
            )
            if names is not None:
                self._insert_items(conn, job_id, names)
        return self.get(job_id)

    @staticmethod
    def _insert_items(conn: Any, job_id: str, names: list[str]) -> None:
        conn.executemany(
            "INSERT INTO job_items (job_id, seq, name) VALUES (?, ?, ?)",
            [(job_id, seq, name) for seq, name in enumerate(names)],
        )

    def set_items(self, job_id: str, names: list[str]) -> None:
        """Record the items of a job whose source has just been scanned."""
        with self.db.connect() as conn:
            self._insert_items(conn, job_id, names)
            conn.execute("UPDATE jobs SET total = ? WHERE id = ?", (len(names), job_id))

    def get(self, job_id: str) -> Job:
        """Return a job, reporting an active one whose worker died as interrupted."""
        with self.db.connect() as conn:
            row = conn.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
            if row is None:
                raise NotFound(f"no job with id {job_id}")
            if row["status"] in ACTIVE and time.time() - row["heartbeat"] > STALE_AFTER:
                conn.execute("UPDATE jobs SET status = 'interrupted' WHERE id = ?", (job_id,))
                return self._job({**dict(row), "status": "interrupted"})
        return self._job(dict(row))

    def recent(self, offset: int, limit: int) -> tuple[list[Job], int]:
        """Return a page of jobs, newest first, and how many there are."""
        with self.db.connect() as conn:
            ids = [
                r[0]
                for r in conn.execute("SELECT id FROM jobs ORDER BY created_at DESC LIMIT ? OFFSET ?", (limit, offset))
            ]
            total = int(conn.execute("SELECT COUNT(*) FROM jobs").fetchone()[0])
        return [self.get(i) for i in ids], total

    def failures(self, job_id: str, limit: int = 1000) -> list[Failure]:
        """Return the files a job could not index, with their reasons."""
        with self.db.connect() as conn:
            rows = conn.execute(
                "SELECT name, reason FROM job_items WHERE job_id = ? AND state = 'failed' ORDER BY seq LIMIT ?",
                (job_id, limit),
            ).fetchall()
        return [Failure(r["name"], r["reason"] or "") for r in rows]

    def pending(self, job_id: str, limit: int, after: int = -1) -> list[tuple[int, str]]:
        """Return the next items still to process after position ``after``, as (seq, name)."""
        with self.db.connect() as conn:
            rows = conn.execute(
                "SELECT seq, name FROM job_items WHERE job_id = ? AND state = 'pending' AND seq > ?"
                " ORDER BY seq LIMIT ?",
                (job_id, after, limit),
            ).fetchall()
        return [(r["seq"], r["name"]) for r in rows]

    def has_items(self, job_id: str) -> bool:
        """Tell whether a job's source has been scanned into items."""
        with self.db.connect() as conn:
            return conn.execute("SELECT 1 FROM job_items WHERE job_id = ? LIMIT 1", (job_id,)).fetchone() is not None

    def record(self, job_id: str, results: list[tuple[int, str, str, str | None]]) -> None:
        """Store the outcome of processed items (seq, state, reason, sha256) and bump the counters."""
        counts = {state: sum(1 for _, s, _, _ in results if s == state) for state in ("added", "duplicate", "failed")}
        with self.db.connect() as conn:
            conn.executemany(
                "UPDATE job_items SET state = ?, reason = ?, sha256 = ? WHERE job_id = ? AND seq = ?",
                [(state, reason or None, sha, job_id, seq) for seq, state, reason, sha in results],
            )
            conn.execute(
                "UPDATE jobs SET processed = processed + ?, added = added + ?, duplicates = duplicates + ?,"
                " failed = failed + ?, heartbeat = ? WHERE id = ?",
                (len(results), counts["added"], counts["duplicate"], counts["failed"], time.time(), job_id),
            )

    def indexed_items(self, job_id: str) -> list[tuple[int, str]]:
        """Return (seq, sha256) of the items recorded as added or duplicate."""
        with self.db.connect() as conn:
            rows = conn.execute(
                "SELECT seq, sha256 FROM job_items WHERE job_id = ? AND state IN ('added', 'duplicate')"
                " AND sha256 IS NOT NULL",
                (job_id,),
            ).fetchall()
        return [(r["seq"], r["sha256"]) for r in rows]

    def reopen_items(self, job_id: str, seqs: list[int]) -> None:
        """Put items back to pending (their vectors were lost in a crash) and recount the job."""
        with self.db.connect() as conn:
            conn.executemany(
                "UPDATE job_items SET state = 'pending', reason = NULL, sha256 = NULL WHERE job_id = ? AND seq = ?",
                [(job_id, seq) for seq in seqs],
            )
            counts = dict(
                conn.execute(
                    "SELECT state, COUNT(*) FROM job_items WHERE job_id = ? GROUP BY state", (job_id,)
                ).fetchall()
            )
            conn.execute(
                "UPDATE jobs SET processed = ?, added = ?, duplicates = ?, failed = ? WHERE id = ?",
                (
                    sum(n for state, n in counts.items() if state != "pending"),
                    counts.get("added", 0),
                    counts.get("duplicate", 0),
                    counts.get("failed", 0),
                    job_id,
                ),
            )

    def start(self, job_id: str) -> None:
        """Mark a job running in this process."""
        now = time.time()
        with self.db.connect() as conn:
            conn.execute(
                "UPDATE jobs SET status = 'running', started_at = COALESCE(started_at, ?), run_started_at = ?,"
                " run_start_processed = processed, heartbeat = ?, owner = ?, finished_at = NULL, error = NULL"
                " WHERE id = ?",
                (now, now, now, _owner(), job_id),
            )

    def finish(self, job_id: str, status: str, error: str | None = None) -> None:
        """Mark a job done, failed, cancelled or interrupted."""
        with self.db.connect() as conn:
            conn.execute(
                "UPDATE jobs SET status = ?, finished_at = ?, error = ? WHERE id = ?",
                (status, time.time(), error, job_id),
            )

    def request_cancel(self, job_id: str) -> Job:
        """Ask a job to stop; a queued or interrupted one is cancelled at once."""
        job = self.get(job_id)
        if job.status in ("done", "cancelled"):
            raise Conflict(f"job {job_id} is already {job.status}")
        with self.db.connect() as conn:
            conn.execute("UPDATE jobs SET cancel_requested = 1 WHERE id = ?", (job_id,))
            if job.status != "running":
                conn.execute(
                    "UPDATE jobs SET status = 'cancelled', finished_at = ? WHERE id = ?", (time.time(), job_id)
                )
        return self.get(job_id)

    def cancel_requested(self, job_id: str) -> bool:
        """Tell whether someone asked the job to stop."""
        with self.db.connect() as conn:
            row = conn.execute("SELECT cancel_requested FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return bool(row and row[0])

    def requeue(self, job_id: str) -> Job:
        """Queue an interrupted, failed or cancelled job again, in this process."""
        job = self.get(job_id)
        if job.status not in RESUMABLE:
            raise Conflict(f"job {job_id} is {job.status}; only {', '.join(RESUMABLE)} jobs can be resumed")
        with self.db.connect() as conn:
            conn.execute(
                "UPDATE jobs SET status = 'queued', cancel_requested = 0, heartbeat = ?, owner = ?, error = NULL"
                " WHERE id = ?",
                (time.time(), _owner(), job_id),
            )
        return self.get(job_id)

    def heartbeat(self) -> None:
        """Tell other workers this process's active jobs are alive."""
        with self.db.connect() as conn:
            conn.execute(
                "UPDATE jobs SET heartbeat = ? WHERE owner = ? AND status IN ('queued', 'running')",
                (time.time(), _owner()),
            )

    def reap_dead(self) -> None:
        """Mark interrupted the active jobs of processes on this host that no longer exist."""
        host = socket.gethostname()
        with self.db.connect() as conn:
            rows = conn.execute("SELECT id, owner FROM jobs WHERE status IN ('queued', 'running')").fetchall()
            dead = [row["id"] for row in rows if _is_dead(row["owner"], host)]
            conn.executemany("UPDATE jobs SET status = 'interrupted' WHERE id = ?", [(i,) for i in dead])

    def spool_dir(self, job_id: str) -> Path:
        """Return the folder holding a job's uploaded files until it is done."""
        return self.spool / job_id

    @staticmethod
    def _job(row: dict[str, Any]) -> Job:
        return Job(**{f.name: row[f.name] for f in fields(Job)})
