"""Which image of a near-duplicate group the review suggests keeping: the best copy of the picture.

The most pixels first: a copy halved, cropped or sent through a messenger has fewer. Then what the
camera wrote of it (EXIF's date taken, GPS position, camera maker or model): a tool that re-saves a
photo often drops it, and a copy without it loses what a library is sorted and mapped by, however
large its file (re-encoded at a higher quality, it is larger than the original). Then the largest
file (the least compressed), then the oldest.
"""

from __future__ import annotations

import warnings
from pathlib import Path

from PIL import ExifTags, Image

from webapp.services.imaging import MIME_BY_FORMAT
from webapp.services.records import Record


def camera_metadata(path: Path) -> int:
    """Return how many of the date taken, the position and the camera a file's EXIF names (0 to 3).

    Only the file's header is read: Pillow keeps the EXIF it meets before the pixels (a JPEG's APP1,
    a WebP's or HEIF's Exif box, a PNG's eXIf chunk if it comes first).
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # the header only
            with Image.open(path, formats=tuple(MIME_BY_FORMAT)) as img:
                raw = img.info.get("exif")
        if not raw:
            return 0
        exif = Image.Exif()
        exif.load(raw)
        details, position = exif.get_ifd(ExifTags.IFD.Exif), exif.get_ifd(ExifTags.IFD.GPSInfo)
    except Exception:  # a file or an EXIF block Pillow cannot read names nothing
        return 0
    taken = ExifTags.Base.DateTimeOriginal in details or ExifTags.Base.DateTime in exif
    camera = ExifTags.Base.Make in exif or ExifTags.Base.Model in exif
    return int(taken) + int(bool(position)) + int(camera)


def quality(record: Record, original: Path | None) -> tuple[int, int, int, int]:
    """Return how good a copy is to keep, compared as a tuple: its pixels, what its camera wrote of
    it (``camera_metadata``), its file's size, and its age."""
    if original is None:  # its file is gone (deleted during the scan): the least to keep
        return (record.width * record.height, 0, 0, -record.added_at)
    return (record.width * record.height, camera_metadata(original), original.stat().st_size, -record.added_at)
