"""Decode and preprocessing cost per image format and size, as a bulk load pays it.

For JPEG, PNG, WebP and HEIC made from scikit-image's bundled photos at several sizes, times the app's
decode (draft mode for JPEG, as the pipeline calls it), a plain bicubic resize to the model's input,
and the app's resize (``to_input``: bilinear as it shrinks, after an integer reduce of a large one), one image at
a time on one thread, with the cosine between the FP32 model's embeddings of the two inputs, and
the app's thumbnail made from the decoded pixels (what a bulk load adds for a format it decodes whole).

    .venv/bin/python bench/decode.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from webapp.services.imaging import decode, thumbnail, to_input  # noqa: E402

SIZES = (640, 2000, 4000)
FORMATS = {"JPEG": {"quality": 90}, "PNG": {}, "WEBP": {"quality": 90}, "HEIC": {"quality": 80}}
INPUT = 224
THUMBNAIL = 320  # the default THUMBNAIL_SIZE


def sample(side: int) -> Image.Image:
    """Return a photo-like RGB image ``side`` pixels wide (the coffee photo, scaled)."""
    from skimage import data

    img = Image.fromarray(data.coffee()).convert("RGB")
    return img.resize((side, round(side * img.height / img.width)), Image.Resampling.BICUBIC)


def encoded(img: Image.Image, fmt: str, options: dict[str, int]) -> bytes:
    """Return the image saved as ``fmt``: HEIC by pillow-heif's encoder (a development requirement)."""
    buffer = io.BytesIO()
    if fmt == "HEIC":
        import pillow_heif

        pillow_heif.from_pillow(img).save(buffer, **options)
    else:
        img.save(buffer, fmt, **options)
    return buffer.getvalue()


def timed(work, repeats: int) -> tuple[float, object]:  # type: ignore[no-untyped-def]
    """Return the median time of ``work()`` in ms, and its last result."""
    times, result = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        result = work()
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times), result


def plain_input(img: Image.Image) -> np.ndarray:
    """A bicubic resize straight to the model's input (the app's until 2026-12-02), no integer reduce first."""
    resized = img.resize((INPUT, INPUT), Image.Resampling.BICUBIC)
    arr = np.asarray(resized, dtype=np.float32)
    return ((arr - 127.5) / 127.5).transpose(2, 0, 1)


def embed(session: object, tensor: np.ndarray) -> np.ndarray:
    """Return the model's unit embedding of one preprocessed image."""
    vector = session.run(None, {"input": tensor[None]})[0][0]  # type: ignore[attr-defined]
    return np.asarray(vector / np.linalg.norm(vector))


def main() -> None:
    """Print one line per format and size."""
    import onnxruntime as ort

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--model", type=Path, default=ROOT / "var" / "models" / "efficientnet-lite0.onnx")
    args = parser.parse_args()
    session = ort.InferenceSession(str(args.model), providers=["CPUExecutionProvider"])
    header = ["format", "size", "bytes", "decode ms", "bicubic ms", "app ms", "cosine", "thumb ms"]
    print(f"{header[0]:6s} {header[1]:>6s} {header[2]:>9s}" + "".join(f" {h:>10s}" for h in header[3:]))
    for side in SIZES:
        img = sample(side)
        for fmt, options in FORMATS.items():
            data = encoded(img, fmt, options)
            decode_ms, decoded = timed(lambda data=data: decode(data, 10**9, INPUT), args.repeats)
            image = decoded.image  # type: ignore[attr-defined]
            resize_ms, plain = timed(lambda image=image: plain_input(image), args.repeats)
            gap_ms, gapped = timed(lambda image=image: to_input(image, INPUT), args.repeats)
            cosine = float(embed(session, plain) @ embed(session, gapped))  # type: ignore[arg-type]
            thumb_ms, _ = timed(lambda image=image: thumbnail(image, THUMBNAIL), args.repeats)
            figures = f" {decode_ms:>10.1f} {resize_ms:>10.1f} {gap_ms:>10.1f} {cosine:>10.4f} {thumb_ms:>10.1f}"
            print(f"{fmt:6s} {side:>6d} {len(data):>9d}{figures}")


if __name__ == "__main__":
    main()
