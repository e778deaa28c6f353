"""Retrieval quality of an embedding model, by exact cosine search over numpy (no Milvus, no Flask).

Class mode: in a folder of class sub-folders, every image is a query against all the others
(leave-one-out). Near-duplicate mode: augmented copies of every image are queries against the
library of originals. Duplicates mode: copies are mixed with the originals and grouped at each
similarity threshold, as the duplicate scan groups them; precision and recall of those groups
choose the threshold. Milvus is left out on purpose: this measures the model itself.
"""

from __future__ import annotations

import io
import random
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageEnhance

from webapp.errors import InvalidInput, WebappError
from webapp.services.embedding import Embedder
from webapp.services.imaging import decode
from webapp.services.sources import is_candidate

CHUNK = 256  # images read and embedded at a time: bounds memory on large folders
BLOCK = 256  # queries scored at a time: bounds the similarity matrix and its sort
# Originals are decoded (JPEG draft) to about this size before augmenting: the model sees 224-260
# px anyway, and full-size rotations of 20 MP photos would dominate the run.
WORK_SIDE = 1024
Progress = Callable[[int], None]
Transform = Callable[[Image.Image, random.Random], Image.Image]


def _crop(img: Image.Image, rng: random.Random) -> Image.Image:
    w, h = img.size
    return img.crop((round(w * 0.1), round(h * 0.1), round(w * 0.9), round(h * 0.9)))


def _resize(img: Image.Image, rng: random.Random) -> Image.Image:
    size = (max(1, round(img.width * 0.6)), max(1, round(img.height * 0.6)))
    return img.resize(size, Image.Resampling.BILINEAR)


def _rotate(img: Image.Image, rng: random.Random) -> Image.Image:
    return img.rotate(rng.choice((-10, 10)), Image.Resampling.BICUBIC, expand=True, fillcolor="white")


def _colour(img: Image.Image, rng: random.Random) -> Image.Image:
    img = ImageEnhance.Color(img).enhance(rng.choice((0.5, 1.5)))
    return ImageEnhance.Brightness(img).enhance(rng.choice((0.8, 1.2)))


def _same(img: Image.Image, rng: random.Random) -> Image.Image:
    return img


# name -> (transform, JPEG quality the copy is saved at): 95 keeps the others free of artefacts.
AUGMENTATIONS: dict[str, tuple[Transform, int]] = {
    "crop": (_crop, 95),  # keep the centred 80% of each side
    "resize": (_resize, 95),  # to 60% of each side
    "rotate": (_rotate, 95),  # by 10 degrees either way, corners filled with white
    "colour": (_colour, 95),  # saturation x0.5 or x1.5, brightness x0.8 or x1.2
    "jpeg": (_same, 50),
}


def _small_rotation(img: Image.Image, rng: random.Random) -> Image.Image:
    return img.rotate(rng.choice((-3, 3)), Image.Resampling.BICUBIC, expand=True, fillcolor="white")


