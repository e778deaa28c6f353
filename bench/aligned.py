"""Aligned tiles: could aligning two pictures tell pages and screenshots from their copies?

A way to part pages of text (and screenshots of one program) that the model finds as alike as
copies, tried and not taken (README, Near-duplicates in Measured). For each pair it searches the
scale (0.80 to 1.25) and shift that best match the two pictures' fine detail (phase correlation),
then compares 16-pixel tiles of both (the correlation of their detail), at ``--side`` pixels.
Prints, per set of pairs, the range of the tiles' median correlation and of the share of tiles
below 0.5, and the time a pair takes: distinct pages and screenshots (bench/documents.py), each
page and screenshot with its copy cropped by 5%, and scikit-image's photos with each kind of copy.

    .venv/bin/python bench/aligned.py [--side 256]
"""

from __future__ import annotations

import argparse
import io
import itertools
import random
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from documents import jpeg, page, screenshot  # noqa: E402
from fingerprints import evaluation_set  # noqa: E402

from webapp.evaluation_copies import DUPLICATE_COPIES, augment  # noqa: E402

SCALES = np.exp(np.linspace(np.log(0.8), np.log(1.25), 21))
TILE = 16


def grey(img: Image.Image, side: int) -> Image.Image:
    """Return the picture in grey, ``side`` pixels on its longer side."""
    g = img.convert("L")
    f = side / max(g.size)
    return g.resize((max(1, round(g.width * f)), max(1, round(g.height * f))), Image.Resampling.BOX)


def detail(img: Image.Image) -> np.ndarray:
    """Return the picture less its 7 x 7 box blur: edges and text, not light."""
    a = np.asarray(img, np.float32)
    k, r = 7, 3
    c = np.pad(a, r + 1, mode="edge").cumsum(0).cumsum(1)
    blur = (c[k:, k:] - c[:-k, k:] - c[k:, :-k] + c[:-k, :-k])[: a.shape[0], : a.shape[1]] / (k * k)
    return np.asarray(a - blur, np.float32)


def shift(a: np.ndarray, b: np.ndarray) -> tuple[int, int, float]:
    """Return the shift of ``b`` in ``a`` by phase correlation, and its peak."""
    size = (2 * max(a.shape[0], b.shape[0]), 2 * max(a.shape[1], b.shape[1]))
    spectrum = np.fft.rfft2(a, s=size) * np.conj(np.fft.rfft2(b, s=size))
    found = np.fft.irfft2(spectrum / (np.abs(spectrum) + 1e-6), s=size)
    dy, dx = (int(v) for v in np.unravel_index(np.argmax(found), found.shape))
    return (dy - size[0] if dy > size[0] // 2 else dy), (dx - size[1] if dx > size[1] // 2 else dx), float(found.max())


def tiles(a: np.ndarray, b: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """Return the correlation of each textured tile where ``a`` and ``b`` overlap (b shifted by dy, dx)."""
    y0, y1 = max(0, dy), min(a.shape[0], b.shape[0] + dy)
    x0, x1 = max(0, dx), min(a.shape[1], b.shape[1] + dx)
    ny, nx = (y1 - y0) // TILE, (x1 - x0) // TILE
    if ny < 2 or nx < 2:
        return np.zeros(0)

    def cut(m: np.ndarray) -> np.ndarray:
        m = m[: ny * TILE, : nx * TILE].reshape(ny, TILE, nx, TILE).transpose(0, 2, 1, 3).reshape(ny * nx, -1)
        return np.asarray(m - m.mean(axis=1, keepdims=True))

    ta, tb = cut(a[y0:y1, x0:x1]), cut(b[y0 - dy : y1 - dy, x0 - dx : x1 - dx])
    sa, sb = np.sqrt((ta * ta).mean(axis=1)), np.sqrt((tb * tb).mean(axis=1))
    textured = (sa > 4) | (sb > 4)
    return np.asarray(((ta * tb).mean(axis=1) / (sa * sb + 1e-6))[textured])


def agreement(first: Image.Image, second: Image.Image, side: int) -> tuple[float, float]:
    """Return the median correlation of the aligned tiles, and the share of them below 0.5."""
    ga, db = grey(first, side), detail(grey(second, side))
    best: tuple[float, int, int, np.ndarray] | None = None
    for scale in SCALES:
        scaled = ga.resize(
            (max(1, round(ga.width * scale)), max(1, round(ga.height * scale))), Image.Resampling.BILINEAR
        )
        da = detail(scaled)
        dy, dx, peak = shift(da, db)
        if best is None or peak > best[0]:
            best = (peak, dy, dx, da)
    assert best is not None
    found = tiles(best[3], db, best[1], best[2])
    return (float(np.median(found)), float((found < 0.5).mean())) if found.size else (0.0, 1.0)


def report(name: str, pairs: list[tuple[Image.Image, Image.Image]], side: int) -> None:
    start = time.perf_counter()
    found = [agreement(a, b, side) for a, b in pairs]
    each = (time.perf_counter() - start) / len(pairs) * 1000
    medians, below = [m for m, _ in found], [s for _, s in found]
    print(
        f"{name:34s} {len(pairs):3d} pairs: median correlation {min(medians):5.2f} to {max(medians):4.2f}, "
        f"tiles below 0.5 {min(below):4.2f} to {max(below):4.2f} ({each:.0f} ms a pair)"
    )


def reread(data: bytes) -> Image.Image:
    return Image.open(io.BytesIO(data)).convert("RGB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--side", type=int, default=256)
    args = parser.parse_args()
    rng = random.Random(1)
    crop = DUPLICATE_COPIES["crop"]
    for name, make in (("pages", page), ("screenshots", screenshot)):
        made = [reread(jpeg(make(rng))) for _ in range(10)]
        report(f"distinct {name}", list(itertools.combinations(made, 2)), args.side)
        copies = [reread(augment(img, "crop", rng, {"crop": crop}) or b"") for img in made]
        report(f"{name} and their 5% crops", list(zip(made, copies, strict=True)), args.side)
    with tempfile.TemporaryDirectory() as tmp:
        files = sorted(evaluation_set(Path(tmp)).rglob("*.jpg"))  # the photos and the crops of them
        photos = [img for img in (Image.open(p).convert("RGB") for p in files) if min(img.size) >= 256]
        for kind in ("crop", "resize", "reencode", "rotate", "colour"):
            copies = [reread(augment(img, kind, rng, DUPLICATE_COPIES) or b"") for img in photos]
            report(f"photos and their {kind} copies", list(zip(photos, copies, strict=True)), args.side)
        report("distinct photos", list(itertools.combinations(photos, 2)), args.side)


if __name__ == "__main__":
    main()
