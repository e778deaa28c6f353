"""Adding files to the library: entries in, outcomes out, and the batch between prepare and commit."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from webapp.errors import WebappError
from webapp.services.albums import album_of_item
from webapp.services.records import Record

# Control characters, and the bidirectional controls that make "gpj.exe" read as "exe.jpg".
_UNSAFE = re.compile("[\x00-\x1f\x7f\u200e\u200f\u202a-\u202e\u2066-\u2069]")


@dataclass(frozen=True)
class Entry:
    """One file to add: its bytes (or why they could not be read) and its name."""

    filename: str
    data: bytes | WebappError
    album: str = ""
    added_at: int | None = None  # milliseconds since the epoch; None: now (an image restored keeps its own)
    added_by: str = ""  # the account adding it ("" with access control off); a restored image keeps its own

    @classmethod
    def at(cls, path: str, data: bytes | WebappError, posix: bool = False) -> Entry:
        """Return the entry of a file at ``path`` relative to a loaded root: its album is the folder.

        ``posix``: the path is this machine's, where a backslash is part of a name, not a separator.
        """
        return cls(clean_filename(path, posix), data, album_of_item(path))


def without_controls(text: str) -> str:
    """Return ``text`` without control characters or bidirectional controls."""
    return _UNSAFE.sub("", text)


def clean_path(name: str | None, default: str = "unnamed") -> str:
    """Return a client's file name, folders kept (they make albums), without control characters."""
    return _UNSAFE.sub("", name or "").strip() or default


def clean_filename(name: str | None, posix: bool = False) -> str:
    """Keep only the last path component of a client's file name, without control characters."""
    base = re.split(r"/" if posix else r"[\\/]", name or "")[-1]
    return _UNSAFE.sub("", base).strip()[:255] or "unnamed"


@dataclass(frozen=True)
class Outcome:
    """What adding one file did: added, duplicate (already indexed) or failed, with the reason."""

    status: Literal["added", "duplicate", "failed"]
    record: Record | None = None
    reason: str = ""
    error: WebappError | None = None


@dataclass(frozen=True)
class Prepared:
    """A new file of a batch, embedded and waiting to be written: its place, record, vector, bytes
    and thumbnail (None: made at its first view). Not its pixels: a batch of 64 scans held 1.7 GB."""

    index: int
    record: Record
    vector: np.ndarray
    data: bytes
    thumbnail: bytes | None
    fingerprint: bytes  # services/fingerprints.py, as the catalogue keeps it
    added_by: str = ""


@dataclass
class Batch:
    """Files embedded by ``prepare`` and waiting for ``commit``."""

    size: int
    outcomes: dict[int, Outcome] = field(default_factory=dict)
    repeats: dict[int, int] = field(default_factory=dict)  # index -> earlier index, same bytes
    new: list[Prepared] = field(default_factory=list)

    @property
    def new_shas(self) -> set[str]:
        """Return the content ids this batch will add."""
        return {p.record.sha256 for p in self.new}
