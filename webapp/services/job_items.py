"""The items of jobs as persisted: one row per file of a job, numbered into chunks, with what it did."""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy import Row, Select, bindparam, func, select, update

from webapp.services.database import Database, job_items, job_matches, jobs
from webapp.services.job_states import VERDICTS, CheckedFile, DuplicateFile, Failure, ItemResult, Match

if TYPE_CHECKING:
    from webapp.services.records import Record


# What a job did to an image, as its item says: a load added it; a whole job (services/album_moves.py,
# services/deletions.py) moved, deleted or restored it, one item an image, written as each batch ends.
CHANGES = ("added", "moved", "deleted", "restored")
CHECKED = (*VERDICTS, "failed")  # a check's files, read or not (services/checks.py)


def loads_of(sha256: str) -> Select[tuple[str]]:
    """Select the ids of the jobs that added an image (several if it was deleted and loaded again)."""
    return select(job_items.c.job_id).where(job_items.c.sha256 == sha256, job_items.c.state == "added")


def jobs_changing(sha256: str) -> Select[tuple[str]]:
    """Select the ids of the jobs that added, moved, deleted or restored an image, the latest first
    (its history)."""
    changing = job_items.c.sha256 == sha256, job_items.c.state.in_(CHANGES)
    latest_first = jobs.c.created_at.desc().nulls_last()
    of_jobs = select(job_items.c.job_id).outerjoin(jobs, jobs.c.id == job_items.c.job_id)
    return of_jobs.where(*changing).order_by(latest_first)


