"""Fingerprints (services/fingerprints.py): how far apart copies and distinct images are, and what one costs.

On a folder as `flask evaluate --duplicates` takes it (its images, and five or six copies of each
one at least 256 px a side), prints the bits between the fingerprints of copies of one photo and of
distinct images, overall and in the two bands the duplicate scan's rule uses (the model's
similarity at least the threshold, and from FLOOR to it), the mirror and the quarter turns included
where the rule takes them, and the turned layouts of pictures of turned shapes below FLOOR. Then
times a fingerprint from the pixels an ingestion has at hand (a JPEG's draft, another format's
thumbnail), and from each file a scan may read for an image of an earlier release (a thumbnail, a
large JPEG original, a PNG).

    .venv/bin/python bench/fingerprints.py [FOLDER] [--model efficientnet-lite0-int8]

Without a folder, it runs on the set the README quotes: scikit-image's photos and crops of them
(scripts/sample_images.py's photos/ and views/).
"""

from __future__ import annotations

import argparse
import io
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from webapp.building import embedder  # noqa: E402
from webapp.config import Defaults  # noqa: E402
from webapp.evaluation import MIN_COPY_SIDE, embed_all, file_chunks, fingerprinted, image_files  # noqa: E402
from webapp.evaluation_copies import DUPLICATE_COPIES, copy_chunks  # noqa: E402
from webapp.services.fingerprints import (  # noqa: E402
    CLOSE,
    FAR,
    FLOOR,
    LOW_FLOOR,
    VERY_CLOSE,
    Fingerprint,
    fingerprint,
    layout_apart,
    turn_apart,
    turned_shapes,
)
from webapp.services.imaging import decode, shrunk, thumbnail  # noqa: E402


def spread(values: np.ndarray) -> str:
    if not len(values):
        return "none"
    return f"{values.min()} to {values.max()}, median {np.median(values):.0f} ({len(values)} pairs)"


def distances(folder: Path, model: str, threshold: float) -> None:
    """Print the bits between copies and between distinct images, by band of the model's similarity."""
    settings = {k: getattr(Defaults, k) for k in dir(Defaults) if k.isupper()}
    settings.update(MODEL_DIR=str(ROOT / "var" / "models"), SEARCH_PROCESSES=0)
    pipeline, max_pixels = embedder(settings, model), settings["MAX_IMAGE_PIXELS"]
    skipped: list[tuple[str, str]] = []
    prints: dict[Any, Fingerprint | None] = {}
    files = fingerprinted(file_chunks(folder, image_files(folder), skipped), max_pixels, prints)
    originals = embed_all(pipeline, files, None)
    chunks = copy_chunks(folder, originals.keys, max_pixels, skipped, table=DUPLICATE_COPIES, min_side=MIN_COPY_SIDE)
    copies = embed_all(pipeline, fingerprinted(chunks, max_pixels, prints), None)
    keys = list(originals.keys) + list(copies.keys)
    made = [prints[k] for k in keys]
    if any(p is None for p in made):
        raise SystemExit("an image could not be fingerprinted")
    vectors = np.concatenate([originals.vectors, copies.vectors])
    origins = np.concatenate([np.arange(len(originals.keys)), [index for index, _ in copies.keys]])
    first, second = np.triu_indices(len(keys), 1)
    similarity = np.einsum("ij,ij->i", vectors[first], vectors[second])
    pairs = list(zip(first.tolist(), second.tolist(), strict=True))
    known = [p for p in made if p is not None]
    direct = np.array([layout_apart(known[a], known[b]) for a, b in pairs])  # a quarter turn included
    plain = np.array([(known[a].bits ^ known[b].bits).bit_count() for a, b in pairs])
    mirrored = np.array(
        [
            min((known[a].bits ^ known[b].mirrored).bit_count(), (known[a].mirrored ^ known[b].bits).bit_count())
            for a, b in pairs
        ]
    )
    turns = np.minimum(direct, [turn_apart(known[a], known[b]) for a, b in pairs])
    # As the rule takes them at the threshold: turned within CLOSE whatever the shapes, or either mirrored within FAR.
    either = np.where(turns <= CLOSE, turns, np.minimum(plain, mirrored))
    centres = np.array([(known[a].centre ^ known[b].centre).bit_count() for a, b in pairs])
    turned = np.array([turned_shapes(known[a].shape, known[b].shape) for a, b in pairs])
    copy = origins[first] == origins[second]
    high, band = similarity >= threshold, (similarity >= FLOOR) & (similarity < threshold)
    print(f"{model}: {len(originals.keys)} images, {len(copies.keys)} copies; bits apart:")
    print(f"  all pairs:  copies {spread(direct[copy])}; distinct {spread(direct[~copy])}")
    kept = either <= FAR  # were the model to find them as alike as the threshold
    print(f"    the veto (FAR {FAR}) lets {np.mean(kept[~copy]):.1%} of the distinct pairs through, ", end="")
    print(f"and {np.mean(kept[copy]):.1%} of the copies'")
    print(f"  at least {threshold} alike (FAR {FAR}, either mirrored; or turned, CLOSE):")
    print(f"    copies {spread(either[copy & high])}, {np.sum(either[copy & high] > FAR)} beyond FAR")
    print(f"    distinct {spread(either[~copy & high])}, {np.sum(either[~copy & high] <= FAR)} within FAR")
    print(f"  {FLOOR} to {threshold} alike (CLOSE {CLOSE}, not mirrored; as they are, turned or centres):")
    print(f"    copies {spread(direct[copy & band])}, {np.sum(direct[copy & band] <= CLOSE)} within CLOSE")
    print(f"    distinct {spread(direct[~copy & band])}; mirrored {spread(np.minimum(direct, mirrored)[~copy & band])}")
    print(
        f"    by the centres alone: copies {np.sum(centres[copy & band] <= CLOSE)} within CLOSE, as they are ", end=""
    )
    print(f"{np.sum(plain[copy & band] <= CLOSE)}; distinct {spread(centres[~copy & band])}")
    print(f"  pairs of turned shapes, at least {FLOOR} alike (a turned layout included):")
    alike = similarity >= FLOOR
    print(f"    copies {spread(direct[copy & turned & alike])}; as they are {spread(plain[copy & turned & alike])}")
    print(f"    distinct {spread(direct[~copy & turned & alike])}")
    below = (similarity >= LOW_FLOOR) & ~alike
    print(f"  pairs of turned shapes, {LOW_FLOOR} to {FLOOR} alike, turned (any similarity: all):")
    within = np.sum(turns[copy & turned & below] <= VERY_CLOSE)
    print(f"    copies {spread(turns[copy & turned & below])}, {within} within")
    print(f"    distinct {spread(turns[~copy & turned & below])}; all {spread(turns[~copy & turned])}")
    close = np.minimum(np.minimum(plain, centres), np.where(turned, turns, 64))  # as very_close takes them
    print(f"  all pairs, {LOW_FLOOR} to {FLOOR} alike: as they are, centres, or turned (VERY_CLOSE {VERY_CLOSE}; any")
    print("  similarity: all):")
    print(f"    copies {spread(close[copy & below])}, {np.sum(close[copy & below] <= VERY_CLOSE)} within")
    print(f"    distinct {spread(close[~copy & below])}; all {spread(close[~copy])}")


