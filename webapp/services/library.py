"""The library: adds, finds, lists and deletes images, keeping files, vectors and catalogue in step."""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
import unicodedata
from collections.abc import Callable, Collection, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from webapp.errors import NotFound, StoreUnavailable
from webapp.services.adding import Batch, Entry, Outcome, Prepared, clean_filename
from webapp.services.albums import AlbumEntry, children, level
from webapp.services.catalog import Catalog
from webapp.services.covers import Covers
from webapp.services.images import ImageStore
from webapp.services.imaging import Box, QueryImage
from webapp.services.preparing import Preparer
from webapp.services.priority import PRIORITY
from webapp.services.records import Description, Hit, Record, SearchResult, VectorStore
from webapp.services.renditions import Renditions
from webapp.services.telemetry import EMBED, INGESTED, SEARCH

if TYPE_CHECKING:  # built by the runtime, with the model's libraries
    from webapp.services.embedding import Embedder
    from webapp.services.trash import Trash

log = logging.getLogger(__name__)

DEFAULT_TOP_K = 10
MAX_TOP_K = 100


class Library:
    """The images a person has indexed, searchable by similarity."""

    def __init__(
        self,
        embedder: Embedder,
        vectors: VectorStore,
        images: ImageStore,
        catalog: Catalog,
        thumbnail_size: int,
        trash: Trash | None = None,
    ) -> None:
        self.embedder = embedder
        self.vectors = vectors
        self.images = images
        self.catalog = catalog
        self.thumbnail_size = thumbnail_size
        self.trash = trash  # None: deletions are final (TRASH_DAYS=0)
        # The final "already indexed?" check and the claim of what is new happen one batch at a
        # time per process, so two uploads of the same bytes cannot both count as new; the writes
        # themselves (files, vectors) run outside the lock, each batch claiming its own images.
        self._add_lock = threading.Condition()
        self._writing: dict[str, Record] = {}
        self._preparer = Preparer(embedder, vectors, catalog, thumbnail_size)
        self._renditions = Renditions(images, embedder.max_pixels, thumbnail_size)
        self.covers = Covers(catalog.db)  # the albums' covers people chose

    def add(
        self, data: bytes, filename: str | None, source: str = "upload", album: str = "", by: str = ""
    ) -> tuple[Record, bool]:
        """Index one image (into ``album``, added by the account ``by``); return its record and
        whether it was new (False for a duplicate)."""
        outcome = self.add_many([Entry(clean_filename(filename), data, album, added_by=by)], source)[0]
        if outcome.error is not None:
            raise outcome.error
        assert outcome.record is not None
        return outcome.record, outcome.status == "added"

    def add_many(self, entries: Sequence[Entry], source: str) -> list[Outcome]:
        """Index a batch of files in one model call per window; one bad file never stops the rest."""
        outcomes = self.commit(self.prepare(entries, source))
        assert outcomes is not None  # always wanted
        return outcomes

    def prepare(
        self,
        entries: Sequence[Entry],
        source: str,
        in_flight: Collection[str] = (),
        thumbnails: bool = True,
    ) -> Batch:
        """Hash the files, skip those indexed (or ``in_flight``), embed the rest and make their
        thumbnails (without ``thumbnails``, only those a JPEG's first view cannot make cheaply): no
        writes yet (services/preparing.py)."""
        return self._preparer.batch(entries, source, in_flight, thumbnails)

    def commit(self, batch: Batch, wanted: Callable[[], bool] | None = None) -> list[Outcome] | None:
        """Store a prepared batch (files, then vectors, then catalogue); return each file's outcome.

        ``wanted``: asked once no deletion or emptying of the library can run in this process; if
        false, nothing is written and None is returned. Asked before, a job's batch could be written
        just after the library was emptied (``clear`` waits for writes under way, not for this one).
        """
        mine = []
        with self._add_lock:
            if wanted is not None and not wanted():
                return None
            # Another request may have indexed (or be writing) the same bytes since prepare(): count it once.
            known = self.vectors.get(batch.new_shas)
            for item in batch.new:
                rec = item.record
                stored = known.get(rec.sha256) or self._writing.get(rec.sha256)
                batch.outcomes[item.index] = Outcome("duplicate", stored) if stored else Outcome("added", rec)
                if stored is None:
                    self._writing[rec.sha256] = rec
                    mine.append(item)
        try:
            self._store(mine)
        finally:
            with self._add_lock:
                for item in mine:
                    del self._writing[item.record.sha256]
                self._add_lock.notify_all()
        for i, j in batch.repeats.items():
            earlier = batch.outcomes[j]
            batch.outcomes[i] = Outcome("duplicate", earlier.record) if earlier.record else earlier
        outcomes = [batch.outcomes[i] for i in range(batch.size)]
        for status in ("added", "duplicate", "failed"):
            if n := sum(1 for o in outcomes if o.status == status):
                INGESTED.labels(status).inc(n)
        return outcomes

    def _store(self, new: list[Prepared]) -> None:
        """Write files first, then vectors, then the catalogue; undo what was written if a later step fails."""
        if not new:
            return
        try:
            created = self.images.put_many((p.record.sha256, p.record.mime, p.data, p.thumbnail) for p in new)
        except OSError as exc:  # a full disk, a read-only mount: say so (503); no file is left behind
            reason = exc.strerror or exc
            raise StoreUnavailable(f"the image files could not be stored ({reason}); nothing was added") from exc
        if len(new) > 1:
            PRIORITY.step_aside()  # Milvus Lite's upsert is Python: let a search through first
        try:
            self.vectors.upsert([(p.record, p.vector) for p in new])
        except Exception:
            self._take_back_vectors([p.record.sha256 for p in new])
            for sha in created:
                self.images.delete(sha)
            raise
        try:
            rows = ((p.record.sha256, p.record.added_at, p.record.album, p.fingerprint) for p in new)
            self.catalog.add(rows, {p.record.sha256: p.added_by for p in new})
        except Exception:  # the database full or gone: a 503 must leave nothing searchable behind
            self._take_back_vectors([p.record.sha256 for p in new])
            for sha in created:
                self.images.delete(sha)
            raise

    def _take_back_vectors(self, sha256s: list[str]) -> None:
        """Delete the vectors of a write that failed: a Milvus server may still carry out a call past its deadline.

        Only these images' own (none of them was stored before: ``commit``). If the store cannot take
        them back either, ``flask check`` reports any that appear as vectors without a file.
        """
        try:
            self.vectors.delete(sha256s)
        except StoreUnavailable as exc:
            log.warning("could not take back the vectors of %d images a failed write may leave: %s", len(sha256s), exc)

    def search(
        self, data: bytes, top_k: int, album: str = "", box: Box | None = None, pixels: bool = False
    ) -> SearchResult:
        """Embed the query image (or its ``box`` region); return the ``top_k`` most similar images (in ``album``).

        While searches overlap, the query is embedded in a helper process if the embedder has
        them (services/query_helpers.py); with ``pixels``, here, and the result keeps its pixels.
        """
        start = time.perf_counter()
        self.vectors.album_filter(album)  # refused before the model runs
        image = None
        with PRIORITY.interactive():
            with EMBED.time():
                embed_start = time.perf_counter()
                if pixels:
                    decoded, vector = self.embedder.embed(data, box)
                    query, image = QueryImage.of(decoded), decoded.image
                else:
                    query, vector = self.embedder.embed_query(data, box)
            with SEARCH.time():
                search_start = time.perf_counter()
                hits = self.vectors.search(vector, top_k, album)
        end = time.perf_counter()
        took, embed_ms, search_ms = end - start, search_start - embed_start, end - search_start
        return SearchResult(query, hits, took * 1000, embed_ms * 1000, search_ms * 1000, image)

    def similar(self, sha256: str, top_k: int, album: str = "") -> list[Hit]:
        """Return the ``top_k`` images most similar to an indexed one (itself excluded; in ``album``)."""
        with PRIORITY.interactive():
            vector = self.vectors.vector(sha256)
            if vector is None:
                raise NotFound(f"no image with id {sha256} in the library")
            hits = self.vectors.search(vector, top_k + 1, album)
        return [hit for hit in hits if hit.record.sha256 != sha256][:top_k]

    def get(self, sha256: str) -> Record:
        """Return the record of an indexed image or raise NotFound."""
        record = self.vectors.get([sha256]).get(sha256)
        if record is None:
            raise NotFound(f"no image with id {sha256} in the library")
        return record

    def records(self, sha256s: Iterable[str], fresh: bool = True) -> dict[str, Record]:
        """Return the records of those of ``sha256s`` the library holds, by content id (``fresh=False``:
        as of a moment ago, without waiting for a server's next time tick; for what is only shown)."""
        return self.vectors.get(sha256s, fresh)

    def added_by(self, sha256: str) -> str:
        """Return the account that added an image ("" with access control off, or before 2026-12-04)."""
        return self.adders([sha256]).get(sha256, "")

    def adders(self, sha256s: Iterable[str]) -> dict[str, str]:
        """Return the account that added each listed image of ``sha256s``, by content id."""
        return self.catalog.adders(sha256s)

    def newest(self, offset: int, limit: int, album: str = "", added_by: str | None = None) -> list[Record]:
        """Return a page of records, newest first (in ``album`` and below, added by ``added_by``, if given)."""
        page = self.catalog.newest(offset, limit, album, added_by)
        records = self.vectors.get(page)
        return [records[sha] for sha in page if sha in records]

    def delete(self, sha256: str, by: str = "") -> Record:
        """Remove an image: its catalogue entry and its vector; its files go to the trash (deleted
        ``by`` an account), or with it if there is none. Return its record."""
        record = self.get(sha256)
        with self._add_lock:
            self._add_lock.wait_for(lambda: not self._writing)
            self._delete([sha256], self.catalog.unlist([sha256]), [record], by)
        return record

    def delete_many(
        self, sha256s: Sequence[str], by: str = "", job: str | None = None, only: Callable[[Record], bool] | None = None
    ) -> list[Record]:
        """Remove several images at once, as ``delete`` removes one; return the records of those
        deleted, in the order asked.

        The catalogue decides, as for ``delete_keeping``: an image another request deleted meanwhile
        (unlisted first) is left to that deletion, and so is one the library does not hold. The
        deletion ``job`` that asked, if one did, is written with them in the trash. With ``only``,
        an image whose record it refuses stays.
        """
        with self._add_lock:
            self._add_lock.wait_for(lambda: not self._writing)
            records = {sha: rec for sha, rec in self.vectors.get(sha256s).items() if only is None or only(rec)}
            unlisted = self.catalog.unlist(list(records))
            taken = {row["sha256"] for row in unlisted}
            deleted = [records[sha] for sha in dict.fromkeys(sha256s) if sha in taken]
            self._delete([r.sha256 for r in deleted], unlisted, deleted, by, job)
            return deleted

    def delete_keeping(self, keep: str, others: list[Record], by: str = "") -> list[Record]:
        """Delete ``others`` only while ``keep`` is in the library; return those deleted.

        The catalogue decides (``Catalog.unlist``): a deletion of ``keep`` by any worker or machine
        unlists it first, so a resolution either finds it gone and deletes nothing (NotFound), or
        takes the others out of the list first and the keeper's deletion comes after. Before
        2026-12-04 that held within one process only: across processes, a resolution that checked
        the keeper as its deletion was under way deleted the rest, and neither was left.
        """
        with self._add_lock:
            # Wait here for writes under way, not in delete(): waiting there lets go of the lock.
            self._add_lock.wait_for(lambda: not self._writing)
            self.get(keep)  # deleted meanwhile by another route: keep the rest too
            unlisted = self.catalog.unlist([r.sha256 for r in others], keeping=keep)
            taken = {row["sha256"] for row in unlisted}
            deleted = [record for record in others if record.sha256 in taken]  # the rest were deleted meanwhile
            self._delete([r.sha256 for r in deleted], unlisted, deleted, by)
            return deleted

    def take_back(self, sha256s: list[str]) -> None:
        """Delete images a job's batch just added, as the library was emptied (services/units.py)."""
        with self._add_lock:
            self._add_lock.wait_for(lambda: not self._writing)
            self._delete(sha256s, self.catalog.unlist(sha256s))

    def _delete(
        self,
        sha256s: list[str],
        unlisted: list[dict[str, Any]],
        trashed: Sequence[Record] = (),
        by: str = "",
        job: str | None = None,
    ) -> None:
        """Delete unlisted images' vectors, then their groups and pairs, then their files, or put
        the ``trashed`` in the trash; if the vectors cannot be deleted (503), list the images again,
        as they were."""
        try:
            self.vectors.delete(sha256s)
        except BaseException:
            self.catalog.relist(unlisted)
            raise
        self.catalog.remove(sha256s)
        if self.trash is not None and trashed:
            try:
                adders = {row["sha256"]: row["added_by"] for row in unlisted}
                self.trash.keep(list(trashed), by, self.images, adders, job)
            except (OSError, StoreUnavailable) as exc:  # deleted all the same, as the person asked
                log.warning("could not put %d deleted images in the trash, deleted for good: %s", len(trashed), exc)
        for sha in sha256s:
            self.images.delete(sha)

    def move(self, albums: dict[str, str]) -> list[Record]:
        """Put images in other albums (content id -> its new album); return the records of those in
        the library, in their new albums.

        The vectors first (each written again with its new album), then the catalogue: a move cut
        short leaves the catalogue naming the old album, so the next try finds the image again, and
        writes both. A deletion in this process waits. An image another process deleted meanwhile is
        not brought back: its vector, written again, goes again if the catalogue listed it before the
        move and no longer does (a deletion unlists first), or if its file is gone. Until 2026-12-04
        only the file told, and a deletion whose files were still moving to the trash left a vector
        behind: a search hit without its image.
        """
        with self._add_lock:
            listed = self.catalog.which_listed(albums)  # before the vectors are read
            entries = self.vectors.entries(albums)
            changed = [
                (dataclasses.replace(rec, album=albums[sha]), vector)
                for sha, (rec, vector) in entries.items()
                if rec.album != albums[sha]
            ]
            for rec, _ in changed:
                self.vectors.album_filter(rec.album)  # 409 on a library made before albums
            self.vectors.upsert(changed)
            try:
                self.catalog.relabel({sha: albums[sha] for sha in entries})
            except Exception:
                self.vectors.upsert([entries[rec.sha256] for rec, _ in changed])  # as they were
                raise
            were = {rec.sha256 for rec, _ in changed} & listed
            unlisted = were - self.catalog.which_listed(were) if were else set()
            if gone := unlisted | {rec.sha256 for rec, _ in changed if self.images.original(rec.sha256) is None}:
                self.vectors.delete(sorted(gone))
        records = {sha: rec for sha, (rec, _) in entries.items()} | {rec.sha256: rec for rec, _ in changed}
        return [rec for sha, rec in records.items() if sha not in gone]

    def clear(self) -> int:
        """Remove every image; return how many there were."""
        with self._add_lock:
            self._add_lock.wait_for(lambda: not self._writing)
            count = self.vectors.count()
            self.vectors.clear()
            self.catalog.clear()
            self.images.clear()
            if self.trash is not None:
                self.trash.empty()
        return count

    def count(self) -> int:
        """Return the number of indexed images (asks Milvus)."""
        return self.vectors.count()

    def describe(self) -> Description:
        """Return the image count and how images are embedded and indexed."""
        v = self.vectors
        return Description(self.count(), self.embedder.name, self.embedder.dim, v.metric, v.index_type, v.kind)

    def original(self, sha256: str) -> Path | None:
        """Return the path of an image's original file, or None."""
        return self.images.original(sha256)

    def thumbnail(self, sha256: str) -> Path | None:
        """Return the path of an image's thumbnail, made from its original if not yet made; None if neither exists."""
        return self._renditions.thumbnail(sha256)

    def preview(self, sha256: str) -> Path | None:
        """Return the path of a JPEG of the image a browser can show, made at its first view; None
        if there is no original."""
        return self._renditions.preview(sha256)

    def trashed_thumbnail(self, sha256: str) -> Path | None:
        """Return the path of the thumbnail of an image in the trash (made from its original if not
        yet made), or None."""
        return None if self.trash is None else self._renditions.thumbnail(sha256, self.trash.files)

    def picture(self, data: bytes) -> tuple[bytes, int, int]:
        """Return a JPEG of an image that need not be in the library, and its upright size (nothing is stored)."""
        return self._renditions.picture(data)

    def listed(self, album: str = "", added_by: str | None = None) -> int:
        """Return the number of images the catalogue lists, in ``album`` and added by ``added_by`` if
        given (cheap: for paging)."""
        return self.catalog.total(album, added_by)

    def albums(self, kept: bool = False) -> list[tuple[str, int]]:
        """Return every album with how many images it holds (sub-albums included), by name
        (``kept``: a page's list, up to a few seconds old; see Catalog.albums)."""
        return self.catalog.albums(kept)

    def album(self, name: str, find: str = "", order: str = "name") -> tuple[AlbumEntry, list[AlbumEntry]]:
        """Return an album ("": the whole library) and the albums directly below it (with ``find``:
        those below it whose name holds that text), without covers (``covered`` adds them); NotFound
        if the library has no such album. ``order``: by name, the one last added to first
        ("newest"), or the one with the most images first ("largest"), by name among equals."""
        name = unicodedata.normalize("NFC", name)  # as the album list spells it
        albums = self.catalog.albums(kept=True)
        below = level(albums, name, find)
        if order == "newest":
            last = self.catalog.last_added([entry.name for entry in below])
            below.sort(key=lambda entry: last.get(entry.name, 0), reverse=True)
        elif order == "largest":
            below.sort(key=lambda entry: entry.count, reverse=True)
        if not name:
            return AlbumEntry("", self.catalog.total(), len(children(albums, ""))), below
        count = dict(albums).get(name)
        if count is None:
            raise NotFound(f"The library has no album {name}.")
        return AlbumEntry(name, count, len(children(albums, name))), below

    def set_cover(self, album: str, sha256: str | None, by: str = "") -> AlbumEntry:
        """Make an image the cover of ``album`` (None: its newest image again); return the album with
        its cover. NotFound for no such album; InvalidInput for an image not in it or below it."""
        entry = self.album(album)[0]
        if sha256 is None:
            self.covers.forget(entry.name)
        else:
            self.covers.choose(entry.name, sha256, by)
        return self.covered([entry])[0]

    def covered(self, entries: Sequence[AlbumEntry]) -> list[AlbumEntry]:
        """Return albums with their covers: the image a person chose for each (services/covers.py),
        else its newest, sub-albums included."""
        names = [entry.name for entry in entries]
        chosen = self.covers.chosen(names)
        newest = self.catalog.covers([name for name in names if name not in chosen])
        return [
            dataclasses.replace(
                entry, cover=chosen.get(entry.name) or newest.get(entry.name), chosen=entry.name in chosen
            )
            for entry in entries
        ]

    def complete(self, records: Sequence[Record]) -> None:
        """List indexed images the catalogue may lack (a worker died after their vectors)."""
        self.catalog.add((rec.sha256, rec.added_at, rec.album, None) for rec in records)

    def forget(self, sha256s: set[str]) -> None:
        """Drop catalogue entries whose vectors were lost (before they are indexed again)."""
        self.catalog.remove(sha256s)
