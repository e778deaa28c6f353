"""What a wide-gamut photo's colour profile changes: its thumbnail as a viewer shows it, and the model.

scikit-image ships ``rocket.jpg`` tagged Adobe RGB (1998). A colour-managed viewer (a browser)
converts an image from its profile to the screen's, and takes an image without one for sRGB. Here
littleCMS does the viewer's part, on 20 px blocks (the thumbnail and the photo differ in size):

- how far the photo's values are from its colours in sRGB;
- how far its thumbnail's colours are from the photo's, with the profile the app now gives it
  and without one (before 2026-12-03);
- the cosine of the model's embedding of the photo to that of an sRGB copy of it, and to that of
  the same values saved again, and what a conversion of the photo to sRGB costs.

The browser test ``tests/e2e/test_search.py`` checks the same thing in Chromium.

    .venv/bin/python bench/colours.py [--model efficientnet-lite0-int8]
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageCms
from skimage import data as skdata

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from webapp.config import Defaults  # noqa: E402
from webapp.services.embedding import Embedder  # noqa: E402
from webapp.services.imaging import decode, thumbnail  # noqa: E402

PHOTO = Path(skdata.__file__).parent / "rocket.jpg"
SRGB = ImageCms.createProfile("sRGB")


def in_srgb(img: Image.Image, profile: bytes | None) -> Image.Image:
    """Return an RGB image's colours in sRGB, as a viewer converts it (unchanged without a profile)."""
    if not profile:
        return img
    converted = ImageCms.profileToProfile(img, ImageCms.ImageCmsProfile(io.BytesIO(profile)), SRGB)
    assert converted is not None  # None only when converted in place
    return converted


def shown(data: bytes, blocks: tuple[int, int]) -> np.ndarray:
    """Return a JPEG as a viewer shows it, averaged over ``blocks`` (columns, rows)."""
    img = Image.open(io.BytesIO(data))
    converted = in_srgb(img.convert("RGB"), img.info.get("icc_profile"))
    return np.asarray(converted.resize(blocks, Image.Resampling.BOX), dtype=np.float64)


def off(a: np.ndarray, b: np.ndarray) -> str:
    """Describe how far two images are apart: their worst channel's difference at p95 and at most."""
    worst = np.abs(a - b).max(axis=2)
    return f"p95 {np.percentile(worst, 95):5.1f}, max {worst.max():5.1f} levels"


def jpeg(img: Image.Image) -> bytes:
    """Save an image as a JPEG at quality 95, with no profile."""
    out = io.BytesIO()
    img.save(out, "JPEG", quality=95)
    return out.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="efficientnet-lite0-int8", help="a model under var/models")
    args = parser.parse_args()

    original = PHOTO.read_bytes()
    img = Image.open(io.BytesIO(original))
    img.load()
    profile = img.info["icc_profile"]
    name = ImageCms.getProfileDescription(ImageCms.ImageCmsProfile(io.BytesIO(profile))).strip()
    print(f"{PHOTO.name}: {img.width} x {img.height}, tagged {name} ({len(profile)} bytes)")
    raw = np.asarray(img, dtype=np.float64)
    managed = np.asarray(in_srgb(img, profile), dtype=np.float64)
    print(f"its values against its colours in sRGB, by pixel:      {off(raw, managed)}")

    blocks = (img.width // 20, img.height // 20)
    decoded = decode(original, Defaults.MAX_IMAGE_PIXELS, draft=Defaults.THUMBNAIL_SIZE)
    made = thumbnail(decoded.image, Defaults.THUMBNAIL_SIZE)
    decoded.image.info.pop("icc_profile", None)
    before = thumbnail(decoded.image, Defaults.THUMBNAIL_SIZE)
    photo = shown(original, blocks)
    print("its thumbnail against it, in 20 px blocks, as shown:")
    print(f"  with the photo's profile (the app's):                {off(shown(made, blocks), photo)}")
    print(f"  without a profile (before 2026-12-03):               {off(shown(before, blocks), photo)}")

    timings = []
    for _ in range(20):
        started = time.perf_counter()
        in_srgb(img, profile)
        timings.append(time.perf_counter() - started)
    median = statistics.median(timings) * 1000
    print(f"converting the photo to sRGB with littleCMS:           {median:.1f} ms (median of 20)")

    embedder = Embedder(ROOT / "var" / "models", args.model)
    try:
        own = embedder.embed(original)[1]
        copy = embedder.embed(jpeg(in_srgb(img, profile)))[1]
        again = embedder.embed(jpeg(img))[1]
    finally:
        embedder.close()
    print(f"{args.model}: cosine of the photo's embedding to")
    print(f"  an sRGB copy of it (converted, saved at quality 95): {float(own @ copy):.4f}")
    print(f"  its values saved again at quality 95, no profile:    {float(own @ again):.4f}")
    print(f"  (near-duplicates from {Defaults.DUPLICATE_THRESHOLD})")


if __name__ == "__main__":
    main()
