"""The copies an evaluation makes of each photo: what a person would call the same picture."""

from __future__ import annotations

import io
import random
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from PIL import Image, ImageEnhance

from webapp.errors import WebappError
from webapp.services.fingerprints import OBLONG
from webapp.services.imaging import decode

CHUNK = 256  # copies made and embedded at a time: bounds memory on large folders
# Originals are decoded (JPEG draft) to about this size before augmenting: the model sees 224-260
# px anyway, and full-size rotations of 20 MP photos would dominate the run.
WORK_SIDE = 1024
Transform = Callable[[Image.Image, random.Random], Image.Image | None]  # None: no such copy of this one


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


def _quarter_turn(img: Image.Image, rng: random.Random) -> Image.Image | None:
    # A nearly square picture turned keeps its shape, and the scan does not look for it turned
    # (services/fingerprints.py): the corners of a round retina are each other's quarter turns.
    if max(img.size) < OBLONG * min(img.size):
        return None
    return img.transpose(rng.choice((Image.Transpose.ROTATE_90, Image.Transpose.ROTATE_270)))


# The copies a person calls duplicates of a photo (the duplicate scan's threshold is chosen on them).
DUPLICATE_COPIES: dict[str, tuple[Transform, int]] = {
    "crop": (_trim, 90),  # 5% off each side
    "resize": (_half, 90),  # to half of each side
    "reencode": (_same, 40),  # JPEG quality 40
    "rotate": (_small_rotation, 90),  # by 3 degrees either way, corners white
    "colour": (_colour, 90),  # as AUGMENTATIONS
    "turn": (_quarter_turn, 90),  # a quarter either way (saved sideways), if not nearly square
}


def augment(
    img: Image.Image, name: str, rng: random.Random, table: dict[str, tuple[Transform, int]] | None = None
) -> bytes | None:
    """Return the named augmented copy of an RGB image, as JPEG bytes (None if it has none of that kind)."""
    transform, quality = (table or AUGMENTATIONS)[name]
    copy = transform(img, rng)
    if copy is None:
        return None
    out = io.BytesIO()
    copy.save(out, "JPEG", quality=quality)
    return out.getvalue()


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
            made = ((aug, augment(img, aug, rng, table)) for aug in table)
            chunk += [((index, aug), data) for aug, data in made if data is not None]
        yield chunk
