"""How long the app takes to read, or refuse, files whose header is made of many small pieces.

Pillow parses the chunks, markers and blocks before an image's pixels in Python, one read each. Each
file below is built to the size of one upload (``--megabytes``, 30 by default: the app takes 32 MB a
request) and passed to the app's decode, as an upload or a search is; the time is what one request
would hold its worker for. Then, for the photos that ship with scikit-image, how many reads their
decode took against what a file of their size is allowed (``imaging.BYTES_PER_READ``), and those of
a 22 MB PNG whose pixel data is cut into 1 KB chunks.

    .venv/bin/python bench/headers.py [--megabytes 30]
"""

from __future__ import annotations

import argparse
import io
import struct
import subprocess
import sys
import time
import zlib
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from webapp.config import Defaults  # noqa: E402
from webapp.services import imaging  # noqa: E402
from webapp.services.imaging import decode  # noqa: E402


def chunk(kind: bytes, body: bytes) -> bytes:
    """Return one PNG chunk."""
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png_of(pieces: bytes, size: int) -> bytes:
    """A 10x10 PNG with ``pieces`` repeated to ``size`` bytes between its header and its pixels."""
    header = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 10, 10, 8, 2, 0, 0, 0))
    pixels = chunk(b"IDAT", zlib.compress(b"\x00" * 31 * 10)) + chunk(b"IEND", b"")
    return header + pieces * (size // len(pieces)) + pixels


def gif_of(pieces: bytes, size: int) -> bytes:
    """A GIF's screen header followed by ``pieces`` repeated to ``size`` bytes."""
    return b"GIF89a" + struct.pack("<HHBBB", 10, 10, 0, 0, 0) + pieces * (size // len(pieces))


CRAFTED: dict[str, Callable[[int], bytes]] = {
    "PNG of empty private chunks": lambda n: png_of(chunk(b"prIv", b""), n),
    "PNG of tiny text chunks": lambda n: png_of(chunk(b"tEXt", b"k\x00v"), n),
    "JPEG of empty APP5 segments": lambda n: b"\xff\xd8" + b"\xff\xe5\x00\x02" * (n // 4),
    "JPEG of comment segments": lambda n: b"\xff\xd8" + b"\xff\xfe\x00\x02" * (n // 4),
    "JPEG of fill bytes": lambda n: b"\xff\xd8" + b"\xff" * n,
    "GIF of comment blocks": lambda n: gif_of(b"\x21\xfe\x01a\x00", n),
    "GIF of one-byte sub-blocks": lambda n: gif_of(b"\x21\xfe", 2) + b"\x01a" * (n // 2) + b"\x00",
    "EPS of comment lines": lambda n: b"%!PS-Adobe-3.0 EPSF-3.0\n" + b"%%Comment: x\n" * (n // 13),
    "PPM of one long comment": lambda n: b"P6\n" + b"#" * n,
}


def noise_png(width: int, height: int) -> bytes:
    """A PNG of random pixels (it hardly compresses: a large file), written by Pillow."""
    import numpy as np
    from PIL import Image

    pixels = np.random.default_rng(0).integers(0, 255, (height, width, 3), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, "PNG", compress_level=1)
    return out.getvalue()


def rechunked(data: bytes, size: int) -> bytes:
    """The same PNG with its pixel data cut into chunks of ``size`` bytes (an encoder may write 1 KB ones)."""
    pos, kept, pixels = 8, b"", b""
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        if kind == b"IDAT":
            pixels += body
        elif kind != b"IEND":
            kept += chunk(kind, body)
        pos += 12 + length
    cut = b"".join(chunk(b"IDAT", pixels[i : i + size]) for i in range(0, len(pixels), size))
    return data[:8] + kept + cut + chunk(b"IEND", b"")


def timed_decode(data: bytes, max_pixels: int) -> tuple[float, str]:
    """Return how long decode() took in ms and what it answered."""
    t0 = time.perf_counter()
    try:
        decoded = decode(data, max_pixels, draft=224)
        outcome = f"read as {decoded.mime}"
    except Exception as exc:  # noqa: BLE001 -- the outcome is what is printed
        outcome = f"{type(exc).__name__}: {str(exc)[:70]}"
    return (time.perf_counter() - t0) * 1000, outcome


def reads_of(data: bytes, max_pixels: int) -> int:
    """Return how many reads the app's decode made of ``data``."""
    made = 0
    original = imaging._BoundedReads.read

    def counting(self: imaging._BoundedReads, size: int | None = -1, /) -> bytes:
        nonlocal made
        made += 1
        return original(self, size)

    imaging._BoundedReads.read = counting  # type: ignore[method-assign]
    try:
        decode(data, max_pixels, draft=224)
    finally:
        imaging._BoundedReads.read = original  # type: ignore[method-assign]
    return made


def all_readers_ms() -> float:
    """Return how long Pillow takes to import all of its readers (Image.init), once the first five are in."""
    script = "import time; from PIL import Image; Image.preinit(); t = time.perf_counter(); Image.init(); "
    script += "print((time.perf_counter() - t) * 1000)"
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    return float(done.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--megabytes", type=float, default=30.0)
    args = parser.parse_args()
    size = int(args.megabytes * 1_000_000)
    max_pixels = Defaults.MAX_IMAGE_PIXELS
    print(f"decode of crafted files of {args.megabytes:g} MB (one request's worth)")
    for name, build in CRAFTED.items():
        ms, outcome = timed_decode(build(size), max_pixels)
        print(f"  {name:30s} {ms:9.1f} ms  {outcome}")
    print(f"Pillow importing all of its readers, in a fresh interpreter: {all_readers_ms():.0f} ms")
    print("reads of the photos that ship with scikit-image, against what their size allows")
    from skimage import data as skdata

    folder = Path(skdata.__file__).parent
    rows = []
    for path in sorted(folder.glob("*.png")) + sorted(folder.glob("*.jpg")):
        data = path.read_bytes()
        allowed = max(imaging.READS_AT_LEAST, len(data) // imaging.BYTES_PER_READ)
        rows.append((reads_of(data, max_pixels), allowed, len(data), path.name))
    rows.sort(reverse=True)
    for made, allowed, length, name in rows[:5]:
        print(f"  {name:30s} {length / 1000:9.0f} KB  {made:6d} reads of {allowed:6d} allowed")
    print(f"  ({len(rows)} photos; the most reads first)")
    data = rechunked(noise_png(3000, 2500), 1024)
    allowed = max(imaging.READS_AT_LEAST, len(data) // imaging.BYTES_PER_READ)
    name = "a noise PNG in 1 KB chunks"
    print(f"  {name:30s} {len(data) / 1000:9.0f} KB  {reads_of(data, max_pixels):6d} reads of {allowed:6d} allowed")


if __name__ == "__main__":
    main()
