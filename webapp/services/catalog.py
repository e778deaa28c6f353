"""The catalogue: which images are indexed, in time order (Milvus queries cannot sort)."""

from __future__ import annotations

from collections.abc import Iterable

from webapp.services.sqlite import Database

SCHEMA = """
CREATE TABLE IF NOT EXISTS images (
    sha256 TEXT PRIMARY KEY,
    added_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS images_by_time ON images (added_at);
"""


class Catalog:
    """Content ids by time added; derivable from Milvus, so a repair can rebuild it."""

    def __init__(self, db: Database) -> None:
        self.db = db
        db.migrate(SCHEMA)

    def add(self, rows: Iterable[tuple[str, int]]) -> None:
        """Record images (sha256, added_at in ms); already known ones are left as they are."""
        with self.db.connect() as conn:
            conn.executemany("INSERT OR IGNORE INTO images (sha256, added_at) VALUES (?, ?)", list(rows))

    def remove(self, sha256s: Iterable[str]) -> None:
        """Forget images."""
        with self.db.connect() as conn:
            conn.executemany("DELETE FROM images WHERE sha256 = ?", [(s,) for s in sha256s])

    def clear(self) -> None:
        """Forget every image."""
        with self.db.connect() as conn:
            conn.execute("DELETE FROM images")

    def newest(self, offset: int, limit: int) -> list[str]:
        """Return a page of content ids, newest first (within one batch, the last added first)."""
        with self.db.connect() as conn:
            rows = conn.execute(
                "SELECT sha256 FROM images ORDER BY added_at DESC, rowid DESC LIMIT ? OFFSET ?", (limit, offset)
            ).fetchall()
        return [row["sha256"] for row in rows]

    def all(self) -> set[str]:
        """Return every content id the catalogue lists."""
        with self.db.connect() as conn:
            return {row[0] for row in conn.execute("SELECT sha256 FROM images")}

    def total(self) -> int:
        """Return how many images the catalogue lists."""
        with self.db.connect() as conn:
            return int(conn.execute("SELECT COUNT(*) FROM images").fetchone()[0])
