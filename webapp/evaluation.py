"""Retrieval quality of an embedding model, by exact cosine search over numpy (no Milvus, no Flask).

Class mode: in a folder of class sub-folders, every image is a query against all the others
(leave-one-out). Near-duplicate mode: augmented copies of every image are queries against the
library of originals. Duplicates mode: copies are mixed with the originals and grouped at each
similarity threshold by the duplicate scan's rule (the model's similarity, checked against the
images' fingerprints); precision and recall of those groups choose the threshold. Milvus is left
out on purpose: this measures the model itself.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from webapp.errors import InvalidInput, WebappError
from webapp.evaluation_copies import AUGMENTATIONS, DUPLICATE_COPIES, copy_chunks
from webapp.evaluation_scores import (
    THRESHOLDS,
    joined,
    leave_one_out,
    rank_targets,
    scores_of,
    suggest_threshold,
)
from webapp.services.fingerprints import FLOOR, LOW_FLOOR, SIDE, Fingerprint, fingerprint, same_picture
from webapp.services.imaging import decode
from webapp.services.sources import is_candidate

if TYPE_CHECKING:  # the model's libraries load with the first embedder, not with the CLI
    from webapp.services.embedding import Embedder

CHUNK = 256  # images read and embedded at a time: bounds memory on large folders
Progress = Callable[[int], None]


MIN_COPY_SIDE = 256  # smaller images (crops, thumbnails) serve only as distinct look-alikes


def image_files(folder: Path) -> list[Path]:
    """List the image files under a folder, recursively and in a stable order (hidden ones left out)."""
    return sorted(p for p in folder.rglob("*") if p.is_file() and is_candidate(p.relative_to(folder).as_posix()))


@dataclass
class Embedded:
    """The vectors of the images that could be read, and why the others could not."""

    keys: list[Any]
    vectors: np.ndarray
    skipped: list[tuple[str, str]]
    seconds: float  # spent decoding and embedding


def embed_all(embedder: Embedder, chunks: Iterable[list[tuple[Any, bytes]]], progress: Progress | None) -> Embedded:
    """Embed chunks of (key, bytes) in batches, keeping the vectors of the readable images."""
    keys: list[Any] = []
    vectors: list[np.ndarray] = []
    skipped: list[tuple[str, str]] = []
    seconds = 0.0
    for chunk in chunks:
        start = time.perf_counter()
        for key, decoded, vector in embedder.embed_many(chunk):
            if vector is None:
                skipped.append((str(key), decoded.message if isinstance(decoded, WebappError) else "not embedded"))
            else:
                keys.append(key)
                vectors.append(vector)
        seconds += time.perf_counter() - start
        if progress:
            progress(len(chunk))
    matrix = np.stack(vectors) if vectors else np.zeros((0, embedder.dim), np.float32)
    return Embedded(keys, matrix, skipped, seconds)


def file_chunks(root: Path, paths: list[Path], skipped: list[tuple[str, str]]) -> Iterator[list[tuple[Any, bytes]]]:
    """Read files in chunks as (path under root, bytes); note the unreadable ones in ``skipped``."""
    for start in range(0, len(paths), CHUNK):
        chunk = []
        for path in paths[start : start + CHUNK]:
            name = path.relative_to(root).as_posix()
            try:
                chunk.append((name, path.read_bytes()))
            except OSError as exc:
                skipped.append((name, f"cannot read the file ({exc.strerror})"))
        yield chunk


@dataclass
class Report:
    """What one evaluation measured, ready to print or save."""

    mode: str
    model: str
    folder: str
    counts: dict[str, int]  # images, classes or originals, queries
    skipped: list[tuple[str, str]]
    images_per_second: float
    scores: dict[str, dict[str, float]]  # row (all, or an augmentation) -> metric -> value

    def as_dict(self) -> dict[str, Any]:
        """Return the figures as plain JSON-ready data."""
        skipped = [{"name": name, "reason": reason} for name, reason in self.skipped]
        return {**self.__dict__, "skipped": skipped, "images_per_second": round(self.images_per_second, 1)}

    def table(self) -> str:
        """Return the figures as an aligned text table."""
        counts = ", ".join(f"{value} {name}" for name, value in self.counts.items())
        lines = [f"{self.model}, {self.mode} ({self.folder})", f"{counts}, {len(self.skipped)} unreadable skipped"]
        lines.append(f"{self.images_per_second:.1f} images/s (decode + embed)")
        metrics = list(next(iter(self.scores.values())))
        lines.append(f"{'':<14}" + "".join(f"{m:>14}" for m in metrics))
        for row, values in self.scores.items():
            lines.append(f"{row:<14}" + "".join(_figure(values[m], 14) for m in metrics))
        return "\n".join(lines)


def _figure(value: float, width: int) -> str:
    """Format a figure, or a dash for one not measured (NaN)."""
    return f"{value:>{width}.3f}" if value == value else f"{'—':>{width}}"


def side_by_side(reports: list[Report]) -> str:
    """Return several models' figures on one data set as one table, each model a column.

    With two models the last column is the second's figure minus the first's.
    """
    first = reports[0]
    counts = ", ".join(f"{value} {name}" for name, value in first.counts.items())
    width = max(14, *(len(r.model) + 2 for r in reports))
    diff = len(reports) == 2
    lines = [f"{first.mode} ({first.folder}): {counts}, {len(first.skipped)} unreadable skipped"]
    lines.append(
        f"{'':<24}" + "".join(f"{r.model:>{width}}" for r in reports) + (f"{'difference':>12}" if diff else "")
    )
    lines.append(f"{'images/s':<24}" + "".join(f"{r.images_per_second:>{width}.1f}" for r in reports))
    # Every report's rows, in order: a row may be one model's only (its best duplicate threshold).
    rows = {row: list(values) for r in reports for row, values in r.scores.items()}
    for row, metrics in rows.items():
        for metric in metrics:
            figures = [r.scores.get(row, {}).get(metric, float("nan")) for r in reports]
            change = f"{figures[1] - figures[0]:>+12.3f}" if diff and all(f == f for f in figures) else ""
            if all(f != f for f in figures):  # not measured for this row
                continue
            lines.append(f"{row + ' ' + metric:<24}" + "".join(_figure(f, width) for f in figures) + change)
    return "\n".join(lines)


def no_images(where: str, skipped: list[tuple[str, str]]) -> InvalidInput:
    """Return the error for a folder with nothing to evaluate, naming the files that were skipped."""
    reasons = "".join(f"\n  skipped: {name}: {reason}" for name, reason in skipped)
    return InvalidInput(f"no usable images {where}{reasons}")


def evaluate_classes(embedder: Embedder, folder: Path, ks: Iterable[int], progress: Progress | None = None) -> Report:
    """Embed a folder of class sub-folders and score leave-one-out retrieval by class."""
    paths = [p for p in image_files(folder) if len(p.relative_to(folder).parts) > 1]
    skipped: list[tuple[str, str]] = []
    embedded = embed_all(embedder, file_chunks(folder, paths, skipped), progress)
    if not embedded.keys:
        where = f"in the class sub-folders of {folder} (for a flat folder: --near-duplicates)"
        raise no_images(where, skipped + embedded.skipped)
    names = [key.split("/", 1)[0] for key in embedded.keys]
    classes = {name: label for label, name in enumerate(sorted(set(names)))}
    labels = np.array([classes[name] for name in names])
    queries, scores = leave_one_out(embedded.vectors, labels, ks)
    if not queries:
        raise InvalidInput(f"no class in {folder} has two usable images to match")
    counts = {"images": len(names), "classes": len(classes), "queries": queries}
    speed = len(names) / max(embedded.seconds, 1e-9)
    return Report("classes", embedder.name, str(folder), counts, skipped + embedded.skipped, speed, {"all": scores})


def evaluate_near_duplicates(
    embedder: Embedder, folder: Path, ks: Iterable[int], max_pixels: int, progress: Progress | None = None
) -> Report:
    """Query augmented copies of every image under a folder against the originals; score recall@k."""
    skipped: list[tuple[str, str]] = []
    library = embed_all(embedder, file_chunks(folder, image_files(folder), skipped), progress)
    if not library.keys:
        raise no_images(f"under {folder}", skipped + library.skipped)
    copies = embed_all(embedder, copy_chunks(folder, library.keys, max_pixels, skipped), progress)
    targets = np.array([index for index, _ in copies.keys], dtype=np.int64)
    augs = np.array([aug for _, aug in copies.keys])
    ranks = rank_targets(copies.vectors, library.vectors, targets)
    rows = {aug: ranks[augs == aug] for aug in AUGMENTATIONS} | {"all": ranks}
    scores = {row: {f"recall@{k}": float(np.mean(r < k)) if len(r) else 0.0 for k in ks} for row, r in rows.items()}
    counts = {"originals": len(library.keys), "queries": len(targets)}
    speed = (len(library.keys) + len(targets)) / max(library.seconds + copies.seconds, 1e-9)
    skipped += library.skipped + copies.skipped
    return Report("near-duplicates", embedder.name, str(folder), counts, skipped, speed, scores)


def fingerprinted(
    chunks: Iterable[list[tuple[Any, bytes]]], max_pixels: int, prints: dict[Any, Fingerprint | None]
) -> Iterator[list[tuple[Any, bytes]]]:
    """Pass the chunks on, putting each image's fingerprint in ``prints`` (None if unreadable)."""
    for chunk in chunks:
        for key, data in chunk:
            try:
                prints[key] = fingerprint(decode(data, max_pixels, draft=4 * SIDE).image)
            except WebappError:
                prints[key] = None
        yield chunk


