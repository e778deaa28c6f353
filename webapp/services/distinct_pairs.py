"""The pairs of images a person said are not duplicates, so that no later scan groups them again.

Keeping every image of a near-duplicate group (*Keep all*) marks each pair of its images: two
people's portraits posed alike, a burst of shots, product photos on one backdrop. Taking one image
out of a group (*Not a copy*) marks its pairs with each other image of the group. The duplicate
scan leaves out the pairs marked (``Verdicts``, services/verdicts.py); an image joins a group
again only through another image (A and B marked, A like C and C like B: one group). Deleting an
image forgets its pairs (``Catalog.remove``); ``forget`` forgets them all, to undo.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Collection, Iterable

from sqlalchemy import delete, func, select

from webapp.services.database import Database, distinct_pairs

CHUNK = 5000  # rows written, or images looked up, a statement


def every_pair(shas: Iterable[str]) -> set[tuple[str, str]]:
    """Return every pair of the images, each in order (first < second)."""
    return set(itertools.combinations(sorted(set(shas)), 2))


def mark(db: Database, pairs: Iterable[tuple[str, str]]) -> int:
    """Mark the pairs of images as not duplicates; return how many were new."""
    ordered = {(min(a, b), max(a, b)) for a, b in pairs if a != b}
    new = sorted(ordered - marked(db, ordered))
    now = time.time_ns() // 1_000_000
    with db.connect() as conn:
        for start in range(0, len(new), CHUNK):
            rows = [{"first": a, "second": b, "marked_at": now} for a, b in new[start : start + CHUNK]]
            conn.execute(distinct_pairs.insert(), rows)
    return len(new)


def marked(db: Database, pairs: Collection[tuple[str, str]]) -> set[tuple[str, str]]:
    """Return those of the pairs (each in order: first < second) marked as not duplicates."""
    wanted = set(pairs)
    firsts = sorted({a for a, _ in wanted})
    found: set[tuple[str, str]] = set()
    with db.connect() as conn:
        for start in range(0, len(firsts), CHUNK // 10):
            query = select(distinct_pairs.c.first, distinct_pairs.c.second).where(
                distinct_pairs.c.first.in_(firsts[start : start + CHUNK // 10])
            )
            found.update((a, b) for a, b in conn.execute(query) if (a, b) in wanted)
    return found


def count(db: Database) -> int:
    """Return how many pairs are marked."""
    with db.connect() as conn:
        return int(conn.scalar(select(func.count()).select_from(distinct_pairs)) or 0)


def forget(db: Database) -> int:
    """Forget every marked pair (the next scan groups them again); return how many there were."""
    with db.connect() as conn:
        return int(conn.execute(delete(distinct_pairs)).rowcount or 0)
