"""A picture's layout as 63 bits, to tell a copy of a photo from another photo the model finds as alike.

The model's embeddings say what a picture shows: two close-ups of grass are as alike to it (0.95 to
0.965) as a photo and its copy re-saved at JPEG quality 40, which it often puts below 0.96. A
perceptual hash says where the light and dark are: the signs of the lowest 8 x 8 frequencies of a
32 x 32 grey copy (the DCT, less its mean), against their median. A copy keeps most of them (a
re-encoding, a resize, a recolouring: 10 bits apart at the median); another photo does not (32 at
the median, and 16 at the least for a pair the model finds at least 0.80 alike). `make
bench-fingerprints` prints these.

A copy turned a quarter (a photo saved sideways) keeps its layout turned, and its shape turned: a
landscape picture becomes a portrait one. The fingerprint keeps the bits of the picture turned both
ways and the shape it was made from, and the rule looks for a turned layout only between pictures
of turned shapes. Among pictures of one shape, a turned layout is too often another picture's: the
corners of a round retina are each other's quarter turns.

A copy rotated a few degrees (a print scanned twice, a photo straightened) changes the layout at
its edges, where the rotation brings in new corners, more than at its centre: the fingerprint
also keeps the layout of the picture's central 80% (CENTRE), and nearly the same centre is nearly
the same layout.

A photo saved sideways can be as little as 0.54 alike to the model (a rocket on a launch pad), and
one rotated 3 degrees 0.63 (cells under a microscope), far below the pairs it is asked for: the scan
also looks for the pairs of pictures whose layouts are very close (VERY_CLOSE), as they are, at
their centres, or turned between turned shapes (``close_copies``), and such a pair is one picture if
the model finds it at least somewhat alike (LOW_FLOOR).

The duplicate scan asks the model for candidates (each image's nearest neighbours) and this for
the verdict, by ``same_picture``. The thresholds were chosen on `flask evaluate --duplicates` of
scikit-image's photos (README, Near-duplicates).
"""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
from PIL import Image

from webapp.services.hamming import Index, near

SIDE = 32  # the grey copy's side
KEPT = 8  # frequencies kept on each axis: 64, less the mean
FLOOR = 0.80  # candidates: pairs at least this alike to the model (below, photos rarely share a layout)
CLOSE = 12  # bits apart at most for a candidate to be the same picture whatever the model says
# Bits apart past which a pair is two pictures, however alike to the model (textures): of all the
# pairs of distinct pictures of the evaluation, 5% pass it (29% at 26, its first value, which the
# turned and central layouts made too loose), and 95% of the copies' pairs.
FAR = 22
OBLONG = 1.1  # a picture this much longer than wide (or wider than long) has a shape a turn changes
SAME_SHAPE = 0.05  # two pictures' proportions differ by at most about 5% (a thumbnail's rounding)
CENTRE = 40  # the grey copy the centre is cut from: its middle SIDE x SIDE is the central 80%
# Two pictures whose layouts are this close (as they are, at their centres, or turned between
# turned shapes) are one picture if the model finds them at least LOW_FLOOR alike. In the
# evaluation, no two distinct pictures came this close at any similarity (the closest turned, 16
# bits), and 41 of the copies' 93 pairs below FLOOR did: photos saved sideways (0.54-0.80 alike, 0
# to 10 bits turned) and rotated 3 degrees (centres 4 to 8 bits). Of 200 aligned faces, 2 pairs.
VERY_CLOSE = 8
LOW_FLOOR = 0.50


class Fingerprint(NamedTuple):
    """A picture's layout as it is, mirrored and turned a quarter each way, its centre's, and its shape."""

    bits: int
    mirrored: int  # left and right swapped
    turned: tuple[int, int]  # turned a quarter clockwise, and anticlockwise
    centre: int  # the layout of its central 80%
    shape: tuple[int, int]  # the width and height of the pixels it was made from