def _half(img: Image.Image, rng: random.Random) -> Image.Image:
    return img.resize((max(1, img.width // 2), max(1, img.height // 2)), Image.Resampling.BILINEAR)


def _trim(img: Image.Image, rng: random.Random) -> Image.Image:
    w, h = img.size
    return img.crop((round(w * 0.05), round(h * 0.05), round(w * 0.95), round(h * 0.95)))


# The copies a person calls duplicates of a photo (the duplicate scan's threshold is chosen on them).
DUPLICATE_COPIES: dict[str, tuple[Transform, int]] = {
    "crop": (_trim, 90),  # 5% off each side
    "resize": (_half, 90),  # to half of each side
    "reencode": (_same, 40),  # JPEG quality 40
    "rotate": (_small_rotation, 90),  # by 3 degrees either way, corners white
    "colour": (_colour, 90),  # as AUGMENTATIONS
}
MIN_COPY_SIDE = 256  # smaller images (crops, thumbnails) serve only as distinct look-alikes
THRESHOLDS = tuple(round(0.80 + 0.01 * i, 2) for i in range(20))  # 0.80 ... 0.99


def augment(
    img: Image.Image, name: str, rng: random.Random, table: dict[str, tuple[Transform, int]] | None = None
) -> bytes:
    """Return the named augmented copy of an RGB image, as JPEG bytes."""
    transform, quality = (table or AUGMENTATIONS)[name]
    out = io.BytesIO()
    transform(img, rng).save(out, "JPEG", quality=quality)
    return out.getvalue()


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


def ranked_relevance(sims: np.ndarray, query_labels: np.ndarray, gallery_labels: np.ndarray) -> np.ndarray:
    """Sort each query's gallery by falling similarity; tell which results share the query's label."""
    order = np.argsort(-sims, axis=1, kind="stable")
    return np.asarray(gallery_labels[order] == query_labels[:, None])


def precision_at(relevant: np.ndarray, k: int) -> np.ndarray:
    """Return each query's share of relevant results among its first k."""
    return np.asarray(relevant[:, :k].sum(axis=1) / k)


def hit_at(relevant: np.ndarray, k: int) -> np.ndarray:
    """Return, per query, whether a relevant result is among its first k (recall@k)."""
    return np.asarray(relevant[:, :k].any(axis=1))


def average_precision(relevant: np.ndarray) -> np.ndarray:
    """Return each query's average precision over its whole ranking (0 if nothing is relevant)."""
    precision = np.cumsum(relevant, axis=1) / np.arange(1, relevant.shape[1] + 1)
    total = relevant.sum(axis=1)
    return np.asarray((precision * relevant).sum(axis=1) / np.maximum(total, 1))


def leave_one_out(vectors: np.ndarray, labels: np.ndarray, ks: Iterable[int]) -> tuple[int, dict[str, float]]:
    """Query with every image whose class has another one, against all the others; average the scores."""
    queries = np.flatnonzero(np.bincount(labels)[labels] > 1)
    sums: dict[str, float] = defaultdict(float)
    for start in range(0, len(queries), BLOCK):
        rows = queries[start : start + BLOCK]
        sims = vectors[rows] @ vectors.T
        sims[np.arange(len(rows)), rows] = -np.inf  # the query itself sorts last, and is cut off
        relevant = ranked_relevance(sims, labels[rows], labels)[:, :-1]
        sums["precision@1"] += float(precision_at(relevant, 1).sum())
        sums["precision@10"] += float(precision_at(relevant, 10).sum())
        sums["mAP"] += float(average_precision(relevant).sum())
        for k in ks:
            sums[f"recall@{k}"] += float(hit_at(relevant, k).sum())
    return len(queries), {name: total / max(len(queries), 1) for name, total in sums.items()}


def target_ranks(sims: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Return, per query, how many gallery items score above its target (0: the target comes first)."""
    scores = sims[np.arange(len(targets)), targets]
    return np.asarray((sims > scores[:, None]).sum(axis=1))


def rank_targets(queries: np.ndarray, gallery: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Return where each query's target ranks in the gallery by cosine similarity, a block at a time."""
    ranks = np.zeros(len(targets), np.int64)
    for start in range(0, len(targets), BLOCK):
        end = start + BLOCK
        ranks[start:end] = target_ranks(queries[start:end] @ gallery.T, targets[start:end])
    return ranks


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
    for row, values in first.scores.items():
        for metric in values:
            figures = [r.scores[row][metric] for r in reports]
            change = f"{figures[1] - figures[0]:>+12.3f}" if diff else ""
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


def copy_chunks(
    root: Path,
    names: list[str],
    max_pixels: int,
    skipped: list[tuple[str, str]],
    seed: int = 0,
    table: dict[str, tuple[Transform, int]] | None = None,
    min_side: int = 0,
) -> Iterator[list[tuple[Any, bytes]]]:
    """Make every augmented copy of each original, in chunks of ((original index, augmentation), bytes).

    Originals smaller than ``min_side`` on a side get no copies.
    """
    table = table or AUGMENTATIONS
    per_chunk = max(1, CHUNK // len(table))
    for start in range(0, len(names), per_chunk):
        chunk = []
        for index, name in enumerate(names[start : start + per_chunk], start):
            try:
                img = decode((root / name).read_bytes(), max_pixels, draft=WORK_SIDE).image
            except (OSError, WebappError) as exc:
                skipped.append((name, f"cannot make copies ({exc})"))
                continue
            if min(img.size) < min_side:
                continue
            rng = random.Random(f"{seed}:{name}")  # the same copies on every run
            chunk += [((index, aug), augment(img, aug, rng, table)) for aug in table]
        yield chunk


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


def components(sims: np.ndarray, threshold: float) -> np.ndarray:
    """Return a group label per image: images joined by any chain of pairs at least ``threshold`` alike."""
    n = len(sims)
    parent = np.arange(n)

    def root(a: int) -> int:
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = int(parent[a])
        return a

    for a, b in zip(*np.nonzero(np.triu(sims >= threshold, k=1)), strict=True):
        ra, rb = root(int(a)), root(int(b))
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    return np.array([root(i) for i in range(n)])


def _pairs(labels: np.ndarray) -> int:
    counts = np.unique(labels, return_counts=True)[1]
    return int(np.sum(counts * (counts - 1) // 2))


def group_scores(sims: np.ndarray, origins: np.ndarray, threshold: float) -> dict[str, float]:
    """Score the groups formed at ``threshold`` against the true ones, over pairs of images.

    precision: of the pairs put in one group, the share that are copies of one photo; recall: of
    the pairs of copies of one photo, the share put in one group.
    """
    groups = components(sims, threshold)
    predicted, true = _pairs(groups), _pairs(origins)
    both = _pairs(groups * (int(origins.max()) + 1) + origins)  # pairs sharing a group and an origin
    precision = both / predicted if predicted else 1.0
    recall = both / true if true else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    sizes = np.unique(groups, return_counts=True)[1]
    return {"precision": precision, "recall": recall, "f1": f1, "groups": float(np.sum(sizes > 1))}


def suggest_threshold(scores: dict[str, dict[str, float]]) -> str:
    """Return the row of the threshold whose groups score the best F1 (the lower one on a tie)."""
    rows = sorted(row for row in scores if row.startswith("t="))
    return max(rows, key=lambda row: (round(scores[row]["f1"], 6), -float(row[2:])))


def most_precise(scores: dict[str, dict[str, float]], min_precision: float = 0.99) -> str | None:
    """Return the row of the lowest threshold whose groups are at least ``min_precision`` precise."""
    rows = sorted(row for row in scores if row.startswith("t=") and scores[row]["precision"] >= min_precision)
    return rows[0] if rows else None


def evaluate_duplicates(
    embedder: Embedder,
    folder: Path,
    max_pixels: int,
    thresholds: Iterable[float] = THRESHOLDS,
    progress: Progress | None = None,
) -> Report:
    """Mix near-duplicate copies with the distinct images of a folder and score the groups per threshold.

    Every image under the folder is a distinct photo; each one at least MIN_COPY_SIDE a side gets
    five copies (DUPLICATE_COPIES). Smaller images (thumbnails, faces) stay as look-alikes.
    """
    skipped: list[tuple[str, str]] = []
    originals = embed_all(embedder, file_chunks(folder, image_files(folder), skipped), progress)
    if not originals.keys:
        raise no_images(f"under {folder}", skipped + originals.skipped)
    chunks = copy_chunks(folder, originals.keys, max_pixels, skipped, table=DUPLICATE_COPIES, min_side=MIN_COPY_SIDE)
    copies = embed_all(embedder, chunks, progress)
    if not copies.keys:
        raise InvalidInput(f"no image under {folder} is {MIN_COPY_SIDE} pixels a side or more, to make copies of")
    vectors = np.concatenate([originals.vectors, copies.vectors])
    origins = np.concatenate([np.arange(len(originals.keys)), [index for index, _ in copies.keys]])
    sims = vectors @ vectors.T
    scores = {f"t={t:.2f}": group_scores(sims, origins, t) for t in thresholds}
    # Per kind of copy: the share of copies grouped with their original at the suggested threshold.
    best = float(suggest_threshold(scores)[2:])
    groups = components(sims, best)
    n = len(originals.keys)
    for aug in DUPLICATE_COPIES:
        rows = [n + i for i, (_, a) in enumerate(copies.keys) if a == aug]
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
