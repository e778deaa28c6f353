"""Decoding and preprocessing of image bytes, as DESIGN.md specifies (no Flask here).

One departure, measured: the resize to the model's input is bilinear where it shrinks (``to_input``).
"""

from __future__ import annotations

import hashlib
import importlib
import io
import math
import threading
import warnings
from contextlib import nullcontext
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from pi_heif import register_heif_opener
from PIL import Image, ImageCms, ImageOps, UnidentifiedImageError

from webapp.errors import ImageTooLarge, InvalidImage, InvalidInput

MIME_BY_FORMAT = {
    "JPEG": "image/jpeg",
    "PNG": "image/png",
    "GIF": "image/gif",
    "WEBP": "image/webp",
    "BMP": "image/bmp",
    "TIFF": "image/tiff",
    "AVIF": "image/avif",
    "HEIF": "image/heif",  # image/heic for HEVC brands (decode)
}
# What every current browser shows in an <img>. An image's page shows the others (TIFF and HEIC,
# which only Safari shows) as a JPEG preview, at most PREVIEW_SIZE pixels a side, made at its first view.
SHOWN_BY_BROWSERS = frozenset(MIME_BY_FORMAT.values()) - {"image/tiff", "image/heif"}
PREVIEW_SIZE = 1600
# Formats decoded at a reduced scale (JPEG's draft mode): a thumbnail made at its first view costs a
# few ms. The others decode whole (a 4000 px HEIC 311 ms, a PNG 243: bench/decode.py), so a bulk
# load makes their thumbnails while it has their pixels.
REDUCED_SCALE = frozenset({"image/jpeg"})
# HEIF files by their ISO-BMFF brand: HEVC-coded ones (an iPhone's photos) are image/heic.
HEIC_BRANDS = {b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis"}
FORMATS = "JPEG, PNG, GIF, WebP, AVIF, HEIC, BMP or TIFF"
# Formats Pillow reads but the app does not, named in the refusal when a file starts with their
# signature (the file is never parsed as one).
NAMED_BY_SIGNATURE = ("PSD", "JPEG2000", "EPS", "ICO", "ICNS", "DDS", "QOI", "FITS", "XBM")

# Pillow reads HEIC and HEIF through pi-heif (libheif), which applies the file's rotation and
# mirroring itself and leaves an EXIF orientation of 1: nothing is turned twice.
register_heif_opener()
# The readers of the other formats the app takes, registered now: Pillow would otherwise import all
# of its ~45 readers (42 ms: bench/headers.py) the first time a file is not a JPEG, PNG, GIF or BMP.
for _reader in ("Avif", "Bmp", "Gif", "Jpeg", "Png", "Tiff", "WebP"):
    importlib.import_module(f"PIL.{_reader}ImagePlugin")
EXIF_ORIENTATION = 0x0112
# The largest colour profile a JPEG the app makes carries (thumbnails, previews): a camera's or a
# phone's is under 4 KB. An image with a larger one gets JPEGs without it, shown as sRGB.
MAX_PROFILE_BYTES = 64 * 1024


@dataclass(frozen=True)
class Decoded:
    """An image read from bytes: RGB pixels (orientation applied) and what a record keeps.

    The pixels are the file's own, in its colour space (a CMYK file's are converted to sRGB through
    its profile, when it has one): ``image.info["icc_profile"]`` is the file's
    RGB colour profile when it has one other than sRGB (Adobe RGB, a phone's Display P3). The JPEGs
    made of the image carry it (``thumbnail``), so browsers show them in the original's colours.
    """

    sha256: str
    image: Image.Image
    width: int
    height: int
    mime: str


@dataclass(frozen=True)
class QueryImage:
    """What a search keeps of its query image: its id, size and type, not its pixels."""

    sha256: str
    width: int
    height: int
    mime: str

    @classmethod
    def of(cls, decoded: Decoded) -> QueryImage:
        """Return what a search keeps of a decoded image."""
        return cls(decoded.sha256, decoded.width, decoded.height, decoded.mime)


# A start-of-scan marker (FF DA) cannot occur inside entropy-coded data (FF is stuffed as FF 00
# there), so counting it counts scans. Encoders write 1 (baseline) to about 10-20 (progressive).
MAX_JPEG_SCANS = 100
# A decoded image over this many pixels (a huge PNG, TIFF or WebP; large JPEGs decode in draft
# mode) is shrunk by an integer factor to at most LARGE_DECODE_SIDE right after decoding, and at
# most two such decodes run at once per process: an 8000x8000 RGBA PNG of 250 KB took 1.5 GB per
# request before, and four at once 5.4 GB (measured in-process).
LARGE_DECODE_PIXELS = 16_000_000
LARGE_DECODE_SIDE = 2048
_large_decodes = threading.BoundedSemaphore(2)
JPEG_SOS = b"\xff\xda"
# Pillow parses the chunks, markers and blocks of a file's header in Python, one read each: a 30 MB
# PNG of 2.5 million empty chunks took 8.9 s to read, and a JPEG of 0xFF fill bytes 14.3 s before it
# was found not to be one (bench/headers.py). A file may be read in at most one call per
# BYTES_PER_READ bytes, and READS_AT_LEAST: real files take far fewer (the largest PNG of the
# skimage photos, 792 KB in 8 KB chunks, 309 calls for 4,096 allowed; a 22.8 MB PNG rewritten in
# 1 KB chunks 65,943 for 88,945).
BYTES_PER_READ = 256
READS_AT_LEAST = 4096


def return_large_buffers_to_the_system(threshold: int = 4 * 1024 * 1024) -> bool:
    """Have glibc map buffers of ``threshold`` bytes or more on their own, so freeing them returns
    the memory at once; tell whether it could (not on other C libraries).

    By default glibc raises that threshold as buffers are freed, then serves Pillow's large
    blocks from per-thread heaps that keep their peak: 8 threads each decoding an 8000x8000 PNG in
    turn grew the process by 3.6 GB; with this, by about 0.75 GB.
    """
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return bool(libc.mallopt(-3, threshold))  # -3: M_MMAP_THRESHOLD
    except (OSError, AttributeError):
        return False


def content_id(data: bytes) -> str:
    """Return an image's identity: the hex SHA-256 of its bytes."""
    return hashlib.sha256(data).hexdigest()


def decode(data: bytes, max_pixels: int, draft: int = 0) -> Decoded:
    """Decode image bytes to upright RGB on white, or raise a clear domain error.

    With ``draft`` set, a large JPEG is decoded at a reduced scale (a DCT-domain downscale by
    1/2, 1/4 or 1/8) no smaller than ``draft`` pixels a side: far cheaper, and never below the
    model's input size.
    """
    if not data:
        raise InvalidImage("the file is empty")
    try:
        with warnings.catch_warnings():
            # Pillow warns, then raises, past MAX_IMAGE_PIXELS; we check ourselves first.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            # Only the formats the app takes are parsed at all: Pillow would otherwise try each of
            # its ~40 readers in turn (EPS, FITS, PSD...) on any file, to name it.
            img = Image.open(_BoundedReads(data), formats=tuple(MIME_BY_FORMAT))
            # Pillow's JPEG reader names a JPEG with more pictures after the first (a Multi-Picture
            # Format index) MPO: many cameras' photos with their full-HD preview (Sony, Panasonic),
            # a 3D camera's two eyes. The first picture is the photo, and it is read as a JPEG.
            fmt = "JPEG" if img.format == "MPO" else img.format or ""
            if fmt not in MIME_BY_FORMAT:  # a reader of an allowed format handing over another
                raise InvalidImage(f"unsupported image format {fmt or 'unknown'}; use {FORMATS}")
            if img.width * img.height > max_pixels:
                raise ImageTooLarge(f"the image is {img.width}x{img.height} pixels; the limit is {max_pixels} pixels")
            scans = data.count(JPEG_SOS) if fmt == "JPEG" else 0
            if scans > MAX_JPEG_SCANS:
                # Decode time grows with the scan count: 20,000 empty scans in 270 KB took 21 s.
                raise InvalidImage(f"the JPEG has {scans} progressive scans; the limit is {MAX_JPEG_SCANS}")
            width, height = img.size
            # Large JPEGs decode in draft mode (small); other large images wait for a turn. PNG's
            # getexif() decodes the whole image, so it is inside the turn too.
            large = width * height > LARGE_DECODE_PIXELS and not (fmt == "JPEG" and draft)
            with _large_decodes if large else nullcontext():
                orientation = img.getexif().get(EXIF_ORIENTATION, 1)
                if orientation in (5, 6, 7, 8):
                    width, height = height, width
                if fmt == "JPEG" and draft:
                    img.draft("RGB", (draft, draft))
                img.load()
                # Shrink before any conversion copies it: the model sees 224 px, thumbnails 320.
                full: Image.Image = img.reduce(math.ceil(max(img.size) / LARGE_DECODE_SIDE)) if large else img
                # exif_transpose and convert copy the pixels even when there is nothing to do.
                upright = full if orientation == 1 else ImageOps.exif_transpose(full)
                rgb = upright if upright.mode == "RGB" else _to_rgb(upright, img.info.get("icc_profile"))
                profile = _shown_profile(img.info.get("icc_profile"))
                if profile:
                    rgb.info["icc_profile"] = profile
                else:
                    rgb.info.pop("icc_profile", None)
    except UnidentifiedImageError as exc:
        if other := _other_format(data):
            raise InvalidImage(f"unsupported image format {other}; use {FORMATS}") from exc
        raise InvalidImage(f"the file is not an image this app can read (use {FORMATS})") from exc
    except Image.DecompressionBombError as exc:  # Pillow's own guard, past twice its limit
        raise ImageTooLarge(f"the image declares too many pixels; the limit is {max_pixels} pixels") from exc
    except (OSError, SyntaxError, ValueError) as exc:
        reason = str(exc).strip()  # libheif's end in a newline
        raise InvalidImage(f"the image is damaged or truncated ({reason})") from exc
    mime = "image/heic" if fmt == "HEIF" and data[8:12] in HEIC_BRANDS else MIME_BY_FORMAT[fmt]
    return Decoded(content_id(data), rgb, width, height, mime)


class _BoundedReads(io.BytesIO):
    """Image bytes that Pillow may read in a bounded number of calls (see BYTES_PER_READ)."""

    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.reads_left = max(READS_AT_LEAST, len(data) // BYTES_PER_READ)

    def read(self, size: int | None = -1, /) -> bytes:
        self.reads_left -= 1
        if self.reads_left < 0:  # not one of the errors Pillow takes as "try the next format"
            raise InvalidImage("the file is cut into too many small pieces (chunks or markers) to be an image")
        return super().read(size)


def _other_format(data: bytes) -> str:
    """Name the format of an image the app does not take, from its first bytes only ("" if unsure).

    Only formats with a signature of four bytes or more are named: weaker ones mislead (a TGA's
    first bytes pass for a Windows cursor's).
    """
    Image.init()
    prefix = data[:16]
    for fmt in NAMED_BY_SIGNATURE:
        accept = Image.OPEN[fmt][1] if fmt in Image.OPEN else None
        claimed = accept is not None and accept(prefix)
        if claimed and not isinstance(claimed, str):  # a str is Pillow's "it may be one" warning
            return fmt
    return ""


@dataclass(frozen=True)
class Box:
    """A region of an image in its upright pixels: left, top, width, height."""

    x: int
    y: int
    width: int
    height: int

    MIN_SIDE = 8  # pixels: a smaller region holds too little to search with

    def crop(self, decoded: Decoded) -> Image.Image:
        """Return this region of a decoded image, or raise InvalidInput if it is not inside it.

        The decoded pixels may be a reduced copy (a large image); the box is scaled to them.
        """
        w, h = decoded.width, decoded.height
        if self.width < self.MIN_SIDE or self.height < self.MIN_SIDE:
            raise InvalidInput(f"the region must be at least {self.MIN_SIDE}x{self.MIN_SIDE} pixels")
        if self.x < 0 or self.y < 0 or self.x + self.width > w or self.y + self.height > h:
            raise InvalidInput(
                f"the region ({self.x}, {self.y}) {self.width}x{self.height} is not inside the image ({w}x{h} pixels)"
            )
        sx, sy = decoded.image.width / w, decoded.image.height / h
        left, top = math.floor(self.x * sx), math.floor(self.y * sy)
        right = max(math.ceil((self.x + self.width) * sx), left + 1)
        bottom = max(math.ceil((self.y + self.height) * sy), top + 1)
        return decoded.image.crop((left, top, right, bottom))


def _to_rgb(img: Image.Image, profile: bytes | None = None) -> Image.Image:
    """Composite any transparency onto white and return an RGB image (a CMYK one through its profile)."""
    if img.mode == "CMYK" and profile and profile[16:20] == b"CMYK":
        transform = _cmyk_to_srgb(profile)
        converted = ImageCms.applyTransform(img, transform) if transform is not None else None
        if converted is not None:
            return converted
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    if img.mode.startswith("I;16") or img.mode in ("I", "F"):
        # 16-bit, 32-bit and floating-point greyscale (scans, scientific TIFFs): scale to 8 bits by
        # the brightest pixel before converting. Pillow would clip: a float image in [0, 1] was black.
        arr = np.nan_to_num(np.asarray(img, dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0).clip(min=0.0)
        top = arr.max() or 1.0
        img = Image.fromarray((arr * (255.0 / top)).astype(np.uint8))
    return img.convert("RGB")


_SRGB = ImageCms.createProfile("sRGB")


@lru_cache(maxsize=8)
def _cmyk_to_srgb(profile: bytes) -> ImageCms.ImageCmsTransform | None:
    """Return littleCMS's transform from a CMYK file's profile to sRGB (None if it cannot read it).

    A CMYK file (print material: a SWOP or FOGRA profile) converted by Pillow's formula alone came
    out 43 levels off its colours (p95 of 20 px blocks, `bench/colours.py`; 9 through the profile):
    its thumbnails and what the model saw differed from what a browser shows, which converts
    through the profile. Untagged CMYK keeps the formula: nothing says which inks it was made for.
    Built once per profile: a SWOP profile's tables take tens of milliseconds to read.
    """
    try:
        source = ImageCms.ImageCmsProfile(io.BytesIO(profile))
        return ImageCms.buildTransform(source, _SRGB, "CMYK", "RGB")
    except (ImageCms.PyCMSError, OSError, ValueError):
        return None


def _shown_profile(profile: bytes | None) -> bytes | None:
    """Return the colour profile JPEGs made from an image must carry to look like it, or None.

    That is an RGB profile other than sRGB: browsers take an image without one for sRGB, so a
    thumbnail of an Adobe RGB photo (or a phone's Display P3 one) looked washed out beside it, up to
    55 levels off in a channel (skimage's rocket.jpg). A CMYK or greyscale file's profile no longer
    fits pixels converted to RGB; an sRGB one changes nothing and costs 0.6-3 KB a thumbnail.
    """
    if not profile or len(profile) > MAX_PROFILE_BYTES or profile[16:20] != b"RGB ":
        return None
    return None if _is_srgb(profile) else profile


@lru_cache(maxsize=64)
def _is_srgb(profile: bytes) -> bool:
    """Return whether an RGB profile is sRGB by its description (sRGB IEC61966-2.1, sRGB built-in...)."""
    try:
        description = ImageCms.getProfileDescription(ImageCms.ImageCmsProfile(io.BytesIO(profile)))
    except (ImageCms.PyCMSError, OSError, ValueError):
        return True  # not a profile littleCMS can read: browsers would ignore it too
    return description.strip().lower().startswith("srgb")


def to_input(img: Image.Image, size: int) -> np.ndarray:
    """Resize the whole image to ``size``x``size`` and scale to a [-1, 1] CHW array.

    An image it shrinks is resized bilinear (bicubic before 2026-12-02): 1.3 instead of 2.2 ms for a
    640 px JPEG's draft (`bench/decode.py`), with the same retrieval quality and near-duplicate
    grouping (README, Retrieval quality; `bench/resize_change.py` for libraries embedded before).
    Pillow widens the filter as it shrinks; a resize that does not (OpenCV's bicubic, 0.1 ms) lost
    near-duplicate F1 at the app's threshold, 0.50 instead of 0.58. One it enlarges on either side
    (a thumbnail) stays bicubic: that costs little, and bilinear blurred tiny images enough to move
    their embeddings (cosine 0.86 to bicubic's for some). A large image is first reduced by an
    integer factor (``reducing_gap``): a 4000 px PNG or WebP resizes in a quarter of the time
    (`bench/decode.py`). JPEGs arrive small already (draft mode).
    """
    shrinks = img.width >= size and img.height >= size
    method = Image.Resampling.BILINEAR if shrinks else Image.Resampling.BICUBIC
    resized = img.resize((size, size), method, reducing_gap=3.0)
    # Contiguous CHW, scaled in place: a transposed view made np.stack of a batch cost 0.76 ms an
    # image instead of 0.09 (one-off measurement, 640 px JPEGs).
    arr = np.ascontiguousarray(np.asarray(resized).transpose(2, 0, 1), dtype=np.float32)
    arr *= 1 / 127.5
    arr -= 1.0
    return arr


def thumbnail(img: Image.Image, size: int) -> bytes:
    """Return a JPEG thumbnail no larger than ``size`` on either side."""
    return thumbnail_of(shrunk(img, size), img.info.get("icc_profile"))


def shrunk(img: Image.Image, size: int) -> Image.Image:
    """Return the image no larger than ``size`` on either side: a thumbnail's pixels."""
    scale = min(size / img.width, size / img.height, 1.0)
    target = (max(round(img.width * scale), 1), max(round(img.height * scale), 1))
    # Bicubic, as Pillow's own Image.thumbnail(), after a box reduction by the whole factor
    # (reducing_gap 1): 0.75 instead of 1.2 ms an image on the 640 px bench photos, whose drafts are
    # often just twice the thumbnail, at 48.8 instead of 49.8 dB median PSNR to a Lanczos resize.
    return img if target == img.size else img.resize(target, Image.Resampling.BICUBIC, reducing_gap=1.0)


def thumbnail_of(small: Image.Image, profile: bytes | None) -> bytes:
    """Return the JPEG of a ``shrunk`` image, in the colour space of ``profile`` (None: sRGB)."""
    out = io.BytesIO()
    # optimize=True: 5% smaller for 33% more CPU on the bulk-load path
    small.save(out, "JPEG", quality=85, icc_profile=profile)
    return out.getvalue()