class Layouts(NamedTuple):
    """Many pictures' fingerprints as arrays, what ``close_copies`` looks up: 48 bytes a picture
    instead of some 400 as Fingerprints (a scan of a million pictures holds them all)."""

    whole: np.ndarray  # the layouts as they are (uint64)
    centre: np.ndarray
    turned: np.ndarray  # (n, 2): turned clockwise, and anticlockwise
    shapes: np.ndarray  # (n, 2): width and height

    @classmethod
    def of(cls, prints: Sequence[Fingerprint]) -> Layouts:
        """Return the layouts of these fingerprints, in their order."""
        return cls(
            np.array([p.bits for p in prints], np.uint64),
            np.array([p.centre for p in prints], np.uint64),
            np.array([p.turned for p in prints], np.uint64).reshape(-1, 2),
            np.array([p.shape for p in prints], np.float64).reshape(-1, 2),
        )

    @classmethod
    def stored(cls, kept: Sequence[bytes]) -> Layouts:
        """Return the layouts of fingerprints as the catalogue keeps them (``to_bytes``), in their
        order, without making a Fingerprint of each (a check reads a whole library's)."""
        rows = np.frombuffer(b"".join(kept), np.dtype([("layouts", ">u8", 5), ("shape", ">u4", 2)]))
        layouts = rows["layouts"].astype(np.uint64).reshape(-1, 5)
        return cls(layouts[:, 0], layouts[:, 4], layouts[:, 2:4], rows["shape"].astype(np.float64).reshape(-1, 2))

    @classmethod
    def joined(cls, parts: Sequence[Layouts]) -> Layouts:
        """Return the layouts of several parts, one after the other."""
        return cls(*(np.concatenate([getattr(part, field) for part in (cls.of([]), *parts)]) for field in cls._fields))


_STORED = struct.Struct(">5Q2I")  # as the catalogue keeps it: the five layouts, then the shape
STORED_BYTES = _STORED.size


def _dct_rows(n: int, kept: int) -> np.ndarray:
    """Return the first ``kept`` rows of the orthonormal DCT-II matrix of size ``n``."""
    k = np.arange(kept)[:, None]
    x = np.arange(n)[None, :]
    rows = np.cos(np.pi * (2 * x + 1) * k / (2 * n)) * np.sqrt(2 / n)
    rows[0] /= np.sqrt(2)
    return rows.astype(np.float64)


_DCT = _dct_rows(SIDE, KEPT)
_ODD = np.where(np.arange(KEPT) % 2, -1.0, 1.0)  # a flip changes the sign of odd frequencies on its axis


def _bits(*layouts: np.ndarray) -> list[int]:
    """Return each layout's bits: its frequencies above their median (in one pass: 0.05 ms each alone)."""
    values = np.stack(layouts).reshape(len(layouts), -1)
    values[:, 0] = np.median(values[:, 1:], axis=1)  # the mean says only how bright the picture is: its bit is 0
    return [int.from_bytes(row.tobytes(), "big") for row in np.packbits(values > values[:, :1], axis=1)]


def fingerprint(img: Image.Image) -> Fingerprint:
    """Return the picture's fingerprint: its layout as it is, mirrored (a flipped selfie is the same
    picture) and turned, its centre's, and its shape."""
    luminance = img.convert("L")
    grey = np.asarray(luminance.resize((SIDE, SIDE), Image.Resampling.BOX), np.float64)
    margin = (CENTRE - SIDE) // 2
    middle = np.asarray(luminance.resize((CENTRE, CENTRE), Image.Resampling.BOX), np.float64)
    middle = middle[margin : margin + SIDE, margin : margin + SIDE]
    coefficients = _DCT @ grey @ _DCT.T  # [vertical, horizontal] frequencies
    mirrored = coefficients * _ODD[None, :]
    # A quarter turn is a flip and a transposition: clockwise, the picture upside down then
    # transposed; anticlockwise, mirrored then transposed.
    clockwise, anticlockwise = (coefficients * _ODD[:, None]).T, mirrored.T
    bits, mirror, *turned, centre = _bits(coefficients, mirrored, clockwise, anticlockwise, _DCT @ middle @ _DCT.T)
    return Fingerprint(bits, mirror, (turned[0], turned[1]), centre, img.size)


def to_bytes(print_: Fingerprint) -> bytes:
    """Return a fingerprint as the catalogue keeps it: 48 bytes."""
    return _STORED.pack(print_.bits, print_.mirrored, *print_.turned, print_.centre, *print_.shape)


def from_bytes(data: bytes) -> Fingerprint | None:
    """Return the fingerprint the catalogue kept as ``to_bytes``, or None for one of another form
    (the 16 bytes of the release before turned layouts: the next scan makes it again)."""
    if len(data) != _STORED.size:
        return None
    bits, mirrored, clockwise, anticlockwise, centre, width, height = _STORED.unpack(data)
    return Fingerprint(bits, mirrored, (clockwise, anticlockwise), centre, (width, height))


def _apart(a: int, b: int) -> int:
    return (a ^ b).bit_count()


