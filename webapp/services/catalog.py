"""The catalogue: which images are indexed, in time order (Milvus queries cannot sort), by album."""

from __future__ import annotations

import time
import unicodedata
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any, TypeVar

from sqlalchemy import and_, bindparam, delete, func, or_, select, update

from webapp.errors import NotFound
from webapp.services.albums import lineage, spellings
from webapp.services.database import (
    Database,
    album_covers,
    distinct_pairs,
    duplicate_groups,
    duplicate_members,
    images,
    page_bounds,
)

T = TypeVar("T")


def in_album(album: str) -> Any:
    """Return the SQL condition for images in ``album`` or below it, in any of its spellings (LIKE
    wildcards escaped)."""
    return or_(
        *(
            condition
            for name in spellings(album)
            for condition in (images.c.album == name, images.c.album.startswith(name + "/", autoescape=True))
        )
    )


def _narrowed(album: str, added_by: str | None) -> list[Any]:
    """Return the conditions of the images in ``album`` and below and added by ``added_by`` (if given)."""
    return ([in_album(album)] if album else []) + ([] if added_by is None else [images.c.added_by == added_by])


def _shrink(conn: Any, group_ids: set[int]) -> None:
    """Recount groups that lost images; drop those left with fewer than two."""
    if not group_ids:
        return
    ids = list(group_ids)
    members = select(func.count()).where(duplicate_members.c.group_id == duplicate_groups.c.id).scalar_subquery()
    conn.execute(update(duplicate_groups).where(duplicate_groups.c.id.in_(ids)).values(size=members))
    small = list(
        conn.scalars(select(duplicate_groups.c.id).where(duplicate_groups.c.id.in_(ids), duplicate_groups.c.size < 2))
    )
    if small:
        conn.execute(delete(duplicate_members).where(duplicate_members.c.group_id.in_(small)))
        conn.execute(delete(duplicate_groups).where(duplicate_groups.c.id.in_(small)))


