"""Pages of text and screenshots of one program: does the duplicate scan's rule group them as copies?

Draws 10 pages of different words in one font and margin, and 10 screenshots of one window with
different text, and prints, for each set, the model's similarity and the layouts' bits between
every two, and how many of the 45 pairs ``same_picture`` calls one picture at the threshold. Then,
for the pages, the bits between a finer layout (the lowest 16 x 16 frequencies of a 64 x 64 grey
copy) of every two, and of each page and its copies (JPEG quality 40, halved, recoloured, 5%
cropped): what a finer fingerprint would part, and what it would lose.

    .venv/bin/python bench/documents.py [--model efficientnet-lite0-int8] [--threshold 0.96]
"""

from __future__ import annotations

import argparse
import io
import itertools
import random
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance, ImageFont

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from webapp.building import embedder  # noqa: E402
from webapp.config import Defaults  # noqa: E402
from webapp.services.fingerprints import fingerprint, layout_apart, same_picture  # noqa: E402

WORDS = "the of and to in is that for it as with was on be by at this from or an are which not have has but".split()


def font() -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    try:
        return ImageFont.truetype("DejaVuSans.ttf", 18)
    except OSError:
        return ImageFont.load_default()


def line(rng: random.Random, least: int, most: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(least, most)))


def page(rng: random.Random) -> Image.Image:
    img = Image.new("RGB", (850, 1100), "white")
    draw, y = ImageDraw.Draw(img), 80
    while y < 1000:
        draw.text((80, y), line(rng, 8, 12), fill="black", font=font())
        y += 28 + (28 if rng.random() < 0.1 else 0)
    return img


def screenshot(rng: random.Random) -> Image.Image:
    img = Image.new("RGB", (1280, 800), (245, 245, 245))
    draw = ImageDraw.Draw(img)
    draw.rectangle((0, 0, 1280, 60), fill=(40, 90, 160))
    draw.rectangle((0, 60, 240, 800), fill=(230, 230, 235))
    for row in range(14):
        draw.text((280, 100 + 45 * row), line(rng, 5, 14), fill="black", font=font())
    return img


def jpeg(img: Image.Image, quality: int = 90) -> bytes:
    out = io.BytesIO()
    img.save(out, "JPEG", quality=quality)
    return out.getvalue()


def grouped(name: str, images: list[Image.Image], model: str, threshold: float) -> None:
    settings = {k: getattr(Defaults, k) for k in dir(Defaults) if k.isupper()}
    settings.update(MODEL_DIR=str(ROOT / "var" / "models"), SEARCH_PROCESSES=0)
    pipeline = embedder(settings, model)
    data = [jpeg(img) for img in images]
    vectors = [pipeline.embed(payload)[1] for payload in data]
    prints = [fingerprint(Image.open(io.BytesIO(payload))) for payload in data]
    sims, apart, same = [], [], 0
    for a, b in itertools.combinations(range(len(images)), 2):
        sims.append(float(np.dot(vectors[a], vectors[b])))
        apart.append(layout_apart(prints[a], prints[b]))
        same += same_picture(sims[-1], prints[a], prints[b], threshold)
    print(
        f"{name} ({model}): {min(sims):.3f} to {max(sims):.3f} alike, {min(apart)} to {max(apart)} bits apart; "
        f"{same} of {len(sims)} pairs one picture at {threshold}"
    )


def finer(img: Image.Image, side: int = 64, kept: int = 16) -> np.ndarray:
    """Return the signs of the lowest ``kept`` x ``kept`` frequencies of a ``side`` x ``side`` grey copy."""
    x, k = np.arange(side), np.arange(kept)[:, None]
    dct = np.cos(np.pi * (2 * x + 1) * k / (2 * side)) * np.sqrt(2 / side)
    grey = np.asarray(img.convert("L").resize((side, side), Image.Resampling.BOX), np.float64)
    values = (dct @ grey @ dct.T).ravel()[1:]
    return values > np.median(values)


def finer_bits(pages: list[Image.Image]) -> None:
    def reread(img: Image.Image, quality: int = 90) -> Image.Image:
        return Image.open(io.BytesIO(jpeg(img, quality)))

    copies: dict[str, Callable[[Image.Image], Image.Image]] = {
        "JPEG 40": lambda p: reread(p, 40),
        "halved": lambda p: reread(p.resize((p.width // 2, p.height // 2))),
        "recoloured": lambda p: reread(ImageEnhance.Brightness(p).enhance(0.8)),
        "5% cropped": lambda p: reread(p.crop((42, 55, p.width - 42, p.height - 55))),
    }
    prints = [finer(reread(p)) for p in pages]
    distinct = [int(np.sum(a != b)) for a, b in itertools.combinations(prints, 2)]
    print(f"finer layout (255 bits): distinct pages {min(distinct)} to {max(distinct)} apart; copies: ", end="")
    spans = []
    for kind, make in copies.items():
        bits = [int(np.sum(finer(make(p)) != f)) for p, f in zip(pages, prints, strict=True)]
        spans.append(f"{kind} {min(bits)} to {max(bits)}")
    print(", ".join(spans))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", action="append", help="default: efficientnet-lite0-int8 (repeat for more)")
    parser.add_argument("--threshold", type=float, default=Defaults.DUPLICATE_THRESHOLD)
    args = parser.parse_args()
    rng = random.Random(1)
    pages, screens = [page(rng) for _ in range(10)], [screenshot(rng) for _ in range(10)]
    for model in args.model or ["efficientnet-lite0-int8"]:
        grouped("pages", pages, model, args.threshold)
        grouped("screenshots", screens, model, args.threshold)
    finer_bits(pages)


if __name__ == "__main__":
    main()
