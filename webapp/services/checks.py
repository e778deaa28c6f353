"""Checking files against the library: a job that adds nothing, and tells of each file whether the
library holds its bytes (in_library), holds the same picture (similar: as a near-duplicate scan
would group them, services/fingerprints.py), or nothing of it (new), with its closest images.

A check reads its files as a load does (uploaded files, a zip archive, a folder on the server: the
same job kinds, prefixed ``check-``), and its chunks run wherever a load's would. Each batch is
embedded at once and searched in one call; the verdicts and closest images are written with the
items (services/job_items.py), so a chunk delivered twice counts nothing twice.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from webapp.errors import WebappError
from webapp.services.adding import Entry
from webapp.services.fingerprints import SIDE, Fingerprint, fingerprint, from_bytes, same_picture
from webapp.services.grouping import NEIGHBOURS
from webapp.services.imaging import shrunk
from webapp.services.job_states import IN_LIBRARY, NEW, SIMILAR, Match
from webapp.services.library import Library
from webapp.services.records import Hit

MATCHES = 5  # closest images kept for each file
FAILED = "failed"


@dataclass(frozen=True)
class Verdict:
    """What a check found of one file."""

    state: str
    reason: str = ""
    matches: tuple[Match, ...] = ()  # best first


def compare(library: Library, entries: Sequence[Entry], album: str, threshold: float) -> list[Verdict]:
    """Compare files with the library (with ``album`` and its sub-albums only, if given): a verdict
    for each, in order. An image of the same bytes comes first, at similarity 1, wherever it is.

    A file is the same picture as an image if a near-duplicate scan would put the two in one group:
    at ``threshold`` or more alike to the model, or less with the same layout (same_picture).
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
    held = library.records({sha for _, sha, _, _ in read}, fresh=False)
    kept = library.catalog.fingerprints({hit.record.sha256 for hits in found for hit in hits})
    theirs = {sha: from_bytes(print_) if print_ is not None else None for sha, print_ in kept.items()}
    for (i, sha, mine, _), hits in zip(read, found, strict=True):
        verdicts[i] = _verdict(sha if sha in held else None, hits, mine, theirs, threshold)
    return [verdicts[i] for i in range(len(entries))]


def _verdict(
    same: str | None, hits: list[Hit], mine: Fingerprint, theirs: Mapping[str, Fingerprint | None], threshold: float
) -> Verdict:
    """Return the verdict of a file: the image of its bytes (``same``, if the library holds one),
    then its closest ``hits``, each told the same picture or not by their fingerprints.

    As many hits are looked at as a scan looks at neighbours (NEIGHBOURS): among many look-alikes
    (crops of one photo) the file's own copy may not be among the closest few. MATCHES are kept: the
    closest, with the first that is the same picture in the last place if none of them is.
    """
    matches = [(same, 1.0, True)] if same is not None else []
    matches += [
        (h.record.sha256, h.score, same_picture(h.score, mine, theirs.get(h.record.sha256), threshold))
        for h in hits
        if h.record.sha256 != same
    ]
    copy = next((m for m in matches if m[2]), None)
    kept = matches[:MATCHES]
    if copy is not None and copy not in kept:
        kept[-1] = copy
    state = IN_LIBRARY if same is not None else SIMILAR if copy is not None else NEW
    return Verdict(state, matches=tuple(kept))
