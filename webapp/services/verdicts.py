"""Which pairs of a library's images are one picture: the model's similarity, checked against their
fingerprints (services/fingerprints.py), less the pairs a person marked as not duplicates
(services/distinct_pairs.py). The duplicate scan (services/duplicates.py) asks it of each batch
of candidates.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from webapp.errors import WebappError
from webapp.services import distinct_pairs
from webapp.services.database import Database
from webapp.services.fingerprints import SIDE, Fingerprint, Layouts, fingerprint, from_bytes, same_picture, to_bytes
from webapp.services.imaging import decode
from webapp.services.library import Library
from webapp.services.priority import PRIORITY


class Verdicts:
    """Which pairs of a library's images are one picture: the model's similarity, checked against
    their fingerprints (services/fingerprints.py).

    An image's fingerprint is made as it is added, and kept in the catalogue. One added by an
    earlier release has none, or one of an earlier form: the scan makes it from the image's
    thumbnail (or original) and keeps it.
    An image whose files cannot be read has none: the model alone judges its pairs, by the threshold.
    A pair a person marked as not duplicates (services/distinct_pairs.py) is two pictures.
    """

    def __init__(self, library: Library, threshold: float, db: Database) -> None:
        self.library = library
        self.threshold = threshold
        self.db = db
        self.prints: dict[str, Fingerprint | None] = {}  # of the images met so far in the scan

    def __call__(self, candidates: dict[tuple[str, str], float]) -> list[tuple[str, str]]:
        self._load({sha for pair in candidates for sha in pair})
        p, threshold = self.prints, self.threshold
        same = [(a, b) for (a, b), similarity in candidates.items() if same_picture(similarity, p[a], p[b], threshold)]
        apart = distinct_pairs.marked(self.db, same) if same else set()
        return [pair for pair in same if pair not in apart]

    def every_print(
        self, should_stop: Callable[[], bool], made: Callable[[int], None]
    ) -> tuple[list[str], Layouts] | None:
        """Return the ids and the layouts of every catalogued picture that has a fingerprint (made
        where missing, as for a pair, telling ``made`` how many so far); None if stopped."""
        shas: list[str] = []
        parts: list[Layouts] = []
        making = 0
        for kept in self.library.catalog.every_fingerprint(size=500):  # at most seconds between two reports
            if should_stop():
                return None
            missing = sum(1 for data in kept.values() if data is None or from_bytes(data) is None)
            found = {sha: print_ for sha, print_ in self._read(kept.keys(), kept).items() if print_ is not None}
            shas += found
            parts.append(Layouts.of(list(found.values())))
            if missing:
                making += missing
                made(making)
        return shas, Layouts.joined(parts)

    def _load(self, shas: set[str]) -> None:
        if missing := shas - self.prints.keys():
            self.prints.update(self._read(missing, self.library.catalog.fingerprints(missing)))

    def _read(self, shas: Iterable[str], kept: dict[str, bytes | None]) -> dict[str, Fingerprint | None]:
        """Return the fingerprints of images from what the catalogue kept, making (and keeping) the missing."""
        prints: dict[str, Fingerprint | None] = {}
        made: dict[str, bytes] = {}
        for sha in shas:
            if (data := kept.get(sha)) is not None and (known := from_bytes(data)) is not None:
                prints[sha] = known
                continue
            prints[sha] = print_ = self._make(sha)
            if print_ is not None and sha in kept:  # catalogued without one: keep it for the next scan
                made[sha] = to_bytes(print_)
        if made:
            self.library.catalog.keep_fingerprints(made)
        return prints

    def _make(self, sha256: str) -> Fingerprint | None:
        store = self.library.images
        path = store.thumbnail(sha256) or store.original(sha256)
        if path is None:
            return None
        PRIORITY.step_aside()  # a scan is bulk work: searches go first
        try:
            return fingerprint(decode(path.read_bytes(), self.library.embedder.max_pixels, draft=4 * SIDE).image)
        except (OSError, WebappError):
            return None
