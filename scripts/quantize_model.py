"""Make the INT8 model from the FP32 ONNX file: static quantization, calibrated on bundled photos.

Run by ``make model`` after the export; the app itself needs only onnxruntime. onnxruntime's static
quantization (QDQ, per-channel Int8 weights, 7-bit in the pointwise convolutions so that CPUs without
VNNI compute them exactly, UInt8 activations, percentile calibration; the stem and the head stay
FP32: see ``Recipe``) is calibrated on 64 crops of the photos scikit-image ships and 16 of its LFW
thumbnails (nothing is downloaded), then the INT8 model is compared with the FP32 one on 48 other
crops and 24 faces: it is kept only if every embedding stays close to its FP32 twin (cosine >=
--min-cosine, mean >= --min-mean-cosine).
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
from dataclasses import dataclass
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


@dataclass(frozen=True)
class Recipe:
    """How the INT8 model is made. The defaults are the kept recipe; ``bench/int8_recipes.py`` tries others.

    ``float_head`` / ``float_tail``: convolutions left in FP32 at each end. Quantizing the stem and
    the head cost the most accuracy for the least time: with 7-bit pointwise weights, held-out mean
    cosine to FP32 0.984 with 3 + 3 left in FP32 against 0.974 with none.

    ``seven_bit``: the convolutions whose weights are quantized to 7 bits ("pointwise", "depthwise",
    "all" or "none"). On x86 CPUs without VNNI (AVX2 only), onnxruntime multiplies UInt8 activations
    by Int8 weights with an instruction that adds pairs of products into 16 bits and saturates
    (255 x 127 x 2 > 32,767) in the pointwise (ungrouped) convolutions: held-out mean cosine to FP32
    fell to 0.91 (min 0.63) on such a CPU. Seven-bit weights cannot overflow there, so the model
    computes the same embeddings on every CPU. Depthwise convolutions take another kernel that does
    not saturate and keep 8 bits.
    """

    float_head: int = 3
    float_tail: int = 3
    seven_bit: str = "pointwise"
    weights: str = "QInt8"  # onnxruntime QuantType names
    activations: str = "QUInt8"
    percentile: float = 99.99  # of calibration activations: a few outliers would waste the range

    def kept_in_float(self, model: Path) -> list[str]:
        """Return the nodes left in FP32: the convolutions at both ends, and the pooling tail."""
        import onnx

        nodes = onnx.load(str(model)).graph.node
        convs = [n.name for n in nodes if n.op_type == "Conv"]
        ends = convs[: self.float_head] + (convs[-self.float_tail :] if self.float_tail else [])
        return ends + [n.name for n in nodes[-4:]]

    def weight_overrides(self, model: Path) -> dict[str, list[dict[str, object]]]:
        """Return onnxruntime's per-tensor overrides giving the chosen convolutions 7-bit weights."""
        import onnx

        def pointwise(node: onnx.NodeProto) -> bool:
            return next((a.i for a in node.attribute if a.name == "group"), 1) == 1

        chosen = {
            "pointwise": pointwise,
            "depthwise": lambda node: not pointwise(node),
            "all": lambda node: True,
            "none": lambda node: False,
        }[self.seven_bit]
        convs = [n for n in onnx.load(str(model)).graph.node if n.op_type == "Conv"]
        return {n.input[1]: [{"reduce_range": True, "axis": 0}] for n in convs if chosen(n)}


class Calibration:
    """onnxruntime's CalibrationDataReader: one preprocessed image at a time."""

    def __init__(self, images: list[Image.Image], size: int) -> None:
        self._batches = iter([{"input": to_input(img, size)[np.newaxis]} for img in images])

    def get_next(self) -> dict[str, np.ndarray] | None:
        """Return the next input, or None when all were given."""
        return next(self._batches, None)


def embed(model: Path, images: list[Image.Image], size: int, exact: bool = False) -> np.ndarray:
    """Return the L2-normalised embeddings of ``images`` by the model file.

    ``exact`` runs a quantized model's graph in floating point (no integer kernels): what exact
    integer arithmetic (VNNI) computes, without the saturation of CPUs without it.
    """
    import onnxruntime as ort

    options = ort.SessionOptions()
    if exact:
        options.add_session_config_entry("session.disable_quant_qdq", "1")
    session = ort.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])
    batch = np.stack([to_input(img, size) for img in images])
    vectors = np.concatenate([session.run(None, {"input": batch[i : i + 16]})[0] for i in range(0, len(batch), 16)])
    return np.asarray(vectors / np.linalg.norm(vectors, axis=1, keepdims=True))


