"""The Towhee pipeline with the real ONNX model."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import INT8, MODEL, near_duplicate
from webapp.config import ROOT
from webapp.errors import InvalidImage, ModelMissing
from webapp.services.embedding import Embedder
from webapp.services.imaging import Decoded


@pytest.fixture(scope="module")
def embedder(model_dir: Path) -> Embedder:
    return Embedder(model_dir, MODEL, batch_size=4)


def test_same_image_gives_the_same_unit_vector(embedder: Embedder, photos: dict[str, bytes]) -> None:
    decoded, first = embedder.embed(photos["coffee"])
    _, second = embedder.embed(photos["coffee"])
    assert first.shape == (1280,) and first.dtype == np.float32
    assert np.linalg.norm(first) == pytest.approx(1.0, abs=1e-5)
    assert np.array_equal(first, second)
    assert (decoded.width, decoded.height) == (600, 400)


def test_concurrent_searches_get_the_same_vectors_as_one_at_a_time(
    embedder: Embedder, photos: dict[str, bytes]
) -> None:
    # Concurrent single embeds run on one-thread sessions, a lone one on the wide session.
    names = ["astronaut", "coffee", "rocket", "chelsea", "moon", "camera"] * 3
    alone = {name: embedder.embed(photos[name])[1] for name in set(names)}
    with ThreadPoolExecutor(4) as pool:
        together = list(pool.map(lambda name: embedder.embed(photos[name])[1], names))
    for name, vector in zip(names, together, strict=True):
        assert np.allclose(vector, alone[name], atol=1e-5)


def test_a_lone_search_spins_only_while_it_runs_and_batches_never_spin(embedder: Embedder) -> None:
    from webapp.services.operators import EmbedBatchOp, EmbedOp, _batch_session

    path = str(embedder.model_path)
    search = EmbedOp(path, 2).session.get_session_options()
    assert search.get_session_config_entry("session.intra_op.allow_spinning") == "1"
    assert search.get_session_config_entry("session.force_spinning_stop") == "1"
    tensor = np.zeros((3, embedder.spec.input_size, embedder.spec.input_size), np.float32)
    with ThreadPoolExecutor(1) as pool:  # a batch lowers its own thread's priority
        _, _, vectors = pool.submit(EmbedBatchOp(path, 2), [0], [None], [tensor]).result()
    assert vectors[0] is not None
    batch = _batch_session(path, 2).get_session_options()
    assert batch.get_session_config_entry("session.intra_op.allow_spinning") == "0"


def test_once_images_overlap_the_wide_session_waits_for_a_calm_moment(embedder: Embedder) -> None:
    import threading

    from webapp.services.operators import EmbedOp

    class Recorder:
        def __init__(self, name: str, gate: threading.Event | None = None) -> None:
            self.name, self.gate = name, gate

        def run(self, _outputs: object, _feed: object) -> list[np.ndarray]:
            used.append(self.name)
            if self.gate is not None:
                self.gate.wait(5)
            return [np.ones((1, 4), np.float32)]

    used: list[str] = []
    release = threading.Event()
    op = EmbedOp(str(embedder.model_path), 2)
    op.session, op._narrow = Recorder("wide", release), Recorder("narrow")
    tensor = np.zeros((3, 4, 4), np.float32)
    first = threading.Thread(target=op, args=(tensor,))
    first.start()
    while not used:
        threading.Event().wait(0.001)
    op(tensor)  # starts while the first runs
    release.set()
    first.join()
    op(tensor)  # alone, but right after an overlap
    op.overlaps.overlapped -= op.CALM  # as if CALM seconds had passed
    op(tensor)
    assert used == ["wide", "narrow", "narrow", "wide"]


def test_batched_path_matches_single_and_keeps_order(embedder: Embedder, photos: dict[str, bytes]) -> None:
    names = ["astronaut", "coffee", "rocket", "chelsea", "moon", "camera"]
    items = [(name, photos[name]) for name in names]
    items.insert(2, ("broken", b"not an image"))
    rows = list(embedder.embed_many(items))
    assert [key for key, _, _ in rows] == [key for key, _ in items]
    for key, decoded, vector in rows:
        if key == "broken":
            assert isinstance(decoded, InvalidImage) and vector is None
            continue
        assert isinstance(decoded, Decoded) and vector is not None
        assert np.allclose(vector, embedder.embed(photos[key])[1], atol=1e-4)


def test_near_duplicates_rank_their_original_first(embedder: Embedder, photos: dict[str, bytes]) -> None:
    assert len(photos) >= 20
    names = list(photos)
    library = np.stack([embedder.embed(photos[n])[1] for n in names])
    margins = []
    for i, name in enumerate(names):
        scores = library @ embedder.embed(near_duplicate(photos[name]))[1]
        ranked = np.argsort(-scores)
        assert ranked[0] == i, f"{name}: ranked {names[ranked[0]]} first"
        margins.append(scores[i] - scores[ranked[1]])
    # Typically first by a wide margin, not by a hair (two grey face crops are the closest pair).
    assert np.median(margins) > 0.3


def test_unrelated_photos_score_well_below_near_duplicates(embedder: Embedder, photos: dict[str, bytes]) -> None:
    cat = embedder.embed(photos["chelsea"])[1]
    assert float(cat @ embedder.embed(photos["rocket"])[1]) < 0.5


def test_bad_bytes_raise_the_domain_error(embedder: Embedder) -> None:
    with pytest.raises(InvalidImage):
        embedder.embed(b"\x89PNG\r\n\x1a\n broken")


def test_missing_model_file_says_how_to_build_it(tmp_path: Path) -> None:
    with pytest.raises(ModelMissing, match="make model"):
        Embedder(tmp_path, MODEL)


def test_the_int8_model_stays_close_to_fp32_and_finds_the_same_originals(
    embedder: Embedder, model_dir: Path, photos: dict[str, bytes]
) -> None:
    int8 = Embedder(model_dir, INT8, batch_size=4)
    assert int8.name == INT8 and int8.model_path.stat().st_size < embedder.model_path.stat().st_size / 1.5
    names = list(photos)
    fp32_vectors = np.stack([embedder.embed(photos[n])[1] for n in names])
    int8_vectors = np.stack([int8.embed(photos[n])[1] for n in names])
    cosines = np.sum(fp32_vectors * int8_vectors, axis=1)
    assert cosines.mean() > 0.98 and cosines.min() > 0.9, cosines
    for i, name in enumerate(names):  # a near-duplicate's INT8 vector finds its original's INT8 vector
        assert int(np.argmax(int8_vectors @ int8.embed(near_duplicate(photos[name]))[1])) == i, name


def test_the_int8_models_pointwise_weights_cannot_saturate_a_cpu_without_vnni(model_dir: Path) -> None:
    """Without VNNI, onnxruntime adds pairs of UInt8 x Int8 products in 16 bits: 255 x 64 x 2 fits."""
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(str(model_dir / f"{INT8}.onnx")).graph
    weights = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    made_by = {output: node for node in graph.node for output in node.output}
    largest = {True: 0, False: 0}  # pointwise (ungrouped) or depthwise: the largest quantized weight
    for conv in (n for n in graph.node if n.op_type == "Conv"):
        dequantize = made_by.get(conv.input[1])
        if dequantize is not None and dequantize.op_type == "DequantizeLinear":
            pointwise = next((a.i for a in conv.attribute if a.name == "group"), 1) == 1
            weight = np.abs(weights[dequantize.input[0]].astype(np.int32)).max()
            largest[pointwise] = max(largest[pointwise], int(weight))
    assert largest[True] == 64 and largest[False] == 127, largest  # 7 bits where it overflows, 8 elsewhere


def test_make_model_makes_again_an_int8_file_of_the_earlier_recipe(
    tmp_path: Path, model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An INT8 file with 8-bit pointwise weights (the recipe before 2026-12-01) is replaced, the current one kept."""
    import onnx
    from onnx import numpy_helper

    monkeypatch.syspath_prepend(str(ROOT / "scripts"))
    import quantize_model

    model = onnx.load(str(model_dir / f"{INT8}.onnx"))
    made_by = {output: node for node in model.graph.node for output in node.output}
    quantized = [n for n in model.graph.node if n.op_type == "Conv" and n.input[1] in made_by]
    pointwise = next(n for n in quantized if next((a.i for a in n.attribute if a.name == "group"), 1) == 1)
    initializer = next(i for i in model.graph.initializer if i.name == made_by[pointwise.input[1]].input[0])
    weight = numpy_helper.to_array(initializer).copy()
    weight.flat[0] = 127  # what the earlier recipe's 8-bit weights reach
    initializer.CopyFrom(numpy_helper.from_array(weight, initializer.name))
    earlier = tmp_path / "earlier.onnx"
    onnx.save(model, str(earlier))

    made: list[Path] = []
    monkeypatch.setattr(quantize_model, "quantize", lambda name, fp32, out, *limits: made.append(out))
    fp32 = ["--fp32", str(model_dir / f"{MODEL}.onnx")]
    assert quantize_model.main([*fp32, "--out", str(model_dir / f"{INT8}.onnx")]) == 0
    assert made == []  # the current recipe's file is kept
    assert quantize_model.main([*fp32, "--out", str(earlier)]) == 0
    assert made == [earlier]  # the earlier recipe's file is made again
