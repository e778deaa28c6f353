"""Preparing files to add: hashed, those already indexed skipped, the rest embedded, each with its
thumbnail and fingerprint made; nothing written yet (``Library.commit`` writes a prepared batch)."""

from __future__ import annotations

import time
from collections.abc import Collection, Iterable, Sequence
from typing import TYPE_CHECKING

from webapp.errors import WebappError
from webapp.services.adding import Batch, Entry, Outcome, Prepared
from webapp.services.catalog import Catalog
from webapp.services.fingerprints import fingerprint, to_bytes
from webapp.services.imaging import REDUCED_SCALE, Decoded, content_id, shrunk, thumbnail_of
from webapp.services.records import Record, VectorStore
from webapp.services.telemetry import EMBED

if TYPE_CHECKING:  # built by the runtime, with the model's libraries
    from webapp.services.embedding import Embedder


class Preparer:
    """Turns a batch of files into what ``Library.commit`` writes, one model call per window."""

    def __init__(self, embedder: Embedder, vectors: VectorStore, catalog: Catalog, thumbnail_size: int) -> None:
        self.embedder = embedder
        self.vectors = vectors
        self.catalog = catalog
        self.thumbnail_size = thumbnail_size

    def batch(
        self, entries: Sequence[Entry], source: str, in_flight: Collection[str] = (), thumbnails: bool = True
    ) -> Batch:
        """Hash the files, skip those indexed (or ``in_flight``), embed the rest and make their
        thumbnails: no writes yet.

        Without ``thumbnails`` (a bulk load), the thumbnail of a JPEG is made the first time it is
        asked for, from the original decoded at a reduced scale; other formats decode whole, 10 to 300
        ms each, so theirs are made now, from the pixels at hand. Each image's pixels are let go as
        soon as its thumbnail is made.
        """
        batch = Batch(len(entries))
        todo: list[tuple[int, bytes]] = []
        shas = {i: content_id(e.data) for i, e in enumerate(entries) if isinstance(e.data, bytes)}
        known = self._known(shas.values())
        first: dict[str, int] = {}
        for i, entry in enumerate(entries):
            if isinstance(entry.data, WebappError):
                batch.outcomes[i] = Outcome("failed", reason=entry.data.message, error=entry.data)
            elif shas[i] in known or shas[i] in in_flight:
                batch.outcomes[i] = Outcome("duplicate", known.get(shas[i]))
            elif shas[i] in first:
                batch.repeats[i] = first[shas[i]]
            else:
                first[shas[i]] = i
                todo.append((i, entry.data))
        self._embed(entries, source, todo, thumbnails, batch)
        return batch

    def _known(self, shas: Iterable[str]) -> dict[str, Record]:
        """Return the records of those of ``shas`` the library holds, as far as a hint can tell
        (``Library.commit`` checks again, up to date).

        On a Milvus server the hint does not wait for the next time tick, so it may miss the last
        moments' writes and deletions. What it finds is checked against the catalogue, which a
        deletion changes first, and any not listed there is asked about again, up to date. Until
        2026-12-04 an upload, a restore or a job's file right after the image's deletion was taken
        for a duplicate, and not stored.
        """
        known = self.vectors.get(set(shas), fresh=False)
        if known and (doubtful := set(known) - self.catalog.which_listed(known)):  # deleted in the last moments?
            again = self.vectors.get(doubtful)  # or being written: up to date, only for these
            known = {sha: rec for sha, rec in known.items() if sha not in doubtful or sha in again}
        return known

    def _embed(
        self, entries: Sequence[Entry], source: str, todo: list[tuple[int, bytes]], thumbnails: bool, batch: Batch
    ) -> None:
        """Embed the files to add (``todo``: their places in ``entries`` and their bytes) and make
        their thumbnails and fingerprints, into ``batch``."""
        now, data_of = int(time.time() * 1000), dict(todo)
        started, besides = time.perf_counter(), 0.0  # thumbnails and fingerprints: not the model's time
        for i, decoded, vector in self.embedder.embed_many(todo):
            if isinstance(decoded, WebappError) or vector is None:
                error = decoded if isinstance(decoded, WebappError) else WebappError("could not embed")
                batch.outcomes[i] = Outcome("failed", reason=error.message, error=error)
                continue
            before = time.perf_counter()
            thumb, small = None, decoded.image  # a JPEG's draft: a few hundred pixels a side
            if thumbnails or decoded.mime not in REDUCED_SCALE:
                small = shrunk(decoded.image, self.thumbnail_size)
                thumb = thumbnail_of(small, decoded.image.info.get("icc_profile"))
            # From the thumbnail's pixels when made: 0.4 ms, where a whole 12 MP PNG took 15 ms.
            print_ = to_bytes(fingerprint(small))
            besides += time.perf_counter() - before
            record = _record(entries[i], decoded, source, now + i)
            batch.new.append(Prepared(i, record, vector, data_of[i], thumb, print_, entries[i].added_by))
        EMBED.observe(time.perf_counter() - started - besides)  # decoding and embedding only


def _record(entry: Entry, decoded: Decoded, source: str, added_at: int) -> Record:
    """Return the record of a newly embedded file.

    A batch's files are one millisecond apart: "newest first" lists a batch in its own order.
    """
    added_at = added_at if entry.added_at is None else entry.added_at
    return Record(
        decoded.sha256, entry.filename, decoded.width, decoded.height, source, decoded.mime, added_at, entry.album
    )
