"""A picture's layout as 63 bits, to tell a copy of a photo from another photo the model finds as alike.

The model's embeddings say what a picture shows: two close-ups of grass are as alike to it (0.95 to
0.965) as a photo and its copy re-saved at JPEG quality 40, which it often puts below 0.96. A
perceptual hash says where the light and dark are: the signs of the lowest 8 x 8 frequencies of a
32 x 32 grey copy (the DCT, less its mean), against their median. A copy keeps most of them (a
re-encoding, a resize, a recolouring: 10 bits apart at the median); another photo does not (32 at
the median, and 16 at the least for a pair the model finds at least 0.80 alike). `make
bench-fingerprints` prints these.

The duplicate scan asks the model for candidates (each image's nearest neighbours) and this for
the verdict, by ``same_picture``. The thresholds were chosen on `flask evaluate --duplicates` of
scikit-image's photos (README, Near-duplicates).
"""

from __future__ import annotations

import numpy as np
from PIL import Image

SIDE = 32  # the grey copy's side
KEPT = 8  # frequencies kept on each axis: 64, less the mean
FLOOR = 0.80  # candidates: pairs at least this alike to the model (below, photos rarely share a layout)
CLOSE = 12  # bits apart at most for a candidate to be the same picture whatever the model says
FAR = 26  # bits apart past which a pair is two pictures, however alike to the model (textures)

Fingerprint = tuple[int, int]  # the picture's bits and its mirror image's


def _dct_rows(n: int, kept: int) -> np.ndarray:
    """Return the first ``kept`` rows of the orthonormal DCT-II matrix of size ``n``."""
    k = np.arange(kept)[:, None]
    x = np.arange(n)[None, :]
    rows = np.cos(np.pi * (2 * x + 1) * k / (2 * n)) * np.sqrt(2 / n)
    rows[0] /= np.sqrt(2)
    return rows.astype(np.float64)


_DCT = _dct_rows(SIDE, KEPT)
_MIRROR = np.where(np.arange(KEPT) % 2, -1.0, 1.0)[None, :]  # odd horizontal frequencies change sign


def _bits(coefficients: np.ndarray) -> int:
    values = coefficients.flatten()
    values[0] = np.median(values[1:])  # the mean says only how bright the picture is: its bit is 0
    return int.from_bytes(np.packbits(values > values[0]).tobytes(), "big")


def fingerprint(img: Image.Image) -> Fingerprint:
    """Return the picture's fingerprint, and its mirror image's (a flipped selfie is the same picture)."""
    grey = np.asarray(img.convert("L").resize((SIDE, SIDE), Image.Resampling.BOX), np.float64)
    coefficients = _DCT @ grey @ _DCT.T  # [vertical, horizontal] frequencies
    return _bits(coefficients), _bits(coefficients * _MIRROR)


def to_bytes(print_: Fingerprint) -> bytes:
    """Return a fingerprint as the catalogue keeps it: 16 bytes."""
    return print_[0].to_bytes(8, "big") + print_[1].to_bytes(8, "big")


def from_bytes(data: bytes) -> Fingerprint:
    """Return the fingerprint the catalogue kept as ``to_bytes``."""
    return int.from_bytes(data[:8], "big"), int.from_bytes(data[8:16], "big")


def same_layout(a: Fingerprint | None, b: Fingerprint | None) -> bool | None:
    """Return whether two pictures are laid out nearly the same (CLOSE bits apart at most, neither
    mirrored), or None if either has no fingerprint."""
    if a is None or b is None:
        return None
    return (a[0] ^ b[0]).bit_count() <= CLOSE


def same_picture(similarity: float, a: Fingerprint | None, b: Fingerprint | None, threshold: float) -> bool:
    """Return whether two images are one picture, by the model's ``similarity`` and their fingerprints
    (None for an image that could not be read: the model alone decides, by ``threshold``).

    At least FLOOR alike with nearly the same layout (CLOSE bits apart); or at least ``threshold``
    alike, unless their layouts differ (FAR), either one mirrored. Only the model's verdict allows
    a mirror image: in the FLOOR band, the corners of a symmetric picture (a retina, a facade) are
    each other's mirror images, and would be called one.
    """
    if a is None or b is None:
        return similarity >= threshold
    if similarity >= FLOOR and same_layout(a, b):
        return True
    apart = min((a[0] ^ b[0]).bit_count(), (a[0] ^ b[1]).bit_count(), (a[1] ^ b[0]).bit_count())
    return similarity >= threshold and apart <= FAR
