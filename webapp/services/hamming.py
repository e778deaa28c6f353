"""Pairs of 64-bit codes at most a few bits apart, among many, without comparing every two.

Multi-index hashing (Norouzi, Punjani and Fleet, "Fast search in Hamming space with multi-index
hashing", CVPR 2012): cut each code into CHUNKS runs of bits. Two codes at most r bits apart differ
in at most r // CHUNKS bits of one run at least (were every run r // CHUNKS + 1 bits apart or more,
the codes would be more than r apart). So each run's values index the codes, in a table of a bucket
per value; a query looks, for each run, in the buckets of its own run's value with up to r //
CHUNKS of its bits changed, and compares whole only the codes it finds there.

For 8 bits of 64 (services/fingerprints.py) that is three runs of 22, 21 and 21 bits, and 254
buckets of each: a code of random bits meets about one in 5,000 of the others, not all of them
(`bench/duplicates.py` times it in a scan).
"""

from __future__ import annotations

import itertools

import numpy as np

CHUNKS = 3
# Codes of one bucket a query compares at most: a library of blank frames shares every bit, and
# would compare each with each (such pictures' pairs are the model's neighbours anyway).
CROWDED = 255
EVERY_TWO = 1 << 22  # queries times codes up to which comparing every two is faster than the index
QUERIES = 1 << 16  # queries looked up at a time (the arrays of one lookup stay a few megabytes)


def near(codes: np.ndarray, queries: np.ndarray, radius: int) -> tuple[np.ndarray, np.ndarray]:
    """Return the pairs (index into ``queries``, index into ``codes``) at most ``radius`` bits apart,
    each once, in two arrays. A query meets at most CROWDED codes of one bucket."""
    codes, queries = np.asarray(codes, np.uint64), np.asarray(queries, np.uint64)
    if len(codes) * len(queries) <= EVERY_TWO:
        q, c = np.nonzero(np.bitwise_count(queries[:, None] ^ codes[None, :]) <= radius)
        return q, c
    found_q, found_c = [np.zeros(0, np.int64)], [np.zeros(0, np.int64)]
    for shift, width in _runs():
        keys = _run(codes, shift, width)
        order = np.argsort(keys, kind="stable")
        sizes = np.bincount(keys, minlength=1 << width)
        starts = np.cumsum(sizes) - sizes
        counts_of = np.minimum(sizes, CROWDED).astype(np.uint8)  # 4 MB: most lookups find an empty bucket
        flips = _flips(width, radius // CHUNKS)
        for first in range(0, len(queries), QUERIES):
            block = queries[first : first + QUERIES]
            own = _run(block, shift, width)
            for flip in flips:
                probe = own ^ flip
                counts = counts_of[probe]
                hit = np.flatnonzero(counts)
                if not hit.size:
                    continue
                each = counts[hit].astype(np.int64)
                q = np.repeat(hit, each)
                c = order[np.repeat(starts[probe[hit]] - np.cumsum(each) + each, each) + np.arange(q.size)]
                close = np.bitwise_count(block[q] ^ codes[c]) <= radius
                found_q.append(q[close] + first)
                found_c.append(c[close])
    pairs = np.unique(np.concatenate(found_q) * len(codes) + np.concatenate(found_c))
    return pairs // len(codes), pairs % len(codes)


class Index:
    """Codes indexed by their runs' values once, to look up a few queries at a time among them (a
    check's files among a library's layouts): ``near`` makes a table of a bucket per value for each
    lookup, which pays only when there are as many queries as codes; this sorts each run's values
    and finds a probe's bucket by binary search (24 bytes a code)."""

    def __init__(self, codes: np.ndarray) -> None:
        self.codes = np.asarray(codes, np.uint64)
        self._sorted: list[tuple[int, int, np.ndarray, np.ndarray]] | None = None  # made when first looked in

    def near(self, queries: np.ndarray, radius: int) -> tuple[np.ndarray, np.ndarray]:
        """Return the pairs (index into ``queries``, index into the codes) at most ``radius`` bits
        apart, each once, in two arrays, as ``near`` does."""
        codes, queries = self.codes, np.asarray(queries, np.uint64)
        if len(codes) * len(queries) <= EVERY_TWO:
            return near(codes, queries, radius)
        if self._sorted is None:
            self._sorted = []
            for shift, width in _runs():
                keys = _run(codes, shift, width)
                order = np.argsort(keys, kind="stable").astype(np.int32)
                self._sorted.append((shift, width, keys[order], order))
        found_q, found_c = [np.zeros(0, np.int64)], [np.zeros(0, np.int64)]
        for shift, width, keys, order in self._sorted:
            flips = np.array(_flips(width, radius // CHUNKS), np.int32)
            probes = (_run(queries, shift, width)[:, None] ^ flips[None, :]).ravel()
            starts = np.searchsorted(keys, probes, "left")
            counts = np.minimum(np.searchsorted(keys, probes, "right") - starts, CROWDED)
            hit = np.flatnonzero(counts)
            each = counts[hit]
            q = np.repeat(hit // len(flips), each)
            c = order[np.repeat(starts[hit] - np.cumsum(each) + each, each) + np.arange(q.size)].astype(np.int64)
            close = np.bitwise_count(queries[q] ^ codes[c]) <= radius
            found_q.append(q[close])
            found_c.append(c[close])
        pairs = np.unique(np.concatenate(found_q) * len(codes) + np.concatenate(found_c))
        return pairs // len(codes), pairs % len(codes)


def _runs() -> list[tuple[int, int]]:
    """Return each run's first bit and width: the 64 bits in CHUNKS runs, the wider first."""
    widths = [64 // CHUNKS + (i < 64 % CHUNKS) for i in range(CHUNKS)]
    return [(sum(widths[:i]), width) for i, width in enumerate(widths)]


def _run(codes: np.ndarray, shift: int, width: int) -> np.ndarray:
    return ((codes >> np.uint64(shift)) & np.uint64((1 << width) - 1)).astype(np.int32)


def _flips(width: int, most: int) -> list[int]:
    """Return every value of ``width`` bits with at most ``most`` of them set (0 first)."""
    return [sum(1 << bit for bit in bits) for n in range(most + 1) for bits in itertools.combinations(range(width), n)]
