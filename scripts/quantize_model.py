"""Make the INT8 model from the FP32 ONNX file: static quantization, calibrated on bundled photos.

Run by ``make model`` after the export; the app itself needs only onnxruntime. onnxruntime's static
quantization (QDQ, per-channel Int8 weights, UInt8 activations, percentile calibration; the stem
and the head stay FP32) is calibrated on 64 crops of the photos scikit-image ships and 16 of its
LFW thumbnails (nothing is downloaded), then the INT8 model is
compared with the FP32 one on 48 other crops and 24 faces: it is kept only if every embedding stays
close to its FP32 twin (cosine >= --min-cosine, mean >= --min-mean-cosine).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import random
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from webapp.models import MODELS  # noqa: E402
from webapp.services.imaging import to_input  # noqa: E402

PHOTOS = ["astronaut", "brick", "camera", "chelsea", "clock", "coffee", "coins", "grass", "gravel", "hubble_deep_field"]
PHOTOS += ["immunohistochemistry", "microaneurysms", "moon", "page", "retina", "rocket", "text", "cell"]


def photos() -> list[Image.Image]:
    """Return scikit-image's bundled photos as RGB images."""
    from skimage import data

    return [Image.fromarray(getattr(data, name)()).convert("RGB") for name in PHOTOS]


def crops(images: list[Image.Image], count: int, seed: int) -> Iterator[Image.Image]:
    """Yield ``count`` random crops (30-100% a side), some mirrored, of the given images."""
    rng = random.Random(seed)
    for i in range(count):
        img = images[i % len(images)]
        scale = rng.uniform(0.3, 1.0)
        w, h = max(8, round(img.width * scale)), max(8, round(img.height * scale))
        x, y = rng.randint(0, img.width - w), rng.randint(0, img.height - h)
        crop = img.crop((x, y, x + w, y + h))
        yield crop.transpose(Image.Transpose.FLIP_LEFT_RIGHT) if rng.random() < 0.5 else crop


def faces(start: int, count: int) -> list[Image.Image]:
    """Return ``count`` of the 200 LFW thumbnails scikit-image ships (grey, 25 px), as RGB."""
    from skimage import data

    chosen = data.lfw_subset()[start : start + count]
    return [Image.fromarray((face * 255).astype(np.uint8)).convert("RGB") for face in chosen]


def kept_in_float(model: Path) -> list[str]:
    """Return the nodes left in FP32: the first three and last three convolutions, and the pooling tail.

    Quantizing the stem and the head cost the most accuracy for the least time: with the 7-bit
    weights below, held-out mean cosine to FP32 0.984 without them against 0.974 with them.
    """
    import onnx

    nodes = onnx.load(str(model)).graph.node
    convs = [n.name for n in nodes if n.op_type == "Conv"]
    return convs[:3] + convs[-3:] + [n.name for n in nodes[-4:]]


def seven_bit_weights(model: Path) -> dict[str, list[dict[str, object]]]:
    """Return overrides quantizing the weights of the pointwise (ungrouped) convolutions to 7 bits.

    On x86 CPUs without VNNI (AVX2 only), onnxruntime multiplies UInt8 activations by Int8 weights
    with an instruction that adds pairs of products into 16 bits and saturates (255 x 127 x 2 >
    32,767): held-out mean cosine to FP32 fell to 0.91 (min 0.63) on such a CPU. Seven-bit weights
    cannot overflow there, so the model computes the same embeddings on every CPU. Depthwise
    convolutions take another kernel that does not saturate and keep 8 bits.
    """
    import onnx

    def groups(node: onnx.NodeProto) -> int:
        return next((a.i for a in node.attribute if a.name == "group"), 1)

    nodes = onnx.load(str(model)).graph.node
    return {n.input[1]: [{"reduce_range": True, "axis": 0}] for n in nodes if n.op_type == "Conv" and groups(n) == 1}


class Calibration:
    """onnxruntime's CalibrationDataReader: one preprocessed image at a time."""

    def __init__(self, images: list[Image.Image], size: int) -> None:
        self._batches = iter([{"input": to_input(img, size)[np.newaxis]} for img in images])

    def get_next(self) -> dict[str, np.ndarray] | None:
        """Return the next input, or None when all were given."""
        return next(self._batches, None)


def embed(model: Path, images: list[Image.Image], size: int) -> np.ndarray:
    """Return the L2-normalised embeddings of ``images`` by the model file."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    batch = np.stack([to_input(img, size) for img in images])
    vectors = np.concatenate([session.run(None, {"input": batch[i : i + 16]})[0] for i in range(0, len(batch), 16)])
    return np.asarray(vectors / np.linalg.norm(vectors, axis=1, keepdims=True))


def quantize(name: str, fp32: Path, out: Path, min_cosine: float, min_mean: float) -> None:
    """Write the INT8 model atomically, or refuse if it strays from the FP32 one."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    size = MODELS[name].input_size
    library = photos()
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent) as work:
        prepared, quantized = Path(work) / "prepared.onnx", Path(work) / "int8.onnx"
        quant_pre_process(str(fp32), str(prepared), skip_symbolic_shape=True)
        with contextlib.redirect_stdout(io.StringIO()):  # the calibrator prints its progress
            quantize_static(
                str(prepared),
                str(quantized),
                Calibration(list(crops(library, 64, seed=1)) + faces(150, 16), size),
                quant_format=QuantFormat.QDQ,
                per_channel=True,
                activation_type=QuantType.QUInt8,
                weight_type=QuantType.QInt8,
                calibrate_method=CalibrationMethod.Percentile,
                extra_options={
                    "CalibPercentile": 99.99,  # a few outlier activations would waste the range
                    "TensorQuantOverrides": seven_bit_weights(prepared),
                },
                nodes_to_exclude=kept_in_float(prepared),
            )
        held_out = list(crops(library, 48, seed=2)) + faces(0, 24)
        cosines = np.sum(embed(fp32, held_out, size) * embed(quantized, held_out, size), axis=1)
        mean, least = cosines.mean(), cosines.min()
        print(f"INT8 vs FP32 on {len(held_out)} held-out images: cosine mean {mean:.4f}, min {least:.4f}")
        if cosines.min() < min_cosine or cosines.mean() < min_mean:
            raise SystemExit(
                f"the INT8 model strays from FP32 (cosine min {cosines.min():.4f} < {min_cosine} "
                f"or mean {cosines.mean():.4f} < {min_mean}); not kept"
            )
        os.chmod(quantized, 0o644)
        os.replace(quantized, out)


def main(argv: list[str] | None = None) -> int:
    """Parse arguments and quantize unless the file already exists."""
    int8 = [name for name, spec in MODELS.items() if spec.quantized_from]
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=int8, default=int8[0], help="the INT8 model to make")
    parser.add_argument("--fp32", type=Path, required=True, help="the FP32 ONNX file it is made from")
    parser.add_argument("--out", type=Path, required=True, help="ONNX file to write")
    parser.add_argument("--min-cosine", type=float, default=0.92)
    parser.add_argument("--min-mean-cosine", type=float, default=0.98)
    parser.add_argument("--force", action="store_true", help="quantize even if the file exists")
    args = parser.parse_args(argv)
    if args.out.exists() and not args.force:
        print(f"{args.out} already exists")
        return 0
    quantize(args.model, args.fp32, args.out, args.min_cosine, args.min_mean_cosine)
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e6:.1f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
