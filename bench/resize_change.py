"""The vectors of a library embedded before the resize changed, against queries embedded now.

Until 2026-12-02 the model's input was resized bicubic; since then it is bilinear where it shrinks
(``imaging.to_input``). A library keeps the vectors it had. Every image under FOLDER is embedded
both ways with one model; this prints the cosine between each image's two vectors, and how many
images find their own earlier vector first among all the earlier ones, as a search would.

    .venv/bin/python bench/resize_change.py FOLDER [--model efficientnet-lite0-int8]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from webapp.evaluation import image_files  # noqa: E402
from webapp.models import DEFAULT  # noqa: E402
from webapp.services import operators  # noqa: E402
from webapp.services.embedding import Embedder  # noqa: E402


def bicubic_input(img: Image.Image, size: int) -> np.ndarray:
    """The resize before 2026-12-02: bicubic for every image, after the same integer reduce."""
    resized = img.resize((size, size), Image.Resampling.BICUBIC, reducing_gap=3.0)
    arr = np.ascontiguousarray(np.asarray(resized).transpose(2, 0, 1), dtype=np.float32)
    return arr / 127.5 - 1.0


def vectors(model_dir: Path, model: str, data: list[bytes]) -> np.ndarray:
    """Embed every image one at a time, as a search's query is."""
    embedder = Embedder(model_dir, model)
    return np.stack([embedder.embed(item)[1] for item in data])


def main() -> None:
    """Print the figures for one folder and one model."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--model", default=DEFAULT)
    parser.add_argument("--model-dir", type=Path, default=ROOT / "var" / "models")
    args = parser.parse_args()
    data = [path.read_bytes() for path in image_files(args.folder)]
    now = vectors(args.model_dir, args.model, data)
    app_resize = operators.to_input
    operators.to_input = bicubic_input  # the pipeline's preprocessing step calls it by this name
    try:
        before = vectors(args.model_dir, args.model, data)
    finally:
        operators.to_input = app_resize
    own = np.einsum("ij,ij->i", now, before)
    first = (now @ before.T).argmax(axis=1)
    same = sum(data[i] == data[j] for i, j in enumerate(first))  # an identical file elsewhere counts as its own
    print(f"{len(data)} images under {args.folder}, {args.model}")
    print(f"cosine of an image's vector now to its earlier one: min {own.min():.4f}, median {np.median(own):.4f}")
    print(f"images whose nearest earlier vector is their own: {same} of {len(data)}")


if __name__ == "__main__":
    main()