class JobItems:
    """The items of jobs in the database: which are pending, in which chunk, and what each did."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def set_items(self, job_id: str, names: list[str], chunk_size: int = 256) -> None:
        """Record the items of a job, numbered into chunks of ``chunk_size``."""
        rows = [{"job_id": job_id, "seq": i, "name": n, "chunk": i // chunk_size} for i, n in enumerate(names)]
        with self.db.connect() as conn:
            for start in range(0, len(rows), 5000):
                conn.execute(job_items.insert(), rows[start : start + 5000])
            conn.execute(update(jobs).where(jobs.c.id == job_id).values(total=len(names)))

    def failures(self, job_id: str, limit: int = 1000, offset: int = 0, after: int = -1) -> list[Failure]:
        """Return the files a job could not index, with their reasons, in the job's order.

        ``after`` starts past that place in the job: a running job's files fail out of order (chunks
        run side by side), so a list read by offset meanwhile could repeat or skip one.
        """
        rows = self._in_state(job_id, "failed", limit, offset, after)
        return [Failure(row.name, row.reason or "", row.seq) for row in rows]

    def duplicates(self, job_id: str, limit: int = 1000, offset: int = 0, after: int = -1) -> list[DuplicateFile]:
        """Return the files a job found already in the library, with the image each matched, in the
        job's order (``after`` as for ``failures``)."""
        rows = self._in_state(job_id, "duplicate", limit, offset, after)
        return [DuplicateFile(row.name, row.sha256 or "", row.seq) for row in rows]

    def _in_state(self, job_id: str, state: str, limit: int, offset: int, after: int) -> list[Row[Any]]:
        query = (
            select(job_items.c.seq, job_items.c.name, job_items.c.reason, job_items.c.sha256)
            .where(job_items.c.job_id == job_id, job_items.c.state == state, job_items.c.seq > after)
            .order_by(job_items.c.seq)
            .limit(limit)
            .offset(offset)
        )
        with self.db.connect() as conn:
            return list(conn.execute(query))

    def failure_count(self, job_id: str, after: int = -1) -> int:
        """Return how many files past ``after`` in the job it could not index."""
        return self._count(job_id, "failed", after)

    def duplicate_count(self, job_id: str, after: int = -1) -> int:
        """Return how many files past ``after`` in the job it found already in the library."""
        return self._count(job_id, "duplicate", after)

    def _count(self, job_id: str, state: str | Sequence[str], after: int) -> int:
        states = [state] if isinstance(state, str) else list(state)
        query = select(func.count()).where(
            job_items.c.job_id == job_id, job_items.c.state.in_(states), job_items.c.seq > after
        )
        with self.db.connect() as conn:
            return int(conn.execute(query).scalar_one())

    def names(self, job_id: str, state: str | None = None) -> list[str]:
        """Return the names of a job's items (those in ``state``, if given), in order."""
        return [name for _, name in self.items(job_id, state)]

    def items(self, job_id: str, state: str | None = None) -> list[tuple[int, str]]:
        """Return a job's items (those in ``state``, if given) as (seq, name), in order."""
        query = select(job_items.c.seq, job_items.c.name).where(job_items.c.job_id == job_id).order_by(job_items.c.seq)
        query = query.where(job_items.c.state == state) if state is not None else query
        with self.db.connect() as conn:
            return [(seq, name) for seq, name in conn.execute(query)]

    def pending(self, job_id: str, chunk: int) -> list[tuple[int, str]]:
        """Return the items of a chunk still to process, as (seq, name)."""
        query = (
            select(job_items.c.seq, job_items.c.name)
            .where(job_items.c.job_id == job_id, job_items.c.chunk == chunk, job_items.c.state == "pending")
            .order_by(job_items.c.seq)
        )
        with self.db.connect() as conn:
            return [(seq, name) for seq, name in conn.execute(query)]

    def pending_chunks(self, job_id: str) -> list[int]:
        """Return the chunks that still have items to process."""
        query = (
            select(job_items.c.chunk)
            .where(job_items.c.job_id == job_id, job_items.c.state == "pending")
            .group_by(job_items.c.chunk)
            .order_by(job_items.c.chunk)
        )
        with self.db.connect() as conn:
            return list(conn.scalars(query))

    def has_items(self, job_id: str) -> bool:
        """Tell whether a job's source has been scanned into items."""
        with self.db.connect() as conn:
            first = conn.execute(select(job_items.c.seq).where(job_items.c.job_id == job_id).limit(1)).first()
        return first is not None

    def loads_of(self, sha256: str) -> list[str]:
        """Return the ids of the jobs that added an image."""
        with self.db.connect() as conn:
            return list(conn.scalars(loads_of(sha256)))

    def changed(self, job_id: str, state: str, records: Sequence[Record]) -> None:
        """Record that a whole job moved, deleted or restored (``state``) these images: an item
        each, numbered on from its last, so each image's history finds the job."""
        if not records:
            return
        with self.db.connect() as conn:
            last = conn.scalar(select(func.max(job_items.c.seq)).where(job_items.c.job_id == job_id))
            first = 0 if last is None else last + 1
            rows = [
                {"job_id": job_id, "seq": first + i, "name": rec.filename, "state": state, "sha256": rec.sha256}
                for i, rec in enumerate(records)
            ]
            conn.execute(job_items.insert(), rows)

    def added_by(self, job_id: str, sha256s: Iterable[str]) -> set[str]:
        """Return which of ``sha256s`` an item of this job is recorded as having added."""
        shas = list(sha256s)
        if not shas:
            return set()
        query = select(job_items.c.sha256).where(
            job_items.c.job_id == job_id, job_items.c.state == "added", job_items.c.sha256.in_(shas)
        )
        with self.db.connect() as conn:
            return set(conn.scalars(query))

    def record(
        self, job_id: str, results: list[ItemResult], matches: Mapping[int, Sequence[Match]] | None = None
    ) -> int:
        """Store the outcome of items still pending and bump the counters; return how many counted.

        Items recorded already (by a worker that processed the same chunk before it died) are
        skipped, so a redelivered chunk never counts an item twice. A check's ``matches`` (the
        closest images of each item, by seq) are stored with their items.
        """
        seqs = [r.seq for r in results]
        with self.db.connect() as conn:
            still = set(
                conn.scalars(
                    select(job_items.c.seq)
                    .where(job_items.c.job_id == job_id, job_items.c.seq.in_(seqs), job_items.c.state == "pending")
                    .with_for_update()
                )
            )
            fresh = [r for r in results if r.seq in still]
            if fresh:  # one statement for the batch (executemany): one round trip to a server, not one per item
                conn.execute(
                    update(job_items)
                    .where(job_items.c.job_id == job_id, job_items.c.seq == bindparam("item_seq"))
                    .values(
                        state=bindparam("item_state"), reason=bindparam("item_reason"), sha256=bindparam("item_sha")
                    ),
                    [
                        {
                            "item_seq": r.seq,
                            "item_state": r.state,
                            "item_reason": r.reason or None,
                            "item_sha": r.sha256,
                        }
                        for r in fresh
                    ],
                )
            if found := [
                {"job_id": job_id, "seq": r.seq, "rank": rank, "sha256": sha, "score": score, "same_picture": same}
                for r in fresh
                for rank, (sha, score, same) in enumerate((matches or {}).get(r.seq, ()))
            ]:
                conn.execute(job_matches.insert(), found)
            counts = {s: sum(1 for r in fresh if r.state == s) for s in ("added", "duplicate", "failed")}
            conn.execute(
                update(jobs)
                .where(jobs.c.id == job_id)
                .values(
                    processed=jobs.c.processed + len(fresh),
                    added=jobs.c.added + counts["added"],
                    duplicates=jobs.c.duplicates + counts["duplicate"],
                    failed=jobs.c.failed + counts["failed"],
                    heartbeat=time.time(),
                )
            )
        return len(fresh)

    def checked(
        self, job_id: str, limit: int = 100, offset: int = 0, after: int = -1, states: Sequence[str] = CHECKED
    ) -> list[CheckedFile]:
        """Return the files a check compared (or could not read), in its order (``after`` as for
        ``failures``), each with its closest images; only those of ``states``, if given."""
        query = (
            select(job_items.c.seq, job_items.c.name, job_items.c.state, job_items.c.reason)
            .where(job_items.c.job_id == job_id, job_items.c.state.in_(states), job_items.c.seq > after)
            .order_by(job_items.c.seq)
            .limit(limit)
            .offset(offset)
        )
        with self.db.connect() as conn:
            rows = list(conn.execute(query))
            found: dict[int, list[Match]] = {}
            if rows:
                m = job_matches.c
                ranked = select(m.seq, m.sha256, m.score, m.same_picture).where(
                    m.job_id == job_id, m.seq.in_([row.seq for row in rows])
                )
                for seq, sha, score, same in conn.execute(ranked.order_by(m.seq, m.rank)):
                    found.setdefault(seq, []).append((sha, score, bool(same)))
        return [CheckedFile(r.name, r.seq, r.state, r.reason or "", tuple(found.get(r.seq, ()))) for r in rows]

    def checked_count(self, job_id: str, after: int = -1, states: Sequence[str] = CHECKED) -> int:
        """Return how many files past ``after`` in a check it compared or could not read (of ``states``)."""
        return self._count(job_id, states, after)

    def compared(self, job_id: str) -> dict[str, int]:
        """Return how many files a check found in the library, like one of its images, or new."""
        query = select(job_items.c.state, func.count()).where(
            job_items.c.job_id == job_id, job_items.c.state.in_(VERDICTS)
        )
        with self.db.connect() as conn:
            counts: dict[str, int] = {state: n for state, n in conn.execute(query.group_by(job_items.c.state))}
        return {state: counts.get(state, 0) for state in VERDICTS}

    def added_items(self, job_id: str, after: int, limit: int, offset: int = 0) -> list[tuple[int, str]]:
        """Return (seq, sha256) of up to ``limit`` items the job added, past ``after`` in its order
        (and past the first ``offset`` of those)."""
        query = (
            select(job_items.c.seq, job_items.c.sha256)
            .where(job_items.c.job_id == job_id, job_items.c.state == "added", job_items.c.seq > after)
            .order_by(job_items.c.seq)
            .offset(offset)
            .limit(limit)
        )
        with self.db.connect() as conn:
            return [(seq, sha) for seq, sha in conn.execute(query) if sha]

    def indexed_items(self, job_id: str) -> list[tuple[int, str]]:
        """Return (seq, sha256) of the items recorded as added or duplicate."""
        query = select(job_items.c.seq, job_items.c.sha256).where(
            job_items.c.job_id == job_id, job_items.c.state.in_(["added", "duplicate"]), job_items.c.sha256.is_not(None)
        )
        with self.db.connect() as conn:
            return [(seq, sha) for seq, sha in conn.execute(query)]

    def reopen_items(self, job_id: str, seqs: list[int]) -> None:
        """Put items back to pending (their vectors were lost in a crash) and recount the job."""
        with self.db.connect() as conn:
            for start in range(0, len(seqs), 500):
                conn.execute(
                    update(job_items)
                    .where(job_items.c.job_id == job_id, job_items.c.seq.in_(seqs[start : start + 500]))
                    .values(state="pending", reason=None, sha256=None)
                )
            query = select(job_items.c.state, func.count()).where(job_items.c.job_id == job_id)
            counts: dict[str, int] = {state: n for state, n in conn.execute(query.group_by(job_items.c.state))}
            conn.execute(
                update(jobs)
                .where(jobs.c.id == job_id)
                .values(
                    processed=sum(n for state, n in counts.items() if state != "pending"),
                    added=counts.get("added", 0),
                    duplicates=counts.get("duplicate", 0),
                    failed=counts.get("failed", 0),
                )
            )
