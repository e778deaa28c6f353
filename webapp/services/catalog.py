"""The catalogue: which images are indexed, in time order (Milvus queries cannot sort)."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import delete, func, select

from webapp.services.database import Database, images, page_bounds


class Catalog:
    """Content ids by time added; derivable from Milvus, so a repair can rebuild it."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def add(self, rows: Iterable[tuple[str, int]]) -> None:
        """Record images (sha256, added_at in ms); already known ones are left as they are."""
        values = [{"sha256": sha, "added_at": added_at} for sha, added_at in rows]
        if values:
            with self.db.connect() as conn:
                conn.execute(self.db.insert_ignoring_duplicates(images), values)

    def remove(self, sha256s: Iterable[str]) -> None:
        """Forget images."""
        shas = list(sha256s)
        with self.db.connect() as conn:
            for start in range(0, len(shas), 500):
                conn.execute(delete(images).where(images.c.sha256.in_(shas[start : start + 500])))

    def clear(self) -> None:
        """Forget every image."""
        with self.db.connect() as conn:
            conn.execute(delete(images))

    def newest(self, offset: int, limit: int) -> list[str]:
        """Return a page of content ids, newest first (each image of a batch has its own millisecond)."""
        offset, limit = page_bounds(offset, limit)
        query = (
            select(images.c.sha256)
            .order_by(images.c.added_at.desc(), images.c.sha256.desc())
            .limit(limit)
            .offset(offset)
        )
        with self.db.connect() as conn:
            return list(conn.scalars(query))

    def all(self) -> set[str]:
        """Return every content id the catalogue lists."""
        with self.db.connect() as conn:
            return set(conn.scalars(select(images.c.sha256)))

    def total(self) -> int:
        """Return how many images the catalogue lists."""
        with self.db.connect() as conn:
            return int(conn.scalar(select(func.count()).select_from(images)) or 0)
