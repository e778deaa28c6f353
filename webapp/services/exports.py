"""Taking images out: an album with its sub-albums, or the whole library, as one zip of the
originals, written as it is sent.

Each original is stored as it was added (no recompression) under its album's path below the album
asked for, with the name it was added with; a second image of one name in one folder gets " (2)"
before its extension. So a zip uploaded again (Add images, a zip archive, into that album) brings
the same albums and names back. Names are made safe to unpack anywhere: no part is ``.`` or
``..``, and characters Windows reads as separators or refuses become ``_``.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import threading
import time
import zipfile
from collections.abc import Callable, Generator, Iterator, Sequence
from pathlib import PurePosixPath

from webapp.errors import TooBusy
from webapp.services.library import Library
from webapp.services.priority import PRIORITY
from webapp.services.records import Record

BATCH = 500  # images read from the catalogue at a time
MAX_AT_ONCE = 2  # downloads one process sends at once: each holds a request thread as long as it lasts
_UNSAFE = re.compile(r'[\\:*?"<>|\x00-\x1f]')
# names Windows keeps for devices, with any extension: a file CON.jpg cannot be written there
_DEVICES = {"CON", "PRN", "AUX", "NUL", *(f"{p}{n}" for p in ("COM", "LPT") for n in "123456789¹²³")}
_sending = threading.BoundedSemaphore(MAX_AT_ONCE)


class ZipExport:
    """The zip of an album (``""``: the whole library) or of chosen images, as an iterable of bytes
    for a response (``of_album``, ``of_images``).

    The first batch of records is read as it is made, so a database that cannot answer is an error
    before the download starts, not a zip cut short. A place among the MAX_AT_ONCE downloads of this
    process is taken too (TooBusy, 429, if none is free) and given back when the download ends,
    however it ends.
    """

    def __init__(self, library: Library, batches: Callable[[], Iterator[list[Record]]], album: str = "") -> None:
        self.library, self.album = library, album
        if not _sending.acquire(blocking=False):
            raise TooBusy(f"{MAX_AT_ONCE} downloads of images are under way from this server process; try again soon")
        try:
            self._batches = batches()
            self._first = next(self._batches, [])
        except BaseException:
            _sending.release()
            raise
        self._chunks = self._zip()
        self._released = False

    @classmethod
    def of_album(cls, library: Library, album: str, added_by: str | None = None) -> ZipExport:
        """Return the zip of ``album`` and its sub-albums (of the images ``added_by`` added, if
        given), each image under its path below it."""
        return cls(library, lambda: _batches(library, album, added_by), album)

    @classmethod
    def of_images(cls, library: Library, sha256s: Sequence[str]) -> ZipExport:
        """Return the zip of those of ``sha256s`` the library holds, each under its album's path."""

        def one_batch() -> Iterator[list[Record]]:
            records = library.records(sha256s, fresh=False)
            yield [records[sha] for sha in dict.fromkeys(sha256s) if sha in records]

        return cls(library, one_batch)

    @property
    def empty(self) -> bool:
        """Tell whether the album (or the library) has no images to send."""
        return not self._first

    @property
    def first_batch(self) -> list[Record]:
        """The first BATCH images it sends, in order: every image of a zip of chosen images."""
        return self._first

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        return next(self._chunks)

    def close(self) -> None:
        """End the download (the server calls it once it is sent, or the client went away)."""
        if not self._released:
            self._released = True
            self._chunks.close()
            _sending.release()

    def _zip(self) -> Generator[bytes, None, None]:
        out = _Chunks()
        names = _Names()
        with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as archive:
            for batch in _chain(self._first, self._batches):
                for record in batch:
                    PRIORITY.step_aside()  # a search under way goes first: it is someone waiting
                    path = self.library.original(record.sha256)
                    try:
                        source = path.open("rb") if path is not None else None
                    except FileNotFoundError:
                        source = None
                    if source is None:  # deleted since the catalogue was read
                        continue
                    with source:
                        info = zipfile.ZipInfo(names.of(record, self.album), _zip_time(record.added_at))
                        info.file_size = os.fstat(source.fileno()).st_size
                        with archive.open(info, "w") as target:
                            shutil.copyfileobj(source, target, 1 << 20)
                    yield out.take()
        yield out.take()  # the central directory


def _batches(library: Library, album: str, added_by: str | None) -> Iterator[list[Record]]:
    """Yield the records of the album's images (and below), BATCH at a time, oldest first."""
    after: tuple[int, str] | None = None
    while page := library.catalog.following(album, after, BATCH, everywhere=True, added_by=added_by):
        records = library.records([sha for _, sha, _ in page], fresh=False)
        yield [records[sha] for _, sha, _ in page if sha in records]
        after = page[-1][:2]


def _chain(first: list[Record], rest: Iterator[list[Record]]) -> Iterator[list[Record]]:
    if first:
        yield first
        yield from rest


class _Names:
    """Gives each image its path in the zip, one of a kind (in any case: unpacked on macOS or
    Windows, ``A.jpg`` and ``a.jpg`` are one file)."""

    def __init__(self) -> None:
        self._taken: set[str] = set()

    def of(self, record: Record, album: str) -> str:
        """Return the path of ``record`` in the zip of ``album``."""
        below = record.album[len(album) :].strip("/") if album else record.album
        folder = [_safe(part) for part in below.split("/") if part]
        stem, suffix = _split(_safe(record.filename))
        name, n = f"{stem}{suffix}", 1
        while (path := "/".join([*folder, name])).casefold() in self._taken:
            n += 1
            name = f"{stem} ({n}){suffix}"
        self._taken.add(path.casefold())
        return path


def _safe(part: str) -> str:
    """Return a path part that unpacks as one file or folder name anywhere: no separator or
    character Windows refuses, no trailing dot or space (Windows drops them: ``a.`` and ``a`` are
    one folder there), and no device's name (``CON.jpg`` becomes ``_CON.jpg``)."""
    part = _UNSAFE.sub("_", part).strip()
    if part in ("", ".", ".."):
        return "_"
    part = part.rstrip(". ") or "_"
    return f"_{part}" if part.split(".")[0].rstrip(" ").upper() in _DEVICES else part


def _split(name: str) -> tuple[str, str]:
    suffix = PurePosixPath(name).suffix
    return (name[: -len(suffix)], suffix) if suffix and len(suffix) < len(name) else (name, "")


def _zip_time(added_at_ms: int) -> tuple[int, int, int, int, int, int]:
    """Return when an image was added, in UTC, as a zip entry's time (which cannot be before 1980)."""
    at = time.gmtime(max(added_at_ms / 1000, 315532800))
    return at.tm_year, at.tm_mon, at.tm_mday, at.tm_hour, at.tm_min, at.tm_sec


class _Chunks(io.RawIOBase):
    """Where the zip is written: what it holds is taken away as it is sent (no seeking: the zip
    writes each entry's sizes after its data)."""

    def __init__(self) -> None:
        self._parts: list[bytes] = []

    def writable(self) -> bool:
        return True

    def write(self, data: bytes | bytearray | memoryview) -> int:  # type: ignore[override]
        self._parts.append(bytes(data))
        return len(data)

    def take(self) -> bytes:
        """Return what was written since the last take."""
        data = b"".join(self._parts)
        self._parts.clear()
        return data
