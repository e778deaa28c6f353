"""The trash: deleted images kept TRASH_DAYS, then removed; until then, one click brings each back.

A deletion (an image's, or a duplicate group's resolution) takes the image out of the library as
before, vector and catalogue entry, and moves its files under ``STORAGE_DIR/trash`` with a row in
the database saying what its record said and who deleted it when: every machine of the library
sees the same trash. Restoring adds the original again (services/library.py), embedded by the
library's model of the day, in its album and at its place in time. Emptying the library empties
the trash too; a job's batch taken back as the library was emptied never reaches it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, func, select

from webapp.errors import Conflict, NotFound
from webapp.services.adding import Entry, Outcome, without_controls
from webapp.services.database import Database, page_bounds, trash
from webapp.services.images import ImageStore
from webapp.services.records import Record

if TYPE_CHECKING:
    from webapp.services.library import Library

log = logging.getLogger(__name__)

MAX_RESTORED = 100  # images one request may restore: each is embedded again, 5-10 ms on a core
LOST_AFTER = 60.0  # seconds after its deletion an image's original should be in the trash (its row comes first)
LOST = "its original is gone from the trash's storage (STORAGE_DIR/trash): it cannot be restored, only removed"
RECORD_COLUMNS = ("sha256", "filename", "width", "height", "source", "mime", "added_at", "album")


@dataclass(frozen=True)
class Trashed:
    """A deleted image in the trash: its record as it was, and who deleted it when."""

    record: Record
    deleted_at: float  # seconds since the epoch
    deleted_by: str  # the account's name; "" with access control off
    expires_at: float  # when it goes for good
    added_by: str = ""  # who had added it, as the catalogue said: a restore keeps it
    lost: bool = False  # its original is gone from the trash's storage (a disk or a backup lost it)
    deleted_in: str | None = None  # the deletion job that put it here, if one did (services/deletions.py)

    @property
    def sha256(self) -> str:
        """Return the image's content id."""
        return self.record.sha256

    @property
    def deleted(self) -> datetime:
        """Return when the image was deleted, in UTC."""
        return datetime.fromtimestamp(self.deleted_at, tz=UTC)

    @property
    def expires(self) -> datetime:
        """Return when the image leaves the trash for good, in UTC."""
        return datetime.fromtimestamp(self.expires_at, tz=UTC)


