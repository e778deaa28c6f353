"""The activity log: who changed what in the library or its accounts, when, and from where.

One entry a request that changed something (webapp/activity.py decides which), written after the
request succeeded, in the database every web process shares: a team's admins can tell who deleted
an image or emptied the library, and from which address, whichever machine served it. Entries
older than the retention are removed as new ones are written.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, delete, func, select

from webapp.services.adding import without_controls
from webapp.services.database import Database, activity, activity_subjects, page_bounds
from webapp.services.job_items import jobs_changing

PRUNE_EVERY = 3600.0  # seconds between two removals of old entries by one process
IMAGE_ID = re.compile(r"(?<![0-9a-f])[0-9a-f]{64}(?![0-9a-f])")
JOB_IN_NOTE = re.compile(r"\bjob ([0-9a-f]{32})\b")  # "job <id> (folder: ...)": a job started
JOB_IN_PATH = re.compile(r"/jobs/([0-9a-f]{32})(?![0-9a-f])")  # a job cancelled or resumed
EXPORT_BATCH = 1000  # entries read at a time by an export
MAX_HISTORY = 10_000  # entries of one image's history (a few dozen in a long life)
MAX_JOBS = 50  # jobs that added, moved, deleted or restored one image, named in its history
LIMITS = {
    "actor": 64,
    "via": 16,
    "address": 64,
    "method": 8,
    "path": 2048,
    "endpoint": 128,
    "request_id": 64,
    "note": 2000,
}


@dataclass(frozen=True)
class Entry:
    """One request that changed something."""

    at: float  # seconds since the epoch
    actor: str  # the account's name; "" with access control off
    via: str  # session, token, open (access control off) or anonymous (a sign-in refused)
    address: str
    method: str
    path: str
    endpoint: str
    status: int
    request_id: str = ""
    note: str = ""
    id: int = 0  # given by the database

    @classmethod
    def from_row(cls, row: Any) -> Entry:
        """Return the entry of a row of ``activity``."""
        return cls(**row._mapping)


def subjects(path: str, note: str) -> set[str]:
    """Return the ids of the images and jobs an entry's path and note name."""
    return {*IMAGE_ID.findall(path), *IMAGE_ID.findall(note), *JOB_IN_NOTE.findall(note), *JOB_IN_PATH.findall(path)}


def _bounded(entry: Entry) -> dict[str, Any]:
    """Return the entry's columns, each text cut to its column's size, without control characters.

    A name tried at sign-in is anyone's text: bidirectional controls in it could make the log read
    another name, and a NUL is text PostgreSQL cannot store.
    """
    values = {name: getattr(entry, name) for name in ("at", "status", *LIMITS)}
    for name, limit in LIMITS.items():
        values[name] = without_controls(values[name])[:limit]
    return values


class Activity:
    """The log, in the shared database."""

    def __init__(self, db: Database, keep_days: float) -> None:
        self.db = db
        self.keep_days = keep_days  # 0: keep every entry
        self._pruned_at: float | None = None  # time.monotonic() of the last removal (None: none yet)
        self._lock = threading.Lock()

    def record(self, entry: Entry) -> None:
        """Write an entry, with what it names (and, once an hour, remove those past the retention)."""
        values = _bounded(entry)
        with self.db.connect() as conn:
            entry_id = conn.scalar(activity.insert().values(**values).returning(activity.c.id))
            # The whole note: one cut to the column's length still belongs to the history of every
            # image it named (a deletion of 500 at once names them all).
            if named := subjects(values["path"], entry.note):
                conn.execute(activity_subjects.insert(), [{"subject": s, "entry_id": entry_id} for s in named])
        due = self._pruned_at is None or time.monotonic() - self._pruned_at > PRUNE_EVERY
        if self.keep_days > 0 and due:
            with self._lock:
                self._pruned_at = time.monotonic()
            self.prune(time.time() - self.keep_days * 86400)

    def prune(self, before: float) -> int:
        """Remove the entries written before ``before`` (seconds since the epoch); return how many."""
        old = select(activity.c.id).where(activity.c.at < before)
        with self.db.connect() as conn:
            conn.execute(delete(activity_subjects).where(activity_subjects.c.entry_id.in_(old)))
            return conn.execute(delete(activity).where(activity.c.at < before)).rowcount or 0

    def entries(
        self,
        offset: int = 0,
        limit: int = 50,
        actor: str | None = None,
        image: str | None = None,
        since: float | None = None,
        until: float | None = None,
    ) -> tuple[list[Entry], int]:
        """Return a page of entries, newest first, and how many there are: of ``actor`` only, only
        the history of the image ``image`` (the entries naming it in their path or note, and those
        naming a job that added, moved, deleted or restored it), and only those written from
        ``since`` until before ``until`` (seconds since the epoch), as far as each is given."""
        offset, limit = page_bounds(offset, limit)
        with self.db.connect() as conn:
            where = _narrowed(conn, actor, image, since, until)
            query = select(activity).where(*where).order_by(activity.c.at.desc(), activity.c.id.desc())
            rows = conn.execute(query.offset(offset).limit(limit)).all()
            total = conn.scalar(select(func.count()).select_from(activity).where(*where))
        return [Entry.from_row(row) for row in rows], int(total or 0)

    def last_seen(self, names: Iterable[str]) -> dict[str, float]:
        """Return when each of these accounts last signed in or changed something, by session or
        token (a refused sign-in with its name is anyone's; a command's actor is a login)."""
        seen = {}
        with self.db.connect() as conn:
            for name in names:  # each an index walk back from the latest of its entries (by actor, at)
                latest = select(activity.c.at).where(activity.c.actor == name, activity.c.via.in_(("session", "token")))
                if (at := conn.scalar(latest.order_by(activity.c.at.desc()).limit(1))) is not None:
                    seen[name] = at
        return seen

    def export(
        self,
        limit: int,
        actor: str | None = None,
        image: str | None = None,
        since: float | None = None,
        until: float | None = None,
    ) -> Iterator[Entry]:
        """Yield up to ``limit`` entries, newest first (by number), narrowed as ``entries`` narrows
        them, reading a batch at a time (one short transaction each) for a download."""
        before, left = None, limit
        while left > 0:
            with self.db.connect() as conn:
                where = _narrowed(conn, actor, image, since, until)
                if before is not None:
                    where.append(activity.c.id < before)
                query = select(activity).where(*where).order_by(activity.c.id.desc()).limit(min(EXPORT_BATCH, left))
                rows = conn.execute(query).all()
            if not rows:
                return
            for row in rows:
                yield Entry.from_row(row)
            before, left = rows[-1].id, left - len(rows)


def _narrowed(
    conn: Connection, actor: str | None, image: str | None, since: float | None, until: float | None
) -> list[Any]:
    """Return the conditions of the entries of ``actor``, naming ``image``, written from ``since``
    until before ``until`` (each if given)."""
    where = [] if actor is None else [activity.c.actor == actor]
    if image:  # its added, moved, deleted, restored, resolved...; its jobs' starts, cancels, resumes
        named = [image, *conn.scalars(jobs_changing(image).limit(MAX_JOBS))]
        naming = select(activity_subjects.c.entry_id).where(activity_subjects.c.subject.in_(named))
        # Read first, then looked up by id: as a subquery, PostgreSQL without fresh statistics (a
        # log just written in bulk) walked the whole log by time instead (2.9 s over a million).
        where.append(activity.c.id.in_(list(conn.scalars(naming.limit(MAX_HISTORY)))))
    if since is not None:
        where.append(activity.c.at >= since)
    if until is not None:
        where.append(activity.c.at < until)
    return where