def turned_shapes(a: tuple[int, int], b: tuple[int, int]) -> bool:
    """Return whether two shapes (width, height) are one turned a quarter: one landscape and the
    other portrait in the same proportions, neither nearly square."""
    (wa, ha), (wb, hb) = a, b
    if min(wa, ha, wb, hb) <= 0:
        return False
    pa, pb = math.log(wa / ha), math.log(wb / hb)
    return max(abs(pa), abs(pb)) >= math.log(OBLONG) and abs(pa + pb) <= SAME_SHAPE


def turn_apart(a: Fingerprint, b: Fingerprint) -> int:
    """Return the bits between one picture's layout turned a quarter (either way) and the other's."""
    return min(*(_apart(turn, b.bits) for turn in a.turned), *(_apart(a.bits, turn) for turn in b.turned))


def very_close(a: Fingerprint, b: Fingerprint) -> bool:
    """Return whether two pictures' layouts are at most VERY_CLOSE bits apart: as they are, at their
    centres, or with one turned a quarter if their shapes are (``turned_shapes``)."""
    if min(_apart(a.bits, b.bits), _apart(a.centre, b.centre)) <= VERY_CLOSE:
        return True
    return turned_shapes(a.shape, b.shape) and turn_apart(a, b) <= VERY_CLOSE