@dataclass
class Candidates:
    """The pairs of images at least a floor alike to the model, with their fingerprints."""

    size: int
    first: np.ndarray
    second: np.ndarray
    similarity: np.ndarray
    prints: list[tuple[Fingerprint | None, Fingerprint | None]]

    @classmethod
    def of(cls, sims: np.ndarray, prints: list[Fingerprint | None], floor: float) -> Candidates:
        first, second = np.nonzero(np.triu(sims >= floor, k=1))
        pairs = [(prints[a], prints[b]) for a, b in zip(first.tolist(), second.tolist(), strict=True)]
        return cls(len(sims), first, second, sims[first, second], pairs)

    def groups(self, threshold: float) -> np.ndarray:
        """Return a group label per image, joined as the scan joins them at ``threshold``."""
        pairs = zip(self.similarity.tolist(), self.prints, strict=True)
        keep = np.array([same_picture(float(s), a, b, threshold) for s, (a, b) in pairs], dtype=bool)
        return joined(self.size, self.first[keep], self.second[keep])


def evaluate_duplicates(
    embedder: Embedder,
    folder: Path,
    max_pixels: int,
    thresholds: Iterable[float] = THRESHOLDS,
    progress: Progress | None = None,
    kinds: Iterable[str] | None = None,
) -> Report:
    """Mix near-duplicate copies with the distinct images of a folder and score the groups per threshold.

    Every image under the folder is a distinct photo; each one at least MIN_COPY_SIDE a side gets
    a copy of each kind (DUPLICATE_COPIES, or those of ``kinds``): five, and a sixth turned a quarter
    if it is not nearly square. Smaller images (thumbnails, faces) stay as look-alikes.
    """
    table = {kind: DUPLICATE_COPIES[kind] for kind in (kinds or DUPLICATE_COPIES)}
    skipped: list[tuple[str, str]] = []
    prints: dict[Any, Fingerprint | None] = {}
    files = fingerprinted(file_chunks(folder, image_files(folder), skipped), max_pixels, prints)
    originals = embed_all(embedder, files, progress)
    if not originals.keys:
        raise no_images(f"under {folder}", skipped + originals.skipped)
    chunks = copy_chunks(folder, originals.keys, max_pixels, skipped, table=table, min_side=MIN_COPY_SIDE)
    copies = embed_all(embedder, fingerprinted(chunks, max_pixels, prints), progress)
    if not copies.keys:
        raise InvalidInput(
            f"no copy could be made of the images under {folder}: each needs {MIN_COPY_SIDE} pixels a side or more "
            "(and to be turned, not to be nearly square)"
        )
    vectors = np.concatenate([originals.vectors, copies.vectors])
    origins = np.concatenate([np.arange(len(originals.keys)), [index for index, _ in copies.keys]])
    sims = vectors @ vectors.T
    in_order = [prints.get(key) for key in originals.keys] + [prints.get(key) for key in copies.keys]
    thresholds = tuple(thresholds)
    candidates = Candidates.of(sims, in_order, min(LOW_FLOOR, FLOOR, *thresholds))  # as many pairs as a scan judges
    scores = {f"t={t:.2f}": scores_of(candidates.groups(t), origins) for t in thresholds}
    # Per kind of copy: the share of copies grouped with their original at the suggested threshold.
    best = float(suggest_threshold(scores)[2:])
    groups = candidates.groups(best)
    n = len(originals.keys)
    for aug in table:
        rows = [n + i for i, (_, a) in enumerate(copies.keys) if a == aug]
        if not rows:  # no picture of the folder has a copy of that kind (only squares: none turned)
            continue
        found = [groups[r] == groups[int(origins[r])] for r in rows]
        scores[f"{aug}@{best:.2f}"] = {
            "precision": float("nan"),
            "recall": float(np.mean(found)),
            "f1": float("nan"),
            "groups": float("nan"),
        }
    counts = {"distinct images": n, "with copies": len({i for i, _ in copies.keys}), "copies": len(copies.keys)}
    speed = (n + len(copies.keys)) / max(originals.seconds + copies.seconds, 1e-9)
    skipped += originals.skipped + copies.skipped
    return Report("duplicates", embedder.name, str(folder), counts, skipped, speed, scores)
