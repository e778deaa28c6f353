"""What a wide-gamut photo's colour profile changes: its thumbnail as a viewer shows it, and the model.

scikit-image ships ``rocket.jpg`` tagged Adobe RGB (1998). A colour-managed viewer (a browser)
converts an image from its profile to the screen's, and takes an image without one for sRGB. Here
littleCMS does the viewer's part, on 20 px blocks (the thumbnail and the photo differ in size):

- how far the photo's values are from its colours in sRGB;
- how far its thumbnail's colours are from the photo's, with the profile the app now gives it
  and without one (before 2026-12-03);
- the cosine of the model's embedding of the photo to that of an sRGB copy of it, and to that of
  the same values saved again, and what a conversion of the photo to sRGB costs;
- a print file (CMYK, tagged with Ghostscript's SWOP profile from Debian's libgs-common): its
  colours read through its profile and by Pillow's formula (before 2026-12-03), what each costs,
  and the cosine of the photo's embedding to the print file's, read each way.

The browser test ``tests/e2e/test_search.py`` checks the same thing in Chromium.

    .venv/bin/python bench/colours.py [--model efficientnet-lite0-int8]
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image, ImageCms
from skimage import data as skdata

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from webapp.config import Defaults  # noqa: E402
from webapp.services.embedding import Embedder  # noqa: E402
from webapp.services.imaging import _to_rgb, decode, thumbnail  # noqa: E402

PHOTO = Path(skdata.__file__).parent / "rocket.jpg"
SWOP = Path("/usr/share/color/icc/ghostscript/default_cmyk.icc")  # Debian's libgs-common
LIMIT = Defaults.MAX_IMAGE_PIXELS
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

    cmyk_file = cmyk_part()

    embedder = Embedder(ROOT / "var" / "models", args.model)
    try:
        own = embedder.embed(original)[1]
        copy = embedder.embed(jpeg(in_srgb(img, profile)))[1]
        again = embedder.embed(jpeg(img))[1]
        chelsea = embedder.embed(jpeg(Image.fromarray(skdata.chelsea())))[1]
        through_profile = embedder.embed(cmyk_file)[1]
        by_formula = embedder.embed(jpeg(Image.open(io.BytesIO(cmyk_file)).convert("RGB")))[1]
    finally:
        embedder.close()
    print(f"{args.model}: cosine of the photo's embedding to")
    print(f"  an sRGB copy of it (converted, saved at quality 95): {float(own @ copy):.4f}")
    print(f"  its values saved again at quality 95, no profile:    {float(own @ again):.4f}")
    print(f"  (near-duplicates from {Defaults.DUPLICATE_THRESHOLD})")
    print(f"{args.model}: cosine of chelsea's embedding to its print copy's")
    print(f"  read through its profile (the app's):                {float(chelsea @ through_profile):.4f}")
    print(f"  by Pillow's formula (before 2026-12-03):             {float(chelsea @ by_formula):.4f}")


def cmyk_part() -> bytes:
    """Print what a CMYK print file's profile changes, and what it costs; return the print file."""
    if not SWOP.exists():
        sys.exit(f"no CMYK profile at {SWOP}: run `make install-servers` (Debian's libgs-common)")
    photo = Image.fromarray(skdata.chelsea())
    swop = ImageCms.getOpenProfile(str(SWOP))
    cmyk = ImageCms.profileToProfile(photo, SRGB, swop, outputMode="CMYK")
    assert cmyk is not None
    out = io.BytesIO()
    cmyk.save(out, "JPEG", quality=95, icc_profile=SWOP.read_bytes())
    data = out.getvalue()
    grid = (photo.width // 20, photo.height // 20)
    wanted = np.asarray(photo.resize(grid, Image.Resampling.BOX), dtype=np.float64)
    app = decode(data, Defaults.MAX_IMAGE_PIXELS).image
    formula = Image.open(io.BytesIO(data)).convert("RGB")
    print(f"chelsea as a print file (CMYK JPEG, {ImageCms.getProfileDescription(swop).strip()}), against the photo:")
    print(f"  read through its profile (the app's):                {off(blocks_of(app, grid), wanted)}")
    print(f"  by Pillow's formula (before 2026-12-03):             {off(blocks_of(formula, grid), wanted)}")
    big = cmyk.resize((4000, 3000))
    tagged, untagged = io.BytesIO(), io.BytesIO()
    big.save(tagged, "JPEG", quality=90, icc_profile=SWOP.read_bytes())
    big.save(untagged, "JPEG", quality=90)
    decoded_big = Image.open(io.BytesIO(tagged.getvalue()))
    decoded_big.load()
    decode(tagged.getvalue(), Defaults.MAX_IMAGE_PIXELS)  # the transform is built once per profile
    cases: list[tuple[str, Callable[[], object]]] = [
        ("whole, through its profile", lambda: _to_rgb(decoded_big, SWOP.read_bytes())),
        ("whole, by Pillow's formula", lambda: decoded_big.convert("RGB")),
        ("decoded for the model (draft), through its profile", lambda: decode(tagged.getvalue(), LIMIT, draft=224)),
        ("decoded for the model (draft), untagged: the formula", lambda: decode(untagged.getvalue(), LIMIT, draft=224)),
    ]
    print("a 12 MP CMYK JPEG to RGB (median of 5):")
    for label, convert in cases:
        timings = []
        for _ in range(5):
            started = time.perf_counter()
            convert()
            timings.append(time.perf_counter() - started)
        print(f"  {label + ':':53}{statistics.median(timings) * 1000:5.0f} ms")
    return data


def blocks_of(img: Image.Image, grid: tuple[int, int]) -> np.ndarray:
    return np.asarray(img.resize(grid, Image.Resampling.BOX), dtype=np.float64)


if __name__ == "__main__":
    main()