class Catalog:
    """Content ids by time added, with their albums; derivable from Milvus, so a repair can rebuild it."""

    ALBUMS_KEPT_SECONDS = 5.0  # how long a page's album list may lag other processes' changes

    def __init__(self, db: Database) -> None:
        self.db = db
        self._changes = 0  # this process's changes so far: a kept album list is of one of them
        self._albums: tuple[int, float, list[tuple[str, int]]] | None = None  # (changes, until, albums)
        self._newest: tuple[int, float, dict[str, tuple[int, str]]] | None = None  # (changes, until, newest)

    def add(
        self, rows: Iterable[tuple[str, int, str, bytes | None]], added_by: Mapping[str, str] | None = None
    ) -> None:
        """Record images (sha256, added_at in ms, album, fingerprint or None), added by the accounts
        ``added_by`` names (by sha256; none: ""); already known ones are left as they are."""
        by = added_by or {}
        values = [
            {
                "sha256": sha,
                "added_at": added_at,
                "album": album,
                "fingerprint": print_,
                "added_by": by.get(sha, "")[:64],
            }
            for sha, added_at, album, print_ in rows
        ]
        if values:
            with self.db.connect() as conn:
                conn.execute(self.db.insert_ignoring_duplicates(images), values)
            self._changes += 1  # after the commit: a list made before it is not kept

    def fingerprints(self, sha256s: Iterable[str]) -> dict[str, bytes | None]:
        """Return the kept fingerprints of images (None for one not made yet); unknown images are left out."""
        shas = list(sha256s)
        found: dict[str, bytes | None] = {}
        with self.db.connect() as conn:
            for start in range(0, len(shas), 500):
                query = select(images.c.sha256, images.c.fingerprint).where(
                    images.c.sha256.in_(shas[start : start + 500])
                )
                found.update((sha, None if data is None else bytes(data)) for sha, data in conn.execute(query))
        return found

    def adders(self, sha256s: Iterable[str]) -> dict[str, str]:
        """Return the account that added each listed image of ``sha256s`` ("" for none known)."""
        shas, found = list(sha256s), dict[str, str]()
        with self.db.connect() as conn:
            for start in range(0, len(shas), 500):
                part = images.c.sha256.in_(shas[start : start + 500])
                found.update(
                    (sha, by) for sha, by in conn.execute(select(images.c.sha256, images.c.added_by).where(part))
                )
        return found

    def which_listed(self, sha256s: Iterable[str]) -> set[str]:
        """Return those of ``sha256s`` in the list: an image is unlisted first when it is deleted."""
        shas, found = list(sha256s), set[str]()
        with self.db.connect() as conn:
            for start in range(0, len(shas), 500):
                found.update(
                    conn.scalars(select(images.c.sha256).where(images.c.sha256.in_(shas[start : start + 500])))
                )
        return found

    def every_fingerprint(self, size: int = 5000, album: str = "") -> Iterator[dict[str, bytes | None]]:
        """Yield the kept fingerprints of every image (in ``album`` and below, if given; None for one
        not made yet), ``size`` at a time."""
        after = ""
        while True:
            query = (
                select(images.c.sha256, images.c.fingerprint)
                .where(images.c.sha256 > after, *_narrowed(album, None))
                .order_by(images.c.sha256)
                .limit(size)
            )
            with self.db.connect() as conn:
                rows = conn.execute(query).all()
            if not rows:
                return
            yield {sha: None if data is None else bytes(data) for sha, data in rows}
            after = rows[-1][0]

    def without_fingerprint(self, size: int) -> int:
        """Return how many images have no fingerprint of ``size`` bytes (none yet, or one of an earlier form)."""
        other = or_(images.c.fingerprint.is_(None), func.length(images.c.fingerprint) != size)
        with self.db.connect() as conn:
            return int(conn.scalar(select(func.count()).select_from(images).where(other)) or 0)

    def keep_fingerprints(self, prints: dict[str, bytes]) -> None:
        """Keep the fingerprints made of images (content id -> its fingerprint); unknown images are skipped."""
        change = update(images).where(images.c.sha256 == bindparam("key")).values(fingerprint=bindparam("print_"))
        rows = [{"key": sha, "print_": data} for sha, data in prints.items()]
        with self.db.connect() as conn:
            for start in range(0, len(rows), 500):
                conn.execute(change, rows[start : start + 500])

    def unlist(self, sha256s: Sequence[str], keeping: str | None = None) -> list[dict[str, Any]]:
        """Take images out of the list, the first step of deleting them; return the rows taken, for
        ``relist`` if the rest of the deletion fails. Already unlisted ones are skipped.

        ``keeping``: only while that image is listed, else NotFound. Its row stays locked until the
        others are taken (PostgreSQL's FOR SHARE; SQLite's transactions take turns), so a deletion
        of it by any process, which unlists it first, either ends before (nothing is taken) or waits.
        """
        rows: list[dict[str, Any]] = []
        with self.db.connect() as conn:
            if keeping is not None:
                listed = select(images.c.sha256).where(images.c.sha256 == keeping).with_for_update(read=True)
                if conn.scalar(listed) is None:
                    raise NotFound(f"no image with id {keeping} in the library")
            for start in range(0, len(sha256s), 500):
                taking = delete(images).where(images.c.sha256.in_(sha256s[start : start + 500]))
                rows += [dict(row) for row in conn.execute(taking.returning(*images.c)).mappings()]
        self._changes += 1
        return rows

    def relist(self, rows: list[dict[str, Any]]) -> None:
        """Put back rows ``unlist`` took (a deletion that failed after it)."""
        if rows:
            with self.db.connect() as conn:
                conn.execute(self.db.insert_ignoring_duplicates(images), rows)
            self._changes += 1

    def remove(self, sha256s: Iterable[str]) -> None:
        """Forget images, take them out of their near-duplicate groups, and forget their distinct pairs."""
        shas = list(sha256s)
        with self.db.connect() as conn:
            for start in range(0, len(shas), 500):
                part = shas[start : start + 500]
                conn.execute(delete(images).where(images.c.sha256.in_(part)))
                gone = list(
                    conn.scalars(select(duplicate_members.c.group_id).where(duplicate_members.c.sha256.in_(part)))
                )
                conn.execute(delete(duplicate_members).where(duplicate_members.c.sha256.in_(part)))
                _shrink(conn, set(gone))
                either = or_(distinct_pairs.c.first.in_(part), distinct_pairs.c.second.in_(part))
                conn.execute(delete(distinct_pairs).where(either))
        self._changes += 1

    def relabel(self, albums: dict[str, str]) -> None:
        """Put images in other albums (content id -> its new album); unlisted ones are left unlisted."""
        shas = list(albums)
        change = update(images).where(images.c.sha256 == bindparam("key")).values(album=bindparam("name"))
        with self.db.connect() as conn:
            for start in range(0, len(shas), 500):
                part = shas[start : start + 500]
                listed = list(conn.scalars(select(images.c.sha256).where(images.c.sha256.in_(part))))
                if listed:
                    conn.execute(change, [{"key": sha, "name": albums[sha]} for sha in listed])
        self._changes += 1

    def following(
        self,
        album: str,
        after: tuple[int, str] | None,
        limit: int,
        everywhere: bool = False,
        added_by: str | None = None,
    ) -> list[tuple[int, str, str]]:
        """Return up to ``limit`` images of ``album`` and below as (added_at, sha256, album), oldest
        first, from just after ``after`` (a keyset: images that leave the album meanwhile shift nothing).

        The album ``""`` is the images in no album; with ``everywhere``, it is every image (those
        the account ``added_by`` added, if given).
        """
        query = select(images.c.added_at, images.c.sha256, images.c.album)
        query = query.where(in_album(album)) if album or not everywhere else query
        query = query.where(images.c.added_by == added_by) if added_by is not None else query
        if after is not None:
            at, sha = after
            query = query.where(or_(images.c.added_at > at, and_(images.c.added_at == at, images.c.sha256 > sha)))
        query = query.order_by(images.c.added_at, images.c.sha256).limit(limit)
        with self.db.connect() as conn:
            return [(int(at), str(sha), str(name)) for at, sha, name in conn.execute(query)]

    def clear(self) -> None:
        """Forget every image (and every near-duplicate group, every distinct pair and every
        chosen album cover)."""
        with self.db.connect() as conn:
            conn.execute(delete(album_covers))
            conn.execute(delete(distinct_pairs))
            conn.execute(delete(duplicate_members))
            conn.execute(delete(duplicate_groups))
            conn.execute(delete(images))
        self._changes += 1

    def newest(self, offset: int, limit: int, album: str = "", added_by: str | None = None) -> list[str]:
        """Return a page of content ids, newest first (each image of a batch has its own millisecond),
        in ``album`` and below and added by the account ``added_by``, if given."""
        offset, limit = page_bounds(offset, limit)
        query = (
            select(images.c.sha256)
            .where(*_narrowed(album, added_by))
            .order_by(images.c.added_at.desc(), images.c.sha256.desc())
            .limit(limit)
            .offset(offset)
        )
        with self.db.connect() as conn:
            return list(conn.scalars(query))

    def newest_before(self, seconds: float, limit: int) -> list[str]:
        """Return the content ids of the ``limit`` newest images added before ``seconds`` (Unix time)."""
        query = (
            select(images.c.sha256)
            .where(images.c.added_at < int(seconds * 1000))
            .order_by(images.c.added_at.desc(), images.c.sha256.desc())
            .limit(limit)
        )
        with self.db.connect() as conn:
            return list(conn.scalars(query))

    def all(self) -> set[str]:
        """Return every content id the catalogue lists."""
        with self.db.connect() as conn:
            return set(conn.scalars(select(images.c.sha256)))

    def albums_of(self) -> dict[str, str]:
        """Return every listed image's album by content id."""
        with self.db.connect() as conn:
            return {str(sha): str(album) for sha, album in conn.execute(select(images.c.sha256, images.c.album))}

    def total(self, album: str = "", added_by: str | None = None) -> int:
        """Return how many images the catalogue lists (in ``album`` and below, added by ``added_by``, if given)."""
        query = select(func.count()).select_from(images).where(*_narrowed(album, added_by))
        with self.db.connect() as conn:
            return int(conn.scalar(query) or 0)

    def albums(self, kept: bool = False) -> list[tuple[str, int]]:
        """Return every album with the number of images in it and below it, sorted by name.

        An album stored in two spellings that look alike (é typed as one character, or as e and a
        combining accent, as a Mac's folders may name it) is one album, listed as typed (NFC):
        a filter by that name finds both (services/albums.py, ``spellings``).

        ``kept``: for a page's album list, the list made up to ALBUMS_KEPT_SECONDS ago, unless this
        process changed the catalogue since. Making it reads the whole catalogue: 21 ms for 5,585
        albums of 53,760 images (SQLite, a one-off script), on every search and library page.
        """
        changes, now = self._changes, time.monotonic()
        made = self._kept(self._albums) if kept else None
        if made is not None:
            return made
        with self.db.connect() as conn:
            rows = conn.execute(
                select(images.c.album, func.count()).where(images.c.album != "").group_by(images.c.album)
            )
            counts: Counter[str] = Counter()
            for album, n in rows:
                for above in lineage(unicodedata.normalize("NFC", album)):
                    counts[above] += n
        albums = sorted(counts.items())
        self._albums = (changes, now + self.ALBUMS_KEPT_SECONDS, albums)
        return albums

    def covers(self, names: Sequence[str]) -> dict[str, str]:
        """Return the content id of the newest image in each album of ``names`` or below it (an
        album's cover), by name. Kept as a page's album list is (``albums``).

        What is kept is when each album last got an image and in which spelling it is stored, so a
        cover is one indexed lookup (that time, then that album), however large the album.
        """
        newest = self._newest_by_album()
        wanted = {name: newest[name] for name in names if name in newest}
        keys, found = set(wanted.values()), dict[tuple[int, str], str]()
        times = sorted({at for at, _ in keys})
        with self.db.connect() as conn:
            for start in range(0, len(times), 500):  # by time added (indexed), then by album here
                query = select(images.c.sha256, images.c.added_at, images.c.album).where(
                    images.c.added_at.in_(times[start : start + 500])
                )
                for sha, at, album in conn.execute(query):
                    if (at, album) in keys:
                        found[(at, album)] = max(sha, found.get((at, album), ""))
        return {name: found[key] for name, key in wanted.items() if key in found}

    def last_added(self, names: Sequence[str]) -> dict[str, int]:
        """Return when each album of ``names`` (sub-albums included) last got an image, in ms; kept as
        a page's album list is (``albums``)."""
        newest = self._newest_by_album()
        return {name: newest[name][0] for name in names if name in newest}

    def _newest_by_album(self) -> dict[str, tuple[int, str]]:
        """Return when each album (sub-albums included) last got an image, and that image's album as stored."""
        changes, now = self._changes, time.monotonic()
        made = self._kept(self._newest)
        if made is not None:
            return made
        newest: dict[str, tuple[int, str]] = {}
        query = select(images.c.album, func.max(images.c.added_at)).where(images.c.album != "").group_by(images.c.album)
        with self.db.connect() as conn:
            for album, at in conn.execute(query):
                for above in lineage(unicodedata.normalize("NFC", album)):
                    if newest.get(above, (-1, "")) < (at, album):
                        newest[above] = (at, album)
        self._newest = (changes, now + self.ALBUMS_KEPT_SECONDS, newest)
        return newest

    def _kept(self, made: tuple[int, float, T] | None) -> T | None:
        """Return a kept list if it is still to be used (younger than ALBUMS_KEPT_SECONDS, and made
        since this process last changed the catalogue), else None."""
        return made[2] if made is not None and made[0] == self._changes and time.monotonic() < made[1] else None
