"""Which image of a near-duplicate group the review suggests keeping: the best copy of the picture.

The most of the picture's pixels first: a copy halved, cropped or sent through a messenger has
fewer. A copy rotated a few degrees, its corners filled with one colour, or padded with bars to
another shape, has more pixels than the photo, but not more of the picture: the fill is not
counted (``fill``), and among the copies with about the most of the picture (SAME_SIZE), one with
more fill than another (MORE_FILL) goes after it. Then what the camera wrote of it (EXIF's date
taken, GPS position, camera maker or model): a tool that re-saves a photo often drops it, and a
copy without it loses what a library is sorted and mapped by, however large its file (re-encoded
at a higher quality, it is larger than the original). Then the largest file (the least
compressed), then the oldest.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import ExifTags, Image

from webapp.services.imaging import MIME_BY_FORMAT
from webapp.services.records import Record

SAME_SIZE = 0.95  # copies with at least this share of the most pixels of the picture are as large
MORE_FILL = 0.03  # a copy with more fill than another by this share of the other's pixels is padded
FLAT = 6  # levels of grey a fill stays within (a JPEG's ringing)
MEASURED = 128  # the side of the grey copy the fill is measured on


@dataclass(frozen=True)
class Copy:
    """An image of a group as the keeper is chosen: its record, its original file (None: gone), and
    the file its fill is measured on (its thumbnail, or its original; None: not measured)."""

    record: Record
    original: Path | None
    seen: Path | None


@dataclass(frozen=True)
class Facts:
    """What the keeper is chosen by, of one copy, as a person is shown it: the share of its pixels
    that is fill, and what its camera's metadata names."""

    fill: float
    camera: list[str]


def facts(copy: Copy) -> Facts:
    """Return a copy's fill and camera metadata (``Facts``)."""
    return Facts(
        fill(copy.seen) if copy.seen is not None else 0.0,
        camera_fields(copy.original) if copy.original is not None else [],
    )


def keeper(copies: dict[str, Copy]) -> str:
    """Return the id of the copy to keep (this module's docstring says which)."""
    measured = {sha: _measure(copy) for sha, copy in copies.items()}
    most = max(picture for picture, _, _, _ in measured.values())
    large = {sha for sha, (picture, _, _, _) in measured.items() if picture >= SAME_SIZE * most}
    least_fill, _, pixels = min((measured[sha][1], i, measured[sha][2]) for i, sha in enumerate(sorted(large)))

    def rank(sha: str) -> tuple[bool, bool, int, int, float, int]:
        picture, filled, _, (metadata, size) = measured[sha]
        padded = filled - least_fill > MORE_FILL * pixels
        return (sha in large, not padded, metadata, size, picture, -copies[sha].record.added_at)

    return max(copies, key=rank)


def _measure(copy: Copy) -> tuple[float, float, int, tuple[int, int]]:
    """Return a copy's pixels of the picture, of fill, and in all, and its camera's metadata and size."""
    record, original = copy.record, copy.original
    pixels = record.width * record.height
    filled = pixels * fill(copy.seen) if copy.seen is not None else 0.0
    found = (camera_metadata(original), original.stat().st_size) if original is not None else (0, 0)
    return pixels - filled, filled, pixels, found


def fill(path: Path) -> float:
    """Return the share of a picture that is fill: where its four corners are one flat colour, the
    runs of that colour along each row from either edge (the corners a rotation brings in, bars
    that pad it to another shape). 0 for a picture whose corners differ, or a file it cannot read.

    A picture on a plain backdrop (a product shot, a scanned page) counts its backdrop too; its
    copies do alike, so only a copy padded more than another (MORE_FILL) goes after it.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # a file already accepted
            with Image.open(path, formats=tuple(MIME_BY_FORMAT)) as img:
                img.draft("L", (2 * MEASURED, 2 * MEASURED))
                small = img.convert("L")
                small.thumbnail((MEASURED, MEASURED), Image.Resampling.BOX)
    except Exception:  # a file Pillow cannot read has no fill to tell
        return 0.0
    grey = np.asarray(small, np.int16)
    corners = grey[[0, 0, -1, -1], [0, -1, 0, -1]]
    colour = int(np.median(corners))
    if np.abs(corners - colour).max() > FLAT:
        return 0.0
    other = np.abs(grey - colour) > FLAT
    some = other.any(axis=1)
    lead = np.where(some, other.argmax(axis=1), grey.shape[1])
    trail = np.where(some, other[:, ::-1].argmax(axis=1), 0)
    if not (_valley(lead) and _valley(np.where(some, trail, grey.shape[1]))):
        return 0.0  # runs of a dark sky or a backdrop between things, not a fill's straight edges
    return float(np.minimum(lead + trail, grey.shape[1]).sum() / grey.size)


def _valley(runs: np.ndarray, slack: int = 2) -> bool:
    """Return whether runs from one edge shrink then grow, row after row (within ``slack`` pixels):
    the corners a rotation brings in (triangles), or bars (as long on every row)."""
    bottom = int(np.argmin(runs))
    return bool(np.all(np.diff(runs[: bottom + 1]) <= slack) and np.all(np.diff(runs[bottom:]) >= -slack))


def camera_metadata(path: Path) -> int:
    """Return how many of the date taken, the position and the camera a file's EXIF names (0 to 3)."""
    return len(camera_fields(path))


def camera_fields(path: Path) -> list[str]:
    """Return which of "date taken", "position" and "camera" a file's EXIF names.

    Only the file's header is read: Pillow keeps the EXIF it meets before the pixels (a JPEG's APP1,
    a WebP's or HEIF's Exif box, a PNG's eXIf chunk if it comes first).
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # the header only
            with Image.open(path, formats=tuple(MIME_BY_FORMAT)) as img:
                raw = img.info.get("exif")
        if not raw:
            return []
        exif = Image.Exif()
        exif.load(raw)
        details, position = exif.get_ifd(ExifTags.IFD.Exif), exif.get_ifd(ExifTags.IFD.GPSInfo)
    except Exception:  # a file or an EXIF block Pillow cannot read names nothing
        return []
    named = {
        "date taken": ExifTags.Base.DateTimeOriginal in details or ExifTags.Base.DateTime in exif,
        "position": bool(position),
        "camera": ExifTags.Base.Make in exif or ExifTags.Base.Model in exif,
    }
    return [name for name, found in named.items() if found]
