"""Decoding and preprocessing, as DESIGN.md specifies them."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageCms
from skimage import data as skdata

from tests.conftest import WIDE_GAMUT_PHOTO, heic, jpeg, png
from webapp.errors import ImageTooLarge, InvalidImage
from webapp.services.imaging import MAX_PROFILE_BYTES, content_id, decode, thumbnail, to_input

LIMIT = 10_000_000


def test_exif_orientation_is_applied() -> None:
    img = Image.new("RGB", (40, 20), "red")
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise on display
    out = io.BytesIO()
    img.save(out, "JPEG", exif=exif)
    decoded = decode(out.getvalue(), LIMIT)
    assert decoded.image.size == (20, 40)
    assert (decoded.width, decoded.height) == (20, 40)


def test_transparency_is_composited_onto_white() -> None:
    img = Image.new("RGBA", (8, 8), (0, 0, 0, 0))
    decoded = decode(png(img), LIMIT)
    assert decoded.image.mode == "RGB"
    assert decoded.image.getpixel((4, 4)) == (255, 255, 255)


def test_palette_with_transparency_and_16_bit_grey_become_rgb() -> None:
    pal = Image.new("P", (4, 4), 0)
    pal.info["transparency"] = 0
    assert decode(png(pal), LIMIT).image.getpixel((0, 0)) == (255, 255, 255)
    grey16 = Image.fromarray(np.full((4, 4), 65535, dtype=np.uint16))
    assert decode(png(grey16), LIMIT).image.getpixel((0, 0)) == (255, 255, 255)


def test_floating_point_grey_in_zero_one_keeps_its_shades() -> None:
    ramp = np.tile(np.linspace(0.0, 1.0, 16, dtype=np.float32), (4, 1))  # a scientific TIFF's range
    ramp[0, 0] = np.nan
    out = io.BytesIO()
    Image.fromarray(ramp).save(out, "TIFF")
    decoded = decode(out.getvalue(), LIMIT).image
    assert [decoded.getpixel((x, 1))[0] for x in (0, 8, 15)] == [0, 136, 255]
    assert decoded.getpixel((0, 0)) == (0, 0, 0)


def test_whole_image_is_resized_and_scaled_to_minus_one_one() -> None:
    img = Image.new("RGB", (300, 100), (255, 0, 0))
    arr = to_input(img, 224)
    assert arr.shape == (3, 224, 224) and arr.dtype == np.float32
    assert arr[0].min() == pytest.approx(1.0) and arr[1].max() == pytest.approx(-1.0)


@pytest.mark.parametrize(
    ("size", "method"),
    [
        ((640, 480), Image.Resampling.BILINEAR),  # shrunk on both sides: bilinear, the cheaper
        ((300, 100), Image.Resampling.BICUBIC),  # enlarged on one side: bicubic, as a thumbnail
        ((40, 50), Image.Resampling.BICUBIC),
    ],
)
def test_the_resize_is_bilinear_when_it_shrinks_and_bicubic_when_it_enlarges(
    size: tuple[int, int], method: Image.Resampling
) -> None:
    noise = np.random.default_rng(0).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    img = Image.fromarray(noise)
    expected = np.asarray(img.resize((224, 224), method, reducing_gap=3.0)).transpose(2, 0, 1) / 127.5 - 1
    assert np.abs(to_input(img, 224) - expected).max() < 1e-5


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "empty"),
        (b"definitely not an image", "not an image"),
        (jpeg(Image.new("RGB", (64, 64), "blue"))[:200], "damaged or truncated"),
    ],
)
def test_unreadable_bytes_raise_invalid_image(data: bytes, message: str) -> None:
    with pytest.raises(InvalidImage, match=message):
        decode(data, LIMIT)


def test_unsupported_format_is_named() -> None:
    out = io.BytesIO()
    Image.new("RGB", (4, 4)).save(out, "ICO")
    with pytest.raises(InvalidImage, match="unsupported image format ICO"):
        decode(out.getvalue(), LIMIT)


def test_too_many_pixels_is_refused_before_decoding() -> None:
    with pytest.raises(ImageTooLarge, match="100x100"):
        decode(png(Image.new("RGB", (100, 100))), max_pixels=5000)


def test_content_id_is_sha256_and_thumbnail_is_bounded() -> None:
    assert content_id(b"abc").startswith("ba7816bf")
    thumb = Image.open(io.BytesIO(thumbnail(Image.new("RGB", (1000, 500)), 320)))
    assert thumb.format == "JPEG" and thumb.size == (320, 160)


def shown(data: bytes) -> np.ndarray:
    """Return an image as a colour-managed viewer (a browser) shows it, in 20 px blocks: in sRGB."""
    opened = Image.open(io.BytesIO(data))
    img = opened.convert("RGB")
    if profile := opened.info.get("icc_profile"):
        own = ImageCms.ImageCmsProfile(io.BytesIO(profile))
        converted = ImageCms.profileToProfile(img, own, ImageCms.createProfile("sRGB"))
        assert converted is not None  # None only when converted in place
        img = converted
    return np.asarray(img.resize((32, 21), Image.Resampling.BOX), dtype=np.float64)


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "PNG with alpha", "WEBP", "TIFF", "HEIC"])
def test_a_thumbnail_shows_the_colours_of_a_wide_gamut_original(fmt: str) -> None:
    original = WIDE_GAMUT_PHOTO.read_bytes()
    img = Image.open(io.BytesIO(original))
    profile = img.info["icc_profile"]
    if fmt == "JPEG":
        data = original
    elif fmt == "HEIC":
        data = heic(img, icc_profile=profile)
    else:
        out = io.BytesIO()
        (img.convert("RGBA") if fmt == "PNG with alpha" else img).save(out, fmt.split()[0], icc_profile=profile)
        data = out.getvalue()
    thumb = thumbnail(decode(data, LIMIT, draft=320).image, 320)
    assert Image.open(io.BytesIO(thumb)).info.get("icc_profile") == profile
    # Without its profile a browser shows Adobe RGB's values as sRGB: 20 px blocks 19 levels off at p95.
    off = np.abs(shown(thumb) - shown(original)).max(axis=2)
    assert np.percentile(off, 95) < 8, np.percentile(off, 95)


SWOP = Path("/usr/share/color/icc/ghostscript/default_cmyk.icc")  # Debian's libgs-common: make install-servers


def blocks(img: Image.Image) -> np.ndarray:
    return np.asarray(img.convert("RGB").resize((32, 21), Image.Resampling.BOX), dtype=np.float64)


@pytest.mark.parametrize("fmt", ["JPEG", "TIFF"])
def test_a_cmyk_print_file_is_seen_in_its_colours_through_its_profile(fmt: str) -> None:
    """Pillow's formula alone took a SWOP file's colours 45 levels off (20 px blocks, p95)."""
    assert SWOP.exists(), "no CMYK profile here: run `make install-servers` (Debian's libgs-common)"
    photo = Image.fromarray(skdata.chelsea())
    srgb, swop = ImageCms.createProfile("sRGB"), ImageCms.getOpenProfile(str(SWOP))
    cmyk = ImageCms.profileToProfile(photo, srgb, swop, outputMode="CMYK")
    assert cmyk is not None
    cmyk.info.pop("icc_profile", None)  # the TIFF writer would save what the conversion left there
    tagged, untagged = io.BytesIO(), io.BytesIO()
    cmyk.save(tagged, fmt, icc_profile=SWOP.read_bytes())
    cmyk.save(untagged, fmt)
    decoded = decode(tagged.getvalue(), LIMIT, draft=320 if fmt == "JPEG" else 0).image
    assert decoded.mode == "RGB" and "icc_profile" not in decoded.info  # sRGB now: nothing to carry
    off = np.abs(blocks(decoded.resize(photo.size)) - blocks(photo)).max(axis=2)
    assert np.percentile(off, 95) < 20, np.percentile(off, 95)
    plain = decode(untagged.getvalue(), LIMIT).image  # untagged CMYK: the formula, as before
    assert np.array_equal(np.asarray(plain), np.asarray(Image.open(untagged).convert("RGB")))


def test_a_thumbnail_carries_no_profile_that_changes_nothing_or_no_longer_fits() -> None:
    adobe = Image.open(WIDE_GAMUT_PHOTO).info["icc_profile"]
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    cases = {
        "sRGB": ("RGB", srgb),
        "a print file's CMYK profile": ("CMYK", adobe[:16] + b"CMYK" + adobe[20:]),
        "larger than a thumbnail should carry": ("RGB", adobe + bytes(MAX_PROFILE_BYTES)),
        "not a profile": ("RGB", adobe[:20] + bytes(200)),
    }
    for case, (mode, profile) in cases.items():
        out = io.BytesIO()
        Image.new(mode, (40, 30), "teal").save(out, "JPEG", icc_profile=profile)
        decoded = decode(out.getvalue(), LIMIT)
        assert "icc_profile" not in decoded.image.info, case
        assert "icc_profile" not in Image.open(io.BytesIO(thumbnail(decoded.image, 320))).info, case


def test_only_the_readers_of_the_formats_taken_are_loaded() -> None:
    # In a fresh interpreter: Pillow loads its ~45 readers (42 ms) for the first file that the five
    # it starts with do not read, unless the ones needed are there already.
    script = """
import io, sys
from PIL import Image
from webapp.services.imaging import decode
for fmt in ("WEBP", "TIFF", "AVIF"):
    out = io.BytesIO()
    Image.new("RGB", (20, 10), "teal").save(out, fmt)
    decode(out.getvalue(), 10_000)
print(sorted(name for name in ("EPS", "FITS", "PSD", "WEBP", "TIFF", "AVIF") if name in Image.OPEN))
"""
    root = Path(__file__).resolve().parent.parent
    done = subprocess.run([sys.executable, "-c", script], cwd=root, capture_output=True, text=True, check=True)
    assert done.stdout.split("\n")[-2] == "['AVIF', 'TIFF', 'WEBP']"
