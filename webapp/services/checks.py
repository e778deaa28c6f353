"""Checking files against the library: a job that adds nothing, and tells of each file whether the
library holds its bytes (in_library), holds the same picture (similar: as a near-duplicate scan
would group them, services/fingerprints.py), or nothing of it (new), with its closest images.

As a scan does, a check looks for the same picture twice: among each file's closest images to the
model, then, for a file with none, among the library's images laid out very nearly as it is (a
photo saved sideways can be as little as 0.54 alike to the model: ``fingerprints.close_to``).

A check reads its files as a load does (uploaded files, a zip archive, a folder on the server: the
same job kinds, prefixed ``check-``), and its chunks run wherever a load's would. Each batch is
embedded at once and searched in one call; the verdicts and closest images are written with the
items (services/job_items.py), so a chunk delivered twice counts nothing twice.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from webapp.errors import WebappError
from webapp.services.adding import Entry
from webapp.services.catalog import Catalog
from webapp.services.fingerprints import (
    SIDE,
    STORED_BYTES,
    Fingerprint,
    LayoutIndex,
    Layouts,
    fingerprint,
    from_bytes,
    same_picture,
)
from webapp.services.grouping import NEIGHBOURS
from webapp.services.imaging import Box, Decoded, shrunk
from webapp.services.job_states import IN_LIBRARY, NEW, SIMILAR, Match
from webapp.services.library import Library
from webapp.services.records import SearchResult

MATCHES = 5  # closest images kept for each file
FAILED = "failed"


@dataclass(frozen=True)
class Verdict:
    """What a check found of one file."""

    state: str
    reason: str = ""
    matches: tuple[Match, ...] = ()  # best first


REREAD = 60.0  # seconds a process's chunks of one check use the library's layouts it read


class KnownLayouts:
    """The layouts of the library's images (in ``album`` and below), read from the catalogue and
    indexed when first wanted (one without a fingerprint yet, from a release before them, is left
    out: the next scan makes it). 100,000 images take about 0.4 s and 23 MB, a million 4.7 s and
    224 MB (`bench/check_layouts.py`)."""

    def __init__(self, catalog: Catalog, album: str = "") -> None:
        self.catalog = catalog
        self.album = album
        self.made_at = time.monotonic()
        self._lock = threading.Lock()
        self._read: tuple[np.ndarray, LayoutIndex] | None = None

    def get(self) -> tuple[np.ndarray, LayoutIndex]:
        """Return the images' ids (as ASCII bytes) and their layouts indexed, in one order."""
        with self._lock:
            if self._read is None:
                shas: list[bytes] = []
                kept: list[bytes] = []
                for part in self.catalog.every_fingerprint(album=self.album):
                    for sha, data in part.items():
                        if data is not None and len(data) == STORED_BYTES:
                            shas.append(sha.encode())
                            kept.append(data)
                ids = np.frombuffer(b"".join(shas), "S64") if shas else np.zeros(0, "S64")
                self._read = ids, LayoutIndex(Layouts.stored(kept))
            return self._read


class LayoutCache:
    """The library's layouts (KnownLayouts) the chunks of one check share in a process: read again
    after REREAD seconds (so images other processes added meanwhile are seen) or for another check,
    and forgotten when the check ends, or once no chunk has asked for them for IDLE seconds (the
    process that runs a check's last chunk knows it ended; the others do not)."""

    IDLE = REREAD

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._kept: tuple[str, KnownLayouts] | None = None
        self._used = 0.0  # when a chunk last asked for them
        self._timer: threading.Timer | None = None

    def of(self, job_id: str, catalog: Catalog, album: str) -> KnownLayouts:
        """Return the layouts for a chunk of the check ``job_id``."""
        with self._lock:
            self._used = time.monotonic()
            if self._kept is None or self._kept[0] != job_id or self._used - self._kept[1].made_at > REREAD:
                self._kept = job_id, KnownLayouts(catalog, album)
            if self._timer is None:
                self._wait(self.IDLE)
            return self._kept[1]

    def _wait(self, seconds: float) -> None:
        self._timer = threading.Timer(seconds, self._let_go)
        self._timer.daemon = True
        self._timer.start()

    def _let_go(self) -> None:
        """Forget the layouts if no chunk asked for them for IDLE seconds; else look again then."""
        with self._lock:
            idle = time.monotonic() - self._used
            if self._kept is None or idle >= self.IDLE:
                self._kept, self._timer = None, None
            else:
                self._wait(self.IDLE - idle)

    @property
    def holding(self) -> str | None:
        """Return the id of the check whose layouts are kept, if any."""
        return None if self._kept is None else self._kept[0]

    def forget(self, job_id: str) -> None:
        """Drop the layouts of the check ``job_id``, if kept."""
        with self._lock:
            if self._kept is not None and self._kept[0] == job_id:
                self._kept = None