def held_out() -> list[Image.Image]:
    """Return the images the INT8 model is checked on: 48 crops and 24 faces, none calibrated on."""
    return list(crops(photos(), 48, seed=2)) + faces(0, 24)


def make(recipe: Recipe, fp32: Path, out: Path, size: int) -> None:
    """Quantize the FP32 model file by ``recipe`` into ``out``, calibrating on bundled images."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    with tempfile.TemporaryDirectory(dir=out.parent) as work:
        prepared = Path(work) / "prepared.onnx"
        quant_pre_process(str(fp32), str(prepared), skip_symbolic_shape=True)
        with contextlib.redirect_stdout(io.StringIO()):  # the calibrator prints its progress
            quantize_static(
                str(prepared),
                str(out),
                Calibration(list(crops(photos(), 64, seed=1)) + faces(150, 16), size),
                quant_format=QuantFormat.QDQ,
                per_channel=True,
                activation_type=QuantType[recipe.activations],
                weight_type=QuantType[recipe.weights],
                calibrate_method=CalibrationMethod.Percentile,
                extra_options={
                    "CalibPercentile": recipe.percentile,
                    "TensorQuantOverrides": recipe.weight_overrides(prepared),
                },
                nodes_to_exclude=recipe.kept_in_float(prepared),
            )


def quantize(name: str, fp32: Path, out: Path, min_cosine: float, min_mean: float) -> None:
    """Write the INT8 model atomically, or refuse if it strays from the FP32 one."""
    size = MODELS[name].input_size
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent) as work:
        quantized = Path(work) / "int8.onnx"
        make(Recipe(), fp32, quantized, size)
        images = held_out()
        cosines = np.sum(embed(fp32, images, size) * embed(quantized, images, size), axis=1)
        mean, least = cosines.mean(), cosines.min()
        print(f"INT8 vs FP32 on {len(images)} held-out images: cosine mean {mean:.4f}, min {least:.4f}")
        if cosines.min() < min_cosine or cosines.mean() < min_mean:
            raise SystemExit(
                f"the INT8 model strays from FP32 (cosine min {cosines.min():.4f} < {min_cosine} "
                f"or mean {cosines.mean():.4f} < {min_mean}); not kept"
            )
        os.chmod(quantized, 0o644)
        os.replace(quantized, out)


def saturates(model: Path) -> bool:
    """Tell whether an INT8 file has 8-bit weights in a pointwise convolution (made by an earlier recipe).

    On CPUs without VNNI those convolutions overflow 16-bit sums and stray from FP32 (see ``Recipe``).
    """
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(str(model)).graph
    weights = {i.name: i for i in graph.initializer}
    made_by = {output: node for node in graph.node for output in node.output}
    for conv in (n for n in graph.node if n.op_type == "Conv"):
        dequantize = made_by.get(conv.input[1])
        if dequantize is None or dequantize.op_type != "DequantizeLinear":
            continue  # left in FP32
        pointwise = next((a.i for a in conv.attribute if a.name == "group"), 1) == 1
        weight = numpy_helper.to_array(weights[dequantize.input[0]]).astype(np.int32)
        if pointwise and np.abs(weight).max() > 64:
            return True
    return False


def main(argv: list[str] | None = None) -> int:
    """Parse arguments and quantize unless the file exists already, made by the current recipe."""
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
        if not saturates(args.out):
            print(f"{args.out} already exists")
            return 0
        print(
            f"{args.out} was made by an earlier recipe, whose 8-bit pointwise weights saturate on CPUs without "
            "VNNI: making it again. A library embedded with it is refused until it is re-embedded with the "
            f"new file: flask --app wsgi reindex --model {args.model}"
        )
    quantize(args.model, args.fp32, args.out, args.min_cosine, args.min_mean_cosine)
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e6:.1f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
