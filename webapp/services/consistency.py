"""Check that files, vectors and the catalogue agree, and repair them after a crash."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from webapp.services.adding import Entry
from webapp.services.library import Library


@dataclass
class Report:
    """What disagrees (by content id), and what a repair did."""

    files: int = 0
    vectors: int = 0
    vector_without_file: list[str] = field(default_factory=list)
    file_without_vector: list[str] = field(default_factory=list)
    missing_from_catalogue: list[str] = field(default_factory=list)
    stale_in_catalogue: list[str] = field(default_factory=list)
    album_differs: list[str] = field(default_factory=list)  # the catalogue names another album than the vector
    leftover_files: list[Path] = field(default_factory=list)  # temporary files a crash left
    lost_from_trash: list[str] = field(default_factory=list)  # in the trash, without their original
    reindexed: int = 0
    unreadable: list[str] = field(default_factory=list)

    @property
    def consistent(self) -> bool:
        """Tell whether nothing disagrees."""
        return not (
            self.vector_without_file
            or self.file_without_vector
            or self.missing_from_catalogue
            or self.stale_in_catalogue
            or self.album_differs
            or self.leftover_files
            or self.lost_from_trash
        )


def check(library: Library, repair: bool = False) -> Report:
    """Compare the image files, the vector store and the catalogue; optionally make them agree.

    The files are the source of truth: a file without its vector is embedded again (its
    original name is lost, so it is named after its id); a vector whose file is gone is deleted,
    since nothing could be shown for it. Where the catalogue names another album than the one
    stored with the vector (an album move cut short), the vector's is kept. An image in the trash
    whose original is gone cannot be restored: its row is removed.
    """
    on_disk = dict(library.images.ids())
    indexed = library.vectors.ids()
    listed = library.catalog.all()
    report = Report(files=len(on_disk), vectors=len(indexed))
    report.vector_without_file = sorted(set(indexed) - set(on_disk))
    report.file_without_vector = sorted(set(on_disk) - set(indexed))
    report.missing_from_catalogue = sorted((set(indexed) & set(on_disk)) - listed)
    report.stale_in_catalogue = sorted(listed - (set(indexed) & set(on_disk)))
    stored, shown = library.vectors.albums(), library.catalog.albums_of()
    report.album_differs = sorted(sha for sha, album in shown.items() if sha in stored and stored[sha] != album)
    report.leftover_files = library.images.leftovers()
    report.lost_from_trash = [] if library.trash is None else library.trash.lost()
    if not repair:
        return report
    for path in report.leftover_files:
        path.unlink(missing_ok=True)
    if library.trash is not None:
        library.trash.remove(report.lost_from_trash)
    library.vectors.delete(report.vector_without_file)
    library.catalog.remove(report.stale_in_catalogue)
    # A move cut short writes the vectors first: the album it was moving the image to.
    library.catalog.relabel({sha: stored[sha] for sha in report.album_differs})
    missing = report.missing_from_catalogue
    for start in range(0, len(missing), 1000):
        library.complete(list(library.vectors.get(missing[start : start + 1000]).values()))
    for start in range(0, len(report.file_without_vector), 64):
        chunk = report.file_without_vector[start : start + 64]
        entries = [Entry(f"recovered-{sha[:12]}{on_disk[sha].suffix}", on_disk[sha].read_bytes()) for sha in chunk]
        for sha, outcome in zip(chunk, library.add_many(entries, source="repair"), strict=True):
            if outcome.status == "failed":
                report.unreadable.append(sha)  # a file damaged on disk: left for a person to see
            else:
                report.reindexed += 1
    library.vectors.checkpoint()
    return report
