"""The Towhee operators of the embedding pipelines (registered locally as ``ris/...``, no hub).

Decoding, preprocessing and the model call, for one image (a search) and for batches (a bulk
load), each around an ONNX session opened once per model file and thread count.
"""

from __future__ import annotations

import functools
import warnings
from typing import Any

import numpy as np
from PIL import Image

with warnings.catch_warnings():
    # towhee 1.1.3 imports pkg_resources, which warns about its own deprecation.
    warnings.simplefilter("ignore", UserWarning)
    from towhee import register

from webapp.errors import WebappError
from webapp.services.imaging import LARGE_DECODE_SIDE, Box, Decoded, decode, to_input
from webapp.services.overlap import CALM, Overlaps
from webapp.services.priority import PRIORITY, background_thread


def _open_session(model_path: str, threads: int, spin: bool = False) -> Any:
    """Open an ONNX session whose intra-op threads are started by (and like) the calling thread.

    With ``spin``, its pool threads spin between the model's operators while a run is in progress
    and stop the moment it ends: one image on two cores took 6 ms at p50 instead of 7-10 without
    spinning, for the same CPU per run (22 ms of CPU with spinning left on after the run; one-off
    measurements, one process per setting). Without it they never spin.
    """
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    if threads > 1:
        # Pool threads that spin after a run take the CPU from concurrent requests: never, or
        # (spin) only while a run is in progress.
        options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spin else "0")
        options.add_session_config_entry("session.force_spinning_stop", "1")
    return ort.InferenceSession(model_path, options, providers=["CPUExecutionProvider"])


# One session per model file and thread count for searches (an image embedded alone: its threads
# spin while it runs), and one for bulk batches (never spinning: a search may need the core),
# opened in the first (lowered) batch thread (sessions are thread-safe).
_session = functools.cache(_open_session)
_batch_session = functools.cache(_open_session)


def _normalise(features: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(features, axis=1, keepdims=True)
    return (features / np.maximum(norms, 1e-12)).astype(np.float32)


@register(name="ris/decode")
class DecodeOp:
    """Decode bytes to upright RGB; return (not raise) the error for an unreadable file.

    Errors travel down the pipeline as values, so a bad file in a batch never stops the others
    and the caller gets the domain error itself rather than Towhee's wrapped RuntimeError.
    """

    def __init__(self, max_pixels: int, draft: int, background: bool = False) -> None:
        self.max_pixels = max_pixels
        self.draft = draft
        self.background = background  # a bulk load's decode: searches go first

    def __call__(self, data: bytes) -> Decoded | WebappError:
        if self.background:
            background_thread()  # a thread of the batch pipeline's own pool
            PRIORITY.step_aside()
        try:
            return decode(data, self.max_pixels, self.draft)
        except WebappError as exc:
            return exc


@register(name="ris/decode_region")
class DecodeRegionOp(DecodeOp):
    """Decode bytes and cut out a region (a search by region); return the image and the region.

    Large JPEGs decode at a reduced scale no smaller than ``draft`` a side: a region keeps detail.
    """

    def __call__(self, data: bytes, box: Box) -> tuple[Decoded | WebappError, Image.Image | WebappError]:  # type: ignore[override]
        decoded = super().__call__(data)
        if isinstance(decoded, WebappError):
            return decoded, decoded
        try:
            return decoded, box.crop(decoded)
        except WebappError as exc:
            return exc, exc


@register(name="ris/preprocess")
class PreprocessOp:
    """Resize the whole image (or a region cut out of it) and scale it to the model's [-1, 1] input."""

    def __init__(self, size: int) -> None:
        self.size = size

    def __call__(self, decoded: Decoded | Image.Image | WebappError) -> np.ndarray | WebappError:
        if isinstance(decoded, WebappError):
            return decoded
        return to_input(decoded.image if isinstance(decoded, Decoded) else decoded, self.size)


@register(name="ris/embed")
class EmbedOp:
    """Embed one preprocessed image: pooled features, L2-normalised.

    Alone, an image gets every core (``threads``); while other images are being embedded, each
    gets one: concurrent single-threaded runs use the cores far better than several runs fighting
    over one thread pool (``make bench``: README, Measured). Once images overlap, the wide session
    stays unused until none has for ``CALM`` seconds: its threads spin while it runs, which would
    take a core from the single-threaded runs that start meanwhile.
    """

    CALM = CALM

    def __init__(self, model_path: str, threads: int) -> None:
        self.session = _session(model_path, threads, spin=threads > 1)  # one thread: the same session as narrow
        self._narrow = _session(model_path, 1)
        self.overlaps = Overlaps(self.CALM)

    def __call__(self, tensor: np.ndarray | WebappError) -> np.ndarray | WebappError:
        if isinstance(tensor, WebappError):
            return tensor
        with self.overlaps.call() as alone:
            session = self.session if alone else self._narrow
            return _normalise(session.run(None, {"input": tensor[None]})[0])[0]


@register(name="ris/embed_image")
class EmbedImageOp:
    """Decode, preprocess and embed one image, or a region of it, as one step: a search's pipeline.

    Each node of a Towhee pipeline is a task of the pipeline's thread pool that waits for the node
    before it, so three nodes hand every image over between threads twice; under 16 concurrent
    searches the cores then stood idle a quarter of the time (README, Measured). A bulk load keeps
    separate nodes: there one image decodes while a batch is embedded.
    """

    def __init__(self, model_path: str, threads: int, max_pixels: int, size: int) -> None:
        self.whole = DecodeOp(max_pixels=max_pixels, draft=size)
        self.region = DecodeRegionOp(max_pixels=max_pixels, draft=LARGE_DECODE_SIDE)  # a region keeps detail
        self.preprocess = PreprocessOp(size=size)
        self.embed = EmbedOp(model_path=model_path, threads=threads)

    def __call__(self, data: bytes, box: Box | None = None) -> tuple[Decoded | WebappError, np.ndarray | WebappError]:
        if box is None:
            decoded = self.whole(data)
            return decoded, self.embed(self.preprocess(decoded))
        decoded, crop = self.region(data, box)
        return decoded, self.embed(self.preprocess(crop))


@register(name="ris/embed_batch")
class EmbedBatchOp:
    """Embed a window of rows in one model call; rows that failed to decode pass through.

    Batches are bulk work: they run in threads of lowered priority, with a session of their own
    (not the searches') opened in one of them at the first call, so that onnxruntime's own threads
    inherit that priority and a search's model call never queues behind a batch in a shared pool.
    """

    def __init__(self, model_path: str, threads: int) -> None:
        self.model_path, self.threads = model_path, threads

    def __call__(
        self, keys: list[Any], decoded: list[Any], tensors: list[np.ndarray | WebappError]
    ) -> tuple[list[Any], list[Any], list[np.ndarray | None]]:
        good = [i for i, t in enumerate(tensors) if isinstance(t, np.ndarray)]
        vectors: list[np.ndarray | None] = [None] * len(tensors)
        background_thread()
        PRIORITY.step_aside()  # batches are bulk loads: searches go first
        if good:
            batch = np.stack([t for t in tensors if isinstance(t, np.ndarray)])
            session = _batch_session(self.model_path, self.threads)
            for i, vec in zip(good, _normalise(session.run(None, {"input": batch})[0]), strict=True):
                vectors[i] = vec
        return keys, decoded, vectors
