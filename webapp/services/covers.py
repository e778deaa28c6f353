"""Album covers a person chose: the image an album shows on the Albums page, instead of its newest.

A chosen cover counts while its image is in the album or below it. Moved out, deleted, or moved
with the album under a name the move did not carry over, the album shows its newest image again;
the choice is kept, so an image restored from the trash into its album is its cover again.
"""

from __future__ import annotations

import time
import unicodedata
from collections.abc import Sequence

from sqlalchemy import delete, insert, select, update

from webapp.errors import InvalidInput
from webapp.services.albums import lineage, renamed
from webapp.services.database import Database, album_covers, images


class Covers:
    """The covers people chose, by album (the name as the album lists spell it: NFC)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def choose(self, album: str, sha256: str, by: str = "") -> None:
        """Make an image the cover of ``album``; InvalidInput if it is not in that album or below it."""
        album = unicodedata.normalize("NFC", album)
        if not album:
            raise InvalidInput("name an album: the library as a whole has no cover")
        with self.db.connect() as conn:
            stored = conn.scalar(select(images.c.album).where(images.c.sha256 == sha256))
            if stored is None or album not in lineage(unicodedata.normalize("NFC", stored)):
                raise InvalidInput(f"the image is not in the album {album} or below it")
            conn.execute(delete(album_covers).where(album_covers.c.album == album))
            conn.execute(insert(album_covers).values(album=album, sha256=sha256, set_by=by[:64], set_at=time.time()))

    def forget(self, album: str) -> bool:
        """Let ``album`` show its newest image again; tell whether a cover had been chosen."""
        album = unicodedata.normalize("NFC", album)
        if not album:
            raise InvalidInput("name an album: the library as a whole has no cover")
        with self.db.connect() as conn:
            return bool(conn.execute(delete(album_covers).where(album_covers.c.album == album)).rowcount)

    def chosen(self, names: Sequence[str]) -> dict[str, str]:
        """Return the chosen cover of each album of ``names`` whose image is still in it or below it."""
        if not names:
            return {}
        wanted = set(names)
        with self.db.connect() as conn:  # a row at most an album: read them all, however many names
            rows = conn.execute(select(album_covers.c.album, album_covers.c.sha256))
            picked: dict[str, str] = {album: sha for album, sha in rows if album in wanted}
            if not picked:
                return {}
            shas = sorted(set(picked.values()))
            where: dict[str, str] = {}
            for start in range(0, len(shas), 500):
                query = select(images.c.sha256, images.c.album).where(images.c.sha256.in_(shas[start : start + 500]))
                where.update({sha: album for sha, album in conn.execute(query)})
        return {
            album: sha
            for album, sha in picked.items()
            if sha in where and album in lineage(unicodedata.normalize("NFC", where[sha]))
        }

    def of_image(self, sha256: str) -> list[str]:
        """Return the albums this image is the cover of (chosen, and it is still in them), by name."""
        with self.db.connect() as conn:
            query = select(album_covers.c.album).where(album_covers.c.sha256 == sha256).order_by(album_covers.c.album)
            albums = list(conn.scalars(query))
            stored = conn.scalar(select(images.c.album).where(images.c.sha256 == sha256)) if albums else None
        return [
            album for album in albums if stored is not None and album in lineage(unicodedata.normalize("NFC", stored))
        ]

    def rename(self, old: str, new: str) -> None:
        """Carry the covers of ``old`` and its sub-albums over to their names under ``new`` (an album
        moved or renamed); an album of the new name keeps a cover it had."""
        with self.db.connect() as conn:
            rows = conn.execute(select(album_covers.c.album)).scalars().all()
            taken = set(rows)
            for album in rows:
                target = renamed(album, old, new)
                if target is None or target == album:
                    continue
                if target and target not in taken:
                    conn.execute(update(album_covers).where(album_covers.c.album == album).values(album=target))
                    taken.discard(album)
                    taken.add(target)
                else:  # moved to the top level (no album has it), or merged into one with its own cover
                    conn.execute(delete(album_covers).where(album_covers.c.album == album))
