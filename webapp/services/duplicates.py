"""Near-duplicate groups: a scan finds, for every image, the images within a similarity threshold
and joins them into groups; a person then keeps one image of a group and deletes the others.

The scan reads every vector once and asks Milvus for each one's nearest neighbours, a batch of
queries per call (top-k, kept when at least the threshold): it never holds the library's vectors
at once, and its cost grows with the library's size times k (`bench/duplicates.py`: 100,000
vectors). Then it looks up the pairs of pictures whose fingerprints are very close, as they are,
at their centres or turned, for the copies the model puts too far to be neighbours (a photo saved
sideways, or rotated a few degrees: services/fingerprints.py, ``close_copies``). Images joined
through a chain (A like B, B like C) form one group; each member's similarity to the group's
suggested keeper shows how close it really is.

The groups of the last scan are kept in the database and listed a page at a time, so a large
library never builds them in a request; a person reviews them (services/review.py). Deleting an
image removes it from its group (the catalogue does it: ``Catalog.remove``); a group left with one
image goes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy import delete, desc, exists, func, select

from webapp.errors import Conflict, NotFound
from webapp.services.catalog import in_album
from webapp.services.database import Database, duplicate_groups, duplicate_members, images, page_bounds
from webapp.services.fingerprints import FLOOR, LOW_FLOOR, STORED_BYTES, close_copies, from_bytes, same_layout
from webapp.services.grouping import join, parts_of, similar_pairs
from webapp.services.jobs import Job, JobStatus, JobStore
from webapp.services.keepers import Copy, keeper
from webapp.services.library import Library
from webapp.services.priority import PRIORITY
from webapp.services.records import Hit, Record, VectorStore
from webapp.services.verdicts import Verdicts

KIND = "duplicates"
RANK_BATCH = 2000  # images whose records and vectors are fetched at a time to rank their groups
MAX_SHOWN = 50  # members of one group a listing shows (the largest groups are chains worth a look anyway)
MAX_RESOLVED = 500  # members of a group one request may show whole or resolve: a bigger one is a chain


@dataclass(frozen=True)
class Member:
    """An image of a group: its record, its file size, its similarity to the suggested keeper, and
    whether it is laid out as the keeper is (None: no fingerprint to tell)."""

    record: Record
    similarity: float
    keeper: bool
    bytes: int | None
    same_layout: bool | None = None


@dataclass(frozen=True)
class Group:
    """Images that look alike: the suggested keeper first, then by similarity to it."""

    id: int
    size: int
    best: float  # the highest similarity of a member to the keeper
    members: list[Member]


class Duplicates:
    """Finds near-duplicate groups in a library and lists them."""

    def __init__(
        self, db: Database, jobs: JobStore, library: Callable[[], Library], threshold: float, owner: str
    ) -> None:
        self.db = db
        self.jobs = jobs
        self._library = library
        self.threshold = threshold
        self.owner = owner

    @property
    def library(self) -> Library:
        """Return the library scanned."""
        return self._library()

    def same_as(self, sha256: str, hits: Sequence[Hit]) -> set[str]:
        """Return the ids of those ``hits`` (an image's "more like this") that are one picture with
        the image ``sha256``, as a scan judges them: less the pairs a person marked as not duplicates."""
        pairs = {(min(sha256, h.record.sha256), max(sha256, h.record.sha256)): h.score for h in hits}
        same = Verdicts(self.library, self.threshold, self.db)(pairs)
        return {b if a == sha256 else a for a, b in same}

    def start(self, send: Callable[[str], None], by: str = "") -> Job:
        """Queue a scan for the account ``by`` (refused while one is queued or running); return its job."""
        if running := self.jobs.active_of(KIND):
            raise Conflict(f"a duplicate scan is {running.status} already (job {running.id})")
        what = (
            f"similarity at least {self.threshold:.2f}, or {FLOOR:.2f} with the same layout, "
            f"or {LOW_FLOOR:.2f} with very nearly the same layout"
        )
        return self.jobs.submit(KIND, what, self.owner, send, started_by=by)

    def last_scan(self) -> Job | None:
        """Return the newest scan, finished or not."""
        offset = 0
        while True:
            jobs, total = self.jobs.recent(offset, 50)
            for job in jobs:
                if job.kind == KIND:
                    return job
            offset += 50
            if offset >= total or offset >= 500:  # scans are rare: far back means none
                return None

    def run(self, job_id: str, should_stop: Callable[[], bool] = lambda: False) -> None:
        """Scan the library and replace the stored groups with what it found."""
        self.jobs.run_whole(job_id, "duplicate scan", lambda job: self._run(job.id, should_stop))

    def _run(self, job_id: str, should_stop: Callable[[], bool]) -> None:
        store = self.library.vectors
        total = store.count()
        self.jobs.progress(job_id, 0, total)
        stop = lambda: should_stop() or not self.jobs.still_wanted(job_id)  # noqa: E731
        same = Verdicts(self.library, self.threshold, self.db)
        progress = lambda n: self.jobs.progress(job_id, n, max(n, total))  # noqa: E731
        found = similar_pairs(store, min(FLOOR, self.threshold), same, progress, stop)
        more = lambda made, missing: self.jobs.progress(job_id, total + made, total + missing)  # noqa: E731
        close = None if found is None else self._close(store, same, found, stop, more)
        if found is None or close is None:
            if should_stop() and self.jobs.still_wanted(job_id):
                self.jobs.move(job_id, JobStatus.INTERRUPTED)
            return
        ranked = self.rank(join(found | close), store)
        if not self.jobs.still_wanted(job_id):
            return  # cancelled while ranking (emptying the library cancels it too): save nothing
        self._save(job_id, ranked)
        self.jobs.move(job_id, JobStatus.DONE)

    def _close(
        self,
        store: VectorStore,
        same: Verdicts,
        found: set[tuple[str, str]],
        stop: Callable[[], bool],
        progress: Callable[[int, int], None],
    ) -> set[tuple[str, str]] | None:
        """Return the pairs of pictures very nearly laid out the same that ``similar_pairs`` missed
        (less than FLOOR alike); None if stopped.

        The fingerprints an earlier release did not make (the first scan of its library makes them)
        add to the job's progress: a 12-megapixel JPEG without a thumbnail takes about 17 ms.
        """
        if missing := self.library.catalog.without_fingerprint(STORED_BYTES):
            progress(0, missing)
        every = same.every_print(stop, lambda made: progress(made, max(made, missing)))
        if every is None:
            return None
        shas, layouts = every
        PRIORITY.step_aside()
        pairs = {(min(shas[i], shas[j]), max(shas[i], shas[j])) for i, j in close_copies(layouts)}
        ordered, kept = sorted(pairs - found), set()
        for start in range(0, len(ordered), RANK_BATCH // 2):
            part = ordered[start : start + RANK_BATCH // 2]
            vectors = store.vectors({sha for pair in part for sha in pair})
            kept.update(
                same({(a, b): float(np.dot(vectors[a], vectors[b])) for a, b in part if {a, b} <= vectors.keys()})
            )
        return kept

    def rank(self, groups: list[set[str]], store: VectorStore) -> list[tuple[list[str], list[float]]]:
        """Order each group keeper first (services/keepers.py), then by similarity to the keeper.

        Records and vectors are fetched a few thousand images at a time, never the whole library.
        """
        ranked = []
        for part in parts_of(groups, RANK_BATCH):
            shas = set().union(*part)
            records, vectors = store.get(shas), store.vectors(shas)
            for members in part:
                present = [sha for sha in members if sha in records and sha in vectors]
                if len(present) < 2:
                    continue  # deleted during the scan
                best = keeper({sha: self.copy(records[sha]) for sha in present})
                sims = {sha: float(np.dot(vectors[sha], vectors[best])) for sha in present}
                sims[best] = 1.0
                order = [best] + sorted((s for s in present if s != best), key=lambda s: -sims[s])
                ranked.append((order, [sims[s] for s in order]))
        return ranked

    def copy(self, record: Record) -> Copy:
        """Return what the keeper is chosen by: the record, the original, and its thumbnail (or original)."""
        original = self.library.original(record.sha256)
        return Copy(record, original, self.library.images.thumbnail(record.sha256) or original)

    def _save(self, job_id: str, groups: list[tuple[list[str], list[float]]]) -> None:
        """Replace the stored groups in one transaction, biggest and closest first."""
        groups.sort(key=lambda g: (-len(g[0]), -max(g[1][1:])))
        group_rows = [
            {"id": i, "job_id": job_id, "size": len(shas), "best": max(sims[1:])}
            for i, (shas, sims) in enumerate(groups, 1)
        ]
        member_rows = [
            {"group_id": i, "sha256": sha, "similarity": sim, "keeper": j == 0}
            for i, (shas, sims) in enumerate(groups, 1)
            for j, (sha, sim) in enumerate(zip(shas, sims, strict=True))
        ]
        with self.db.connect() as conn:
            conn.execute(delete(duplicate_members))
            conn.execute(delete(duplicate_groups))
            for start in range(0, len(group_rows), 5000):
                conn.execute(duplicate_groups.insert(), group_rows[start : start + 5000])
            for start in range(0, len(member_rows), 5000):
                conn.execute(duplicate_members.insert(), member_rows[start : start + 5000])

    def groups(self, offset: int, limit: int, album: str = "") -> tuple[list[Group], int]:
        """Return a page of groups (largest, then most alike, first) and how many there are."""
        offset, limit = page_bounds(offset, limit)
        query = select(duplicate_groups.c.id)
        if album:  # groups with an image in the album (or below it)
            member_in_album = (
                select(duplicate_members.c.group_id)
                .join(images, images.c.sha256 == duplicate_members.c.sha256)
                .where(duplicate_members.c.group_id == duplicate_groups.c.id, in_album(album))
            )
            query = query.where(exists(member_in_album))
        with self.db.connect() as conn:
            total = int(conn.scalar(select(func.count()).select_from(query.subquery())) or 0)
            ordered = query.order_by(
                desc(duplicate_groups.c.size), desc(duplicate_groups.c.best), duplicate_groups.c.id
            )
            ids = list(conn.scalars(ordered.limit(limit).offset(offset)))
        return self._load(ids), total

    def group(self, group_id: int) -> Group:
        """Return one group with its members (up to MAX_RESOLVED), or raise NotFound."""
        found = self._load([group_id], shown=MAX_RESOLVED) if 0 < group_id < 2**31 else []
        if not found:
            raise NotFound(f"no duplicate group {group_id} (resolved, or replaced by a newer scan or a deletion)")
        return found[0]

    def _load(self, ids: list[int], shown: int | None = MAX_SHOWN) -> list[Group]:
        if not ids:
            return []
        with self.db.connect() as conn:
            heads = {r.id: r for r in conn.execute(select(duplicate_groups).where(duplicate_groups.c.id.in_(ids)))}
            rows = conn.execute(
                select(duplicate_members)
                .where(duplicate_members.c.group_id.in_(ids))
                .order_by(
                    duplicate_members.c.group_id, desc(duplicate_members.c.keeper), desc(duplicate_members.c.similarity)
                )
            ).all()
        by_group: dict[int, list[Any]] = {}
        for row in rows:
            by_group.setdefault(row.group_id, []).append(row)
        shas = {row.sha256 for members in by_group.values() for row in (members if shown is None else members[:shown])}
        records = self.library.vectors.get(shas)
        prints = {sha: from_bytes(data) for sha, data in self.library.catalog.fingerprints(shas).items() if data}
        groups = []
        for group_id in ids:
            if group_id not in heads:
                continue
            members = []
            rows = by_group.get(group_id, [])
            keeper = prints.get(rows[0].sha256) if rows and rows[0].keeper else None
            for row in rows[:shown]:
                if (rec := records.get(row.sha256)) is not None:
                    path = self.library.original(row.sha256)
                    size = path.stat().st_size if path else None
                    layout = same_layout(prints.get(row.sha256), keeper)
                    members.append(Member(rec, row.similarity, bool(row.keeper), size, layout))
            head = heads[group_id]
            groups.append(Group(group_id, head.size, head.best, members))
        return groups

    def whole(self, group_id: int) -> Group:
        """Return a group whole, or raise Conflict if it is too large to act on at once."""
        group = self.group(group_id)
        if group.size > MAX_RESOLVED:
            raise Conflict(
                f"this group has {group.size} images, more than {MAX_RESOLVED} resolved at once: it is most likely "
                "a chain of look-alikes; delete its images one by one, or scan again with a higher threshold"
            )
        return group
