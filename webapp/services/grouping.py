"""Pairs of images that are one picture, found with the vector store, and the groups they join into.

services/duplicates.py scans a library with these and keeps the groups for review.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

from webapp.services.records import VectorStore

NEIGHBOURS = 16  # nearest images asked for each image: a group larger than this is still joined through chains
BATCH = 500  # images read and searched for at a time


def join(pairs: Iterable[tuple[str, str]]) -> list[set[str]]:
    """Return the connected groups of the given pairs (union-find with path halving)."""
    parent: dict[str, str] = {}

    def root(a: str) -> str:
        parent.setdefault(a, a)
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    for a, b in pairs:
        ra, rb = root(a), root(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    groups: dict[str, set[str]] = {}
    for a in parent:
        groups.setdefault(root(a), set()).add(a)
    return [g for g in groups.values() if len(g) > 1]


def similar_pairs(
    store: VectorStore,
    floor: float,
    same: Callable[[dict[tuple[str, str], float]], Iterable[tuple[str, str]]],
    progress: Callable[[int], None] = lambda n: None,
    should_stop: Callable[[], bool] = lambda: False,
    neighbours: int = NEIGHBOURS,
) -> set[tuple[str, str]] | None:
    """Return every pair of images (each once) at least ``floor`` alike that ``same`` calls one
    picture; None if stopped. ``same`` is given a batch's pairs (ids in order, and similarity) and
    returns those it keeps.
    """
    pairs: set[tuple[str, str]] = set()
    done = 0
    for batch in store.export(BATCH):
        if should_stop():
            return None
        found = store.neighbours([v for _, v in batch], neighbours)
        candidates: dict[tuple[str, str], float] = {}
        for (record, _), hits in zip(batch, found, strict=True):
            for sha, score in hits:
                pair = (min(sha, record.sha256), max(sha, record.sha256))
                if sha != record.sha256 and score >= floor and pair not in pairs:
                    candidates[pair] = score
        pairs.update(same(candidates))
        done += len(batch)
        progress(done)
    return pairs


def parts_of(groups: list[set[str]], size: int) -> Iterator[list[set[str]]]:
    """Yield the groups in runs of about ``size`` images."""
    part: list[set[str]] = []
    count = 0
    for group in groups:
        part.append(group)
        count += len(group)
        if count >= size:
            yield part
            part, count = [], 0
    if part:
        yield part