def timed(function: Any, repeats: int) -> float:
    """Return the median ms of ``repeats`` calls."""
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples)


def costs(repeats: int) -> None:
    """Print what a fingerprint costs from decoded pixels, and from the files a scan may read."""
    from skimage import data

    photo = Image.fromarray(data.astronaut())

    def encoded(img: Image.Image, fmt: str, **options: Any) -> bytes:
        out = io.BytesIO()
        img.save(out, fmt, **options)
        return out.getvalue()

    big = photo.resize((4000, 3000), Image.Resampling.BICUBIC)
    large_jpeg = encoded(big, "JPEG", quality=90)
    files = {
        "a 320 px thumbnail": thumbnail(decode(large_jpeg, 64_000_000, draft=320).image, 320),
        "a 12 MP JPEG original": large_jpeg,
        "a 3 MP PNG original": encoded(big.resize((2000, 1500)), "PNG"),
    }
    decoded = decode(large_jpeg, 64_000_000, draft=224).image  # what ingestion has at hand
    whole = decode(encoded(big, "PNG"), 64_000_000, draft=224).image  # another format decodes whole
    small = shrunk(whole, 320)  # ...and its thumbnail is made at once
    print(f"one fingerprint, median of {repeats}:")
    print(f"  from a JPEG's draft decoded for the model ({decoded.width} x {decoded.height}): ", end="")
    print(f"{timed(lambda: fingerprint(decoded), repeats):.2f} ms")
    print(f"  from a PNG's thumbnail pixels ({small.width} x {small.height}): ", end="")
    print(f"{timed(lambda: fingerprint(small), repeats):.2f} ms; ", end="")
    print(f"from the whole PNG ({whole.width} x {whole.height}): {timed(lambda: fingerprint(whole), 20):.2f} ms")
    for name, payload in files.items():
        ms = timed(lambda data=payload: fingerprint(decode(data, 64_000_000, draft=128).image), repeats)
        print(f"  from {name} ({len(payload) // 1024} KiB, decoded and fingerprinted): {ms:.2f} ms")


def evaluation_set(tmp: Path) -> Path:
    """Return the set the README quotes, made under ``tmp``: scikit-image's photos and crops of them
    (scripts/sample_images.py's photos/ and views/)."""
    subprocess.run([sys.executable, str(ROOT / "scripts" / "sample_images.py"), str(tmp / "all")], check=True)
    for part in ("photos", "views"):
        shutil.copytree(tmp / "all" / part, tmp / "set" / part)
    return tmp / "set"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, nargs="?", help="default: scikit-image's photos and crops of them")
    parser.add_argument("--model", default="efficientnet-lite0-int8")
    parser.add_argument("--threshold", type=float, default=Defaults.DUPLICATE_THRESHOLD)
    parser.add_argument("--repeats", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        distances(args.folder or evaluation_set(Path(tmp)), args.model, args.threshold)
    costs(args.repeats)


if __name__ == "__main__":
    main()
