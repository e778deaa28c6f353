"""`make bench-int8`: INT8 quantization recipes on this CPU: closeness to FP32, and speed.

Builds the INT8 model by each recipe (``scripts/quantize_model.py``'s ``Recipe``: the kept one and
the alternatives tried), then prints, for each, the cosine of its embeddings to the FP32 ones on
the held-out images ``make model`` checks (mean / min), computed twice: by this CPU's integer
kernels, and with the graph run in floating point (what exact integer arithmetic, as with VNNI,
computes). Where the two differ, this CPU's kernels saturate. Last, one image's model call on one
thread (ms, p50). Says whether the CPU has VNNI, which onnxruntime uses for INT8.

    .venv/bin/python bench/int8_recipes.py [--runs 100]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from quantize_model import Recipe, embed, held_out, make  # noqa: E402

from webapp.models import MODELS, UNBOUND_DEFAULT  # noqa: E402
from webapp.services.imaging import to_input  # noqa: E402

RECIPES = {
    "kept: 7-bit pointwise weights, 3 + 3 convolutions in FP32": Recipe(),
    "8-bit weights, 2 + 3 in FP32 (until 2026-12-01)": Recipe(float_head=2, seven_bit="none"),
    "UInt8 weights (U8U8), 2 + 3 in FP32": Recipe(float_head=2, seven_bit="none", weights="QUInt8"),
    "Int8 activations (S8S8), 2 + 3 in FP32": Recipe(float_head=2, seven_bit="none", activations="QInt8"),
    "7-bit weights everywhere, 2 + 3 in FP32": Recipe(float_head=2, seven_bit="all"),
    "7-bit depthwise weights only, 2 + 3 in FP32": Recipe(float_head=2, seven_bit="depthwise"),
    "7-bit pointwise weights, 2 + 3 in FP32": Recipe(float_head=2),
}


def cpu_flags() -> set[str]:
    """Return the CPU's feature flags (Linux), or nothing elsewhere."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    return set(next((line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")), []))


def one_image_ms(model: Path, image: np.ndarray, runs: int) -> float:
    """Return the p50 of one image's model call on one thread, in ms."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])
    for _ in range(10):
        session.run(None, {"input": image})
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        session.run(None, {"input": image})
        times.append(time.perf_counter() - start)
    return 1000 * float(np.median(times))


def main() -> None:
    """Build each recipe, measure it, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fp32", type=Path, default=ROOT / "var" / "models" / f"{UNBOUND_DEFAULT}.onnx")
    parser.add_argument("--runs", type=int, default=100, help="timed model calls per recipe")
    args = parser.parse_args()
    size = MODELS[UNBOUND_DEFAULT].input_size
    flags = cpu_flags()
    vnni = sorted(flags & {"avx512_vnni", "avx_vnni", "amx_int8"}) or ["none"]
    print(
        f"CPU: AVX2 {'yes' if 'avx2' in flags else 'no'}, AVX-512 {'yes' if 'avx512f' in flags else 'no'}, "
        f"VNNI: {', '.join(vnni)}"
    )
    images = held_out()
    reference = embed(args.fp32, images, size)
    image = to_input(images[0], size)[np.newaxis]
    print(f"{'recipe':58s} {'this CPU':>15s} {'exact':>15s} {'ms':>6s}")
    print(f"{'FP32':58s} {'':15s} {'':15s} {one_image_ms(args.fp32, image, args.runs):6.1f}")
    with tempfile.TemporaryDirectory() as work:
        for label, recipe in RECIPES.items():
            out = Path(work) / "int8.onnx"
            make(recipe, args.fp32, out, size)
            here = np.sum(reference * embed(out, images, size), axis=1)
            exact = np.sum(reference * embed(out, images, size, exact=True), axis=1)
            print(
                f"{label:58s} {here.mean():7.3f} / {here.min():5.3f} {exact.mean():7.3f} / {exact.min():5.3f} "
                f"{one_image_ms(out, image, args.runs):6.1f}"
            )
    print(f"cosine to FP32 on {len(images)} held-out images, mean / min; ms: one image, one thread, p50")


if __name__ == "__main__":
    main()