def close_copies(layouts: Layouts, most: int = 16) -> list[tuple[int, int]]:
    """Return the pairs (indices into ``layouts``, the lower first) whose layouts are ``very_close``,
    at most ``most`` pairs a picture, its closest (a library of blank frames would pair each with
    each).

    The layouts are looked up by their bits (services/hamming.py), not compared two by two: 5 s for
    100,000 pictures here, 2.4 minutes for a million half of each shape (every such pair of a library
    is looked for: the model's neighbours miss them).
    """
    whole, centre, turned, shapes = layouts
    n = len(whole)
    if n < 2:
        return []
    ratios = _ratios(shapes)
    firsts, seconds = [], []
    for codes in (whole, centre):
        q, c = near(codes, codes, VERY_CLOSE)
        firsts.append(q[q < c])
        seconds.append(c[q < c])

    def turnable(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return _turnable(ratios[a], ratios[b])

    wide, tall = np.flatnonzero(ratios > 0), np.flatnonzero(ratios < 0)
    for one, other in ((wide, tall), (tall, wide)):
        for way in (0, 1):  # one turned either way against the other as it is
            i, j = near(whole[other], turned[one, way], VERY_CLOSE)
            x, y = one[i], other[j]
            firsts.append(np.minimum(x, y)[turnable(x, y)])
            seconds.append(np.maximum(x, y)[turnable(x, y)])
    pairs = np.unique(np.concatenate(firsts) * n + np.concatenate(seconds))
    a, b = pairs // n, pairs % n
    apart = np.minimum(np.bitwise_count(whole[a] ^ whole[b]), np.bitwise_count(centre[a] ^ centre[b]))
    turns = [np.bitwise_count(turned[a, way] ^ whole[b]) for way in (0, 1)]
    turns += [np.bitwise_count(whole[a] ^ turned[b, way]) for way in (0, 1)]
    apart = np.minimum(apart, np.where(turnable(a, b), np.minimum.reduce(turns), 64))
    found: list[tuple[int, int]] = []
    pairs_of = np.zeros(n, dtype=np.int64)
    for k in np.argsort(apart, kind="stable").tolist():
        first, second = int(a[k]), int(b[k])
        if max(pairs_of[first], pairs_of[second]) < most:
            found.append((first, second))
            pairs_of[first] += 1
            pairs_of[second] += 1
    return found


def close_to(queries: Layouts, layouts: Layouts, most: int = 16) -> list[tuple[int, int]]:
    """Return the pairs (index into ``queries``, index into ``layouts``) that are ``very_close``, at
    most ``most`` a query, its closest: what ``close_copies`` finds within a library, between
    pictures outside it (a check's files) and the library's (``LayoutIndex`` indexes them once)."""
    return LayoutIndex(layouts).close_to(queries, most)


class LayoutIndex:
    """A library's layouts, indexed by their bits (services/hamming.py ``Index``) to look up pictures
    outside it a few at a time: as they are, at their centres, and turned either way."""

    def __init__(self, layouts: Layouts) -> None:
        self.layouts = layouts
        self._whole, self._centre = Index(layouts.whole), Index(layouts.centre)
        self._turned = [Index(layouts.turned[:, way]) for way in (0, 1)]
        self._ratios = _ratios(layouts.shapes)

    def close_to(self, queries: Layouts, most: int = 16) -> list[tuple[int, int]]:
        """Return the pairs (index into ``queries``, index into the layouts) that are ``very_close``,
        at most ``most`` a query, its closest."""
        layouts = self.layouts
        n, m = len(queries.whole), len(layouts.whole)  # (a Layouts' own len is its fields')
        if not n or not m:
            return []
        found = [self._whole.near(queries.whole, VERY_CLOSE), self._centre.near(queries.centre, VERY_CLOSE)]
        for way in (0, 1):  # either turned a quarter, against the other as it is
            found += [
                self._whole.near(queries.turned[:, way], VERY_CLOSE),
                self._turned[way].near(queries.whole, VERY_CLOSE),
            ]
        q, c = (np.concatenate(part) for part in zip(*found, strict=True))
        pairs = np.unique(q * m + c)
        q, c = pairs // m, pairs % m
        apart = np.minimum(
            np.bitwise_count(queries.whole[q] ^ layouts.whole[c]),
            np.bitwise_count(queries.centre[q] ^ layouts.centre[c]),
        )
        turns = np.minimum.reduce(
            [np.bitwise_count(queries.turned[q, way] ^ layouts.whole[c]) for way in (0, 1)]
            + [np.bitwise_count(queries.whole[q] ^ layouts.turned[c, way]) for way in (0, 1)]
        )
        apart = np.minimum(apart, np.where(_turnable(_ratios(queries.shapes)[q], self._ratios[c]), turns, 64))
        kept: list[tuple[int, int]] = []
        per_query = np.zeros(n, dtype=np.int64)
        for k in np.argsort(apart, kind="stable").tolist():
            if apart[k] <= VERY_CLOSE and per_query[q[k]] < most:
                kept.append((int(q[k]), int(c[k])))
                per_query[q[k]] += 1
        return kept


def _ratios(shapes: np.ndarray) -> np.ndarray:
    """Return the log of each shape's (width, height) proportions: above 0 for a landscape picture."""
    return np.log(np.maximum(shapes[:, 0], 1) / np.maximum(shapes[:, 1], 1))


def _turnable(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Return ``turned_shapes`` of many pairs, by their ``_ratios``."""
    return (np.maximum(np.abs(a), np.abs(b)) >= math.log(OBLONG)) & (np.abs(a + b) <= SAME_SHAPE)


def layout_apart(a: Fingerprint, b: Fingerprint) -> int:
    """Return the bits between two pictures' layouts as they are, or with one turned a quarter if
    their shapes are, or between their centres: the least (neither mirrored)."""
    apart = min(_apart(a.bits, b.bits), _apart(a.centre, b.centre))
    return min(apart, turn_apart(a, b)) if turned_shapes(a.shape, b.shape) else apart


def same_layout(a: Fingerprint | None, b: Fingerprint | None) -> bool | None:
    """Return whether two pictures are laid out nearly the same (CLOSE bits apart at most, neither
    mirrored), as they are, one turned a quarter, or at their centres; None if either has no
    fingerprint."""
    if a is None or b is None:
        return None
    return layout_apart(a, b) <= CLOSE


def same_picture(similarity: float, a: Fingerprint | None, b: Fingerprint | None, threshold: float) -> bool:
    """Return whether two images are one picture, by the model's ``similarity`` and their fingerprints
    (None for an image that could not be read: the model alone decides, by ``threshold``).

    At least LOW_FLOOR alike with very nearly the same layout (VERY_CLOSE: as they are, at their
    centres, or turned between turned shapes: ``very_close``); or at least FLOOR alike with nearly
    the same layout (CLOSE bits apart; turned between turned shapes, or at their centres:
    ``same_layout``); or at least ``threshold`` alike, unless their layouts differ (FAR), either one
    mirrored, and neither is the other turned (CLOSE, whatever the shapes: a square photo saved
    sideways) nor has its centre (CLOSE). Only the model's verdict
    allows a mirror image, or a turn between pictures of one shape: in the FLOOR band, the corners
    of a symmetric picture (a retina, a facade) are each other's mirror images and quarter turns,
    and would be called one. A turned layout counts only within CLOSE: up to FAR, it let more
    close-ups of one texture through.
    """
    if a is None or b is None:
        return similarity >= threshold
    if similarity >= LOW_FLOOR and very_close(a, b):
        return True
    if similarity >= FLOOR and same_layout(a, b):
        return True
    if similarity < threshold:
        return False
    apart = min(_apart(a.bits, b.bits), _apart(a.bits, b.mirrored), _apart(a.mirrored, b.bits))
    return apart <= FAR or min(turn_apart(a, b), _apart(a.centre, b.centre)) <= CLOSE