class Trash:
    """Deleted images' rows in the shared database, and their files in ``files``."""

    def __init__(self, db: Database, files: ImageStore, keep_days: float) -> None:
        self.db = db
        self.files = files
        self.keep_seconds = keep_days * 86400

    def keep(
        self,
        records: list[Record],
        deleted_by: str,
        store: ImageStore,
        added_by: Mapping[str, str] | None = None,
        deleted_in: str | None = None,
    ) -> None:
        """Put deleted images in the trash: a row each (replacing one of the same bytes deleted
        before) with who had added each (``added_by``, by sha256) and the deletion job that deleted
        them, if one did, then their files, moved from ``store``."""
        if not records:
            return
        now, by, adders = time.time(), without_controls(deleted_by)[:64], added_by or {}
        rows = [_row(rec, now, by, adders.get(rec.sha256, ""), deleted_in) for rec in records]
        with self.db.connect() as conn:
            for start in range(0, len(rows), 500):
                part = rows[start : start + 500]
                conn.execute(delete(trash).where(trash.c.sha256.in_([row["sha256"] for row in part])))
                conn.execute(trash.insert(), part)
        for rec in records:
            store.move(rec.sha256, self.files)

    def items(self, offset: int = 0, limit: int = 50) -> tuple[list[Trashed], int]:
        """Return a page of the trash, the latest deleted first, and how many images it holds."""
        offset, limit = page_bounds(offset, limit)
        query = select(trash).where(self._kept()).order_by(trash.c.deleted_at.desc(), trash.c.sha256)
        with self.db.connect() as conn:
            rows = conn.execute(query.offset(offset).limit(limit)).all()
        return [self._trashed(row, look=True) for row in rows], self.count()

    def count(self) -> int:
        """Return how many deleted images the trash holds."""
        with self.db.connect() as conn:
            return int(conn.scalar(select(func.count()).select_from(trash).where(self._kept())) or 0)

    def get(self, sha256: str) -> Trashed:
        """Return a deleted image that is still in the trash, or raise NotFound."""
        with self.db.connect() as conn:
            row = conn.execute(select(trash).where(trash.c.sha256 == sha256, self._kept())).first()
        if row is None:
            raise NotFound(f"no image with id {sha256} in the trash")
        return self._trashed(row, look=True)

    def deleted_in(self, job_id: str, after: str, limit: int) -> list[str]:
        """Return the ids of up to ``limit`` images the deletion job ``job_id`` put in the trash that
        it still holds, past the id ``after`` (a keyset: one that fails to come back is passed)."""
        query = (
            select(trash.c.sha256)
            .where(trash.c.deleted_in == job_id, trash.c.sha256 > after, self._kept())
            .order_by(trash.c.sha256)
            .limit(limit)
        )
        with self.db.connect() as conn:
            return list(conn.scalars(query))

    def count_deleted_in(self, job_id: str) -> int:
        """Return how many images the deletion job ``job_id`` put in the trash that it still holds."""
        query = select(func.count()).select_from(trash).where(trash.c.deleted_in == job_id, self._kept())
        with self.db.connect() as conn:
            return int(conn.scalar(query) or 0)

    def lost(self) -> list[str]:
        """Return the images in the trash whose original is gone from its storage (deleted over
        LOST_AFTER seconds ago: a deletion writes the row before it moves the files)."""
        deleted = select(trash.c.sha256).where(self._kept(), trash.c.deleted_at < time.time() - LOST_AFTER)
        with self.db.connect() as conn:
            rows = set(conn.scalars(deleted))
        return sorted(rows - {sha for sha, _ in self.files.ids()})

    def restore(self, library: Library, sha256s: Sequence[str]) -> list[tuple[Trashed, Outcome]]:
        """Add images in the trash to ``library`` again, in their albums, with their names and their
        places in time, embedded by its model; return each one found in the trash with its outcome:
        added, a duplicate (its bytes were added again meanwhile: it leaves the trash too) or failed
        (it stays in the trash). Those not in the trash (restored, removed or expired meanwhile) are
        left out. One whose original is gone from the trash's storage fails (Conflict) and stays.
        If the library cannot be written (503), every one stays in the trash.

        Each row is taken out of the trash before its image is added, so two requests cannot both
        restore one image; one model call per window of images, as an upload of many files.
        """
        taken: list[tuple[Trashed, bytes]] = []
        results: list[tuple[Trashed, Outcome]] = []
        for sha in dict.fromkeys(sha256s):
            original = self.files.original(sha)
            item = self._take(sha) if original is not None else self._lost(sha)
            if item is None:
                continue
            if original is None:
                error = Conflict(f"{item.record.filename}: {LOST}")
                results.append((item, Outcome("failed", None, LOST, error)))
                continue
            try:
                taken.append((item, original.read_bytes()))
            except OSError as exc:  # unreadable since: it stays where it was
                log.warning("could not read %s in the trash: %s", original, exc)
                self._put_back([item])
        try:
            for source in dict.fromkeys(item.record.source for item, _ in taken):  # a batch has one source
                batch = [(item, data) for item, data in taken if item.record.source == source]
                entries = [Entry(i.record.filename, d, i.record.album, i.record.added_at, i.added_by) for i, d in batch]
                results += zip((i for i, _ in batch), library.add_many(entries, source), strict=True)
        finally:  # what was not restored goes back in the trash (a batch that raised: all of it)
            restored = {item.sha256 for item, outcome in results if outcome.status != "failed"}
            self._put_back([item for item, _ in taken if item.sha256 not in restored])
            for sha in restored:
                self.files.delete(sha)
        return results

    def restore_one(self, library: Library, sha256: str) -> Outcome:
        """Restore one image (``restore``): NotFound if it is not in the trash, its error if it failed."""
        results = self.restore(library, [sha256])
        if not results:
            raise NotFound(f"no image with id {sha256} in the trash (restored, removed or expired)")
        outcome = results[0][1]
        if outcome.error is not None:
            raise outcome.error
        return outcome

    def _lost(self, sha256: str) -> Trashed | None:
        """Return an image still in the trash whose original is not in its storage, if it is one."""
        with self.db.connect() as conn:
            row = conn.execute(select(trash).where(trash.c.sha256 == sha256, self._kept())).first()
        return None if row is None else self._trashed(row, look=True)

    def _take(self, sha256: str) -> Trashed | None:
        """Take an image's row out of the trash, unless it expired or another request took it."""
        with self.db.connect() as conn:
            taking = delete(trash).where(trash.c.sha256 == sha256, self._kept()).returning(*trash.c)
            row = conn.execute(taking).first()
        return None if row is None else self._trashed(row)

    def _put_back(self, items: list[Trashed]) -> None:
        """Put back rows ``_take`` took (a restore that failed after it)."""
        if items:
            rows = [_row(i.record, i.deleted_at, i.deleted_by, i.added_by, i.deleted_in) for i in items]
            with self.db.connect() as conn:
                conn.execute(self.db.insert_ignoring_duplicates(trash), rows)

    def remove(self, sha256s: list[str]) -> list[Trashed]:
        """Remove images from the trash for good (rows, then files); return those that were in it."""
        gone: list[Trashed] = []
        for start in range(0, len(sha256s), 500):
            gone += self._remove(trash.c.sha256.in_(sha256s[start : start + 500]))
        return gone

    def purge(self) -> int:
        """Remove the images deleted over TRASH_DAYS ago for good; return how many (each server
        process does, every hour: services/housekeeping.py)."""
        gone = self._remove(~self._kept())
        if gone:
            log.info("removed %d images from the trash, deleted over %g days ago", len(gone), self.keep_days)
        return len(gone)

    def _remove(self, where: Any) -> list[Trashed]:
        with self.db.connect() as conn:
            gone = [self._trashed(row) for row in conn.execute(delete(trash).where(where).returning(*trash.c))]
        for item in gone:
            self.files.delete(item.sha256)
        return gone

    def empty(self) -> int:
        """Remove every image from the trash for good; return how many there were."""
        with self.db.connect() as conn:
            count = conn.execute(delete(trash)).rowcount or 0
        self.files.clear()
        return count

    @property
    def keep_days(self) -> float:
        """Return how many days a deleted image stays in the trash."""
        return self.keep_seconds / 86400

    @property
    def kept_for(self) -> str:
        """Say how long a deleted image stays in the trash: "30 days"."""
        days = self.keep_days
        return f"{days:g} day{'' if days == 1 else 's'}" if days >= 1 else f"{days * 24:g} hours"

    def _kept(self) -> Any:
        """Return the SQL condition of the images not yet expired."""
        return trash.c.deleted_at >= time.time() - self.keep_seconds

    def _trashed(self, row: Any, look: bool = False) -> Trashed:
        """Return a row as a Trashed; with ``look``, also whether its original is gone."""
        m = row._mapping
        record = Record(**{name: m[name] for name in RECORD_COLUMNS})
        lost = look and self.files.original(record.sha256) is None
        expires = m["deleted_at"] + self.keep_seconds
        return Trashed(record, m["deleted_at"], m["deleted_by"], expires, m["added_by"], lost, m["deleted_in"])


def _row(
    record: Record, deleted_at: float, deleted_by: str, added_by: str, deleted_in: str | None = None
) -> dict[str, Any]:
    columns = {name: getattr(record, name) for name in RECORD_COLUMNS}
    return columns | {
        "deleted_at": deleted_at,
        "deleted_by": deleted_by,
        "added_by": added_by,
        "deleted_in": deleted_in,
    }