def compare(
    library: Library, entries: Sequence[Entry], album: str, threshold: float, known: KnownLayouts | None = None
) -> list[Verdict]:
    """Compare files with the library (with ``album`` and its sub-albums only, if given): a verdict
    for each, in order. An image of the same bytes comes first, at similarity 1, wherever it is.

    A file is the same picture as an image if a near-duplicate scan would put the two in one group:
    at ``threshold`` or more alike to the model, or less with the same layout (same_picture). The
    library's images laid out very nearly as a file is are looked at too, if ``known`` is given.
    """
    verdicts: dict[int, Verdict] = {}
    read: list[tuple[int, str, Fingerprint, np.ndarray]] = []  # each file's place, id, layout and vector
    for i, entry in enumerate(entries):
        if isinstance(entry.data, WebappError):
            verdicts[i] = Verdict(FAILED, entry.data.message)
    readable = [(i, e.data) for i, e in enumerate(entries) if isinstance(e.data, bytes)]
    for i, decoded, vector in library.embedder.embed_many(readable):
        if isinstance(decoded, WebappError) or vector is None:
            verdicts[i] = Verdict(FAILED, decoded.message if isinstance(decoded, WebappError) else "not embedded")
        else:  # its layout from a few pixels, as a scan makes one
            read.append((i, decoded.sha256, fingerprint(shrunk(decoded.image, 4 * SIDE)), vector))
    found = library.vectors.search_many([vector for *_, vector in read], NEIGHBOURS, album)
    hits = [[(hit.record.sha256, hit.score) for hit in part] for part in found]
    held = library.records({sha for _, sha, _, _ in read}, fresh=False)
    theirs = _prints(library, {sha for part in hits for sha, _ in part})
    for (i, sha, mine, _), closest in zip(read, hits, strict=True):
        verdicts[i] = _verdict(sha if sha in held else None, closest, mine, theirs, threshold)
    if known is not None and (unfound := [k for k, (i, *_) in enumerate(read) if verdicts[i].state == NEW]):
        alike = _laid_out_alike(library, [read[k][2:] for k in unfound], known)
        theirs.update(_prints(library, {sha for part in alike for sha, _ in part} - theirs.keys()))
        for k, more in zip(unfound, alike, strict=True):
            i, _, mine, _ = read[k]
            seen = {sha for sha, _ in hits[k]}
            if more := [hit for hit in more if hit[0] not in seen]:
                verdicts[i] = _verdict(None, hits[k] + more, mine, theirs, threshold)
    return [verdicts[i] for i in range(len(entries))]


def same_in_search(library: Library, result: SearchResult, box: Box | None, threshold: float) -> set[str]:
    """Return the ids of a search's hits that are the same picture as its query image (its ``box``
    region, if searched by one), as a check judges a file: by the rule a near-duplicate scan
    groups by. The result must keep its pixels (Library.search's ``pixels``): about 2 ms more at p50
    (`bench/same_picture.py`)."""
    if result.image is None:
        raise ValueError("the search kept no pixels to judge by")
    query = result.query
    picture = result.image
    if box is not None:
        picture = box.crop(Decoded(query.sha256, picture, query.width, query.height, query.mime))
    mine = fingerprint(shrunk(picture, 4 * SIDE))
    theirs = _prints(library, {hit.record.sha256 for hit in result.hits})
    return {
        hit.record.sha256
        for hit in result.hits
        if same_picture(hit.score, mine, theirs.get(hit.record.sha256), threshold)
    }


def _prints(library: Library, shas: set[str]) -> dict[str, Fingerprint | None]:
    return {sha: None if data is None else from_bytes(data) for sha, data in library.catalog.fingerprints(shas).items()}


def _laid_out_alike(
    library: Library, files: Sequence[tuple[Fingerprint, np.ndarray]], known: KnownLayouts
) -> list[list[tuple[str, float]]]:
    """Return, for each file (its fingerprint and vector), the library's images laid out very nearly
    as it is, each with its similarity to the model, most alike first."""
    ids, index = known.get()
    pairs = [(q, ids[c].decode()) for q, c in index.close_to(Layouts.of([print_ for print_, _ in files]))]
    vectors = library.vectors.vectors({sha for _, sha in pairs})
    alike: list[list[tuple[str, float]]] = [[] for _ in files]
    for q, sha in pairs:
        if (vector := vectors.get(sha)) is not None:  # deleted since the layouts were read: gone
            alike[q].append((sha, float(np.dot(files[q][1], vector))))
    return [sorted(part, key=lambda hit: -hit[1]) for part in alike]


def _verdict(
    same: str | None,
    hits: list[tuple[str, float]],
    mine: Fingerprint,
    theirs: Mapping[str, Fingerprint | None],
    threshold: float,
) -> Verdict:
    """Return the verdict of a file: the image of its bytes (``same``, if the library holds one),
    then its closest ``hits`` (id, similarity), each told the same picture or not by their fingerprints.

    As many hits are looked at as a scan looks at neighbours (NEIGHBOURS): among many look-alikes
    (crops of one photo) the file's own copy may not be among the closest few. MATCHES are kept: the
    closest, with the first that is the same picture in the last place if none of them is.
    """
    matches = [(same, 1.0, True)] if same is not None else []
    matches += [
        (sha, score, same_picture(score, mine, theirs.get(sha), threshold)) for sha, score in hits if sha != same
    ]
    copy = next((m for m in matches if m[2]), None)
    kept = matches[:MATCHES]
    if copy is not None and copy not in kept:
        kept[-1] = copy
    state = IN_LIBRARY if same is not None else SIMILAR if copy is not None else NEW
    return Verdict(state, matches=tuple(kept))
