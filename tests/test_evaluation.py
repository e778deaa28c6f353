"""`flask --app wsgi evaluate`: the metrics on hand-made rankings, then both modes with the real model."""

from __future__ import annotations

import io
import json
import random
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from flask import Flask
from PIL import Image

from tests.conftest import MODEL
from webapp import create_app
from webapp.evaluation import Report, evaluate_near_duplicates, side_by_side
from webapp.evaluation_copies import AUGMENTATIONS, DUPLICATE_COPIES, augment
from webapp.evaluation_scores import (
    THRESHOLDS,
    average_precision,
    group_scores,
    hit_at,
    leave_one_out,
    precision_at,
    ranked_relevance,
    suggest_threshold,
    target_ranks,
)
from webapp.models import DEFAULT
from webapp.runtime import EXTENSION
from webapp.services.embedding import Embedder

CLASS_PHOTOS = ["astronaut", "chelsea", "coffee", "rocket", "moon", "text"]
NEAR_DUPLICATE_PHOTOS = [
    "astronaut",
    "brick",
    "camera",
    "chelsea",
    "clock",
    "coffee",
    "coins",
    "moon",
    "page",
    "rocket",
]


def unit_circle(degrees: list[float]) -> np.ndarray:
    """Return unit vectors at the given angles: their cosines are easy to rank by hand."""
    radians = np.radians(degrees)
    return np.stack([np.cos(radians), np.sin(radians)], axis=1).astype(np.float32)


def test_average_precision_of_known_rankings() -> None:
    relevant = np.array([[1, 0, 1, 0], [1, 1, 0, 0], [0, 0, 0, 1], [0, 0, 0, 0]], dtype=bool)
    assert average_precision(relevant) == pytest.approx([(1 + 2 / 3) / 2, 1.0, 0.25, 0.0])
    assert precision_at(relevant, 2) == pytest.approx([0.5, 1.0, 0.0, 0.0])
    assert hit_at(relevant, 3).tolist() == [True, True, False, False]


def test_ranked_relevance_sorts_by_falling_similarity() -> None:
    sims = np.array([[0.1, 0.9, 0.5], [0.7, 0.2, 0.3]])
    relevant = ranked_relevance(sims, np.array([0, 1]), np.array([0, 0, 1]))
    assert relevant.tolist() == [[True, False, True], [False, True, False]]


def test_leave_one_out_on_points_of_a_circle() -> None:
    # a0 and a1 are class 0, b0 and b1 class 1, c alone in class 2 (a distractor, never a query).
    # Rankings by angle: a0 -> a1 b0 b1 c; a1 -> b0 a0 b1 c; b0 -> a1 a0 b1 c; b1 -> b0 a1 a0 c.
    vectors = unit_circle([0, 20, 30, 90, 200])
    queries, scores = leave_one_out(vectors, np.array([0, 0, 1, 1, 2]), [1, 2])
    assert queries == 4
    assert scores["precision@1"] == pytest.approx(0.5)
    assert scores["precision@10"] == pytest.approx(0.1)
    assert scores["mAP"] == pytest.approx((1 + 1 / 2 + 1 / 3 + 1) / 4)
    assert scores["recall@1"] == pytest.approx(0.5) and scores["recall@2"] == pytest.approx(0.75)


def test_target_ranks_count_the_items_above_the_target() -> None:
    sims = np.array([[0.9, 0.5, 0.95], [0.1, 0.8, 0.2], [0.3, 0.3, 0.1]])
    assert target_ranks(sims, np.array([0, 1, 1])).tolist() == [1, 0, 0]  # a tie does not count against


def copy_of(img: Image.Image, name: str, rng: random.Random, table: Any = None) -> bytes:
    data = augment(img, name, rng, table)
    assert data is not None
    return data


def test_augmentations_make_the_copies_they_name() -> None:
    img = Image.new("RGB", (200, 100), (200, 40, 40))
    sizes = {name: Image.open(io.BytesIO(copy_of(img, name, random.Random(0)))).size for name in AUGMENTATIONS}
    assert sizes["crop"] == (160, 80) and sizes["resize"] == (120, 60) and sizes["jpeg"] == (200, 100)
    assert sizes["rotate"][0] > 200 and sizes["rotate"][1] > 100  # expanded, corners filled
    colour = Image.open(io.BytesIO(copy_of(img, "colour", random.Random(0)))).getpixel((100, 50))
    assert colour != (200, 40, 40)


def test_a_duplicate_turned_a_quarter_is_made_of_oblong_pictures_only() -> None:
    oblong, square = Image.new("RGB", (300, 200), (200, 40, 40)), Image.new("RGB", (210, 200), (200, 40, 40))
    turned = copy_of(oblong, "turn", random.Random(0), DUPLICATE_COPIES)
    assert Image.open(io.BytesIO(turned)).size == (200, 300)
    assert augment(square, "turn", random.Random(0), DUPLICATE_COPIES) is None  # it would keep its shape


def class_folder(root: Path, photos: dict[str, bytes]) -> Path:
    """Six classes, each four augmented copies of one photo, plus a broken file and a stray one."""
    folder = root / "classes"
    for name in CLASS_PHOTOS:
        (folder / name).mkdir(parents=True)
        img = Image.open(io.BytesIO(photos[name])).convert("RGB")
        for aug in ["crop", "rotate", "colour", "jpeg"]:
            (folder / name / f"{aug}.jpg").write_bytes(copy_of(img, aug, random.Random(name)))
    (folder / "moon" / "broken.jpg").write_bytes(b"\xff\xd8\xff")
    (folder / "not-in-a-class.jpg").write_bytes(photos["coins"])
    return folder


def test_class_mode_finds_each_photo_s_copies(app: Flask, tmp_path: Path, photos: dict[str, bytes]) -> None:
    folder = class_folder(tmp_path, photos)
    out = tmp_path / "figures.json"
    result = app.test_cli_runner().invoke(args=["evaluate", str(folder), "--k", "1,3", "--json", str(out)])
    assert result.exit_code == 0, result.output
    assert "24 images, 6 classes, 24 queries, 1 unreadable skipped" in result.output
    assert "skipped: moon/broken.jpg:" in result.output
    figures = json.loads(out.read_text())
    assert figures["mode"] == "classes" and figures["model"] == DEFAULT
    scores = figures["scores"]["all"]
    assert list(scores) == ["precision@1", "precision@10", "mAP", "recall@1", "recall@3"]
    assert scores["precision@1"] >= 0.95 and scores["recall@3"] == 1.0
    assert scores["mAP"] >= 0.9
    assert scores["precision@10"] <= 0.3 + 1e-9  # only three others share a class
    assert figures["images_per_second"] > 0


def test_the_app_s_own_model_is_loaded_once(app: Flask, tmp_path: Path, photos: dict[str, bytes]) -> None:
    folder = class_folder(tmp_path, photos)
    runner = app.test_cli_runner()
    assert runner.invoke(args=["evaluate", str(folder), "--model", DEFAULT]).exit_code == 0
    assert app.extensions[EXTENSION].built("embedder")


def test_near_duplicate_mode_recalls_the_originals(model_dir: Path, tmp_path: Path, photos: dict[str, bytes]) -> None:
    folder = tmp_path / "library"
    (folder / "deeper").mkdir(parents=True)
    for i, name in enumerate(NEAR_DUPLICATE_PHOTOS):
        (folder / ("deeper" if i % 2 else "") / f"{name}.jpg").write_bytes(photos[name])
    report = evaluate_near_duplicates(Embedder(model_dir, MODEL, batch_size=8), folder, [1, 5], max_pixels=10**8)
    assert report.counts == {"originals": 10, "queries": 50}
    assert list(report.scores) == [*AUGMENTATIONS, "all"]
    assert report.scores["all"]["recall@1"] >= 0.9
    assert report.scores["all"]["recall@5"] >= report.scores["all"]["recall@1"]
    assert "recall@1" in report.table() and "jpeg" in report.table()


@pytest.mark.parametrize("flags", [[], ["--near-duplicates"]])
def test_a_folder_without_usable_images_exits_1(app: Flask, tmp_path: Path, flags: list[str]) -> None:
    empty = tmp_path / "empty"
    (empty / "a-class").mkdir(parents=True)
    result = app.test_cli_runner().invoke(args=["evaluate", str(empty), *flags])
    assert result.exit_code == 1 and "no usable images" in result.output
    (empty / "a-class" / "bad.png").write_bytes(b"nope")
    result = app.test_cli_runner().invoke(args=["evaluate", str(empty), *flags])
    assert result.exit_code == 1 and "skipped: a-class/bad.png:" in result.output


@pytest.mark.parametrize(
    ("model", "command"), [("efficientnet-lite0", "make model"), ("efficientnet-lite2", "make model-lite2")]
)
def test_a_missing_model_says_how_to_build_it(tmp_path: Path, model: str, command: str) -> None:
    app = create_app({"TESTING": True, "DATA_DIR": str(tmp_path / "data"), "MODEL_DIR": str(tmp_path / "none")})
    result = app.test_cli_runner().invoke(args=["evaluate", str(tmp_path), "--model", model])
    assert result.exit_code == 1 and f"`{command}`" in result.output


def test_bad_cut_offs_are_refused(app: Flask, tmp_path: Path) -> None:
    result = app.test_cli_runner().invoke(args=["evaluate", str(tmp_path), "--k", "0"])
    assert result.exit_code == 2 and "at least 1" in result.output


def test_two_models_side_by_side(app: Flask, tmp_path: Path, photos: dict[str, bytes]) -> None:
    folder = class_folder(tmp_path, photos)
    out = tmp_path / "both.json"
    args = ["evaluate", str(folder), "--model", "efficientnet-lite0", "--model", "efficientnet-lite0-int8"]
    result = app.test_cli_runner().invoke(args=[*args, "--json", str(out)])
    assert result.exit_code == 0, result.output
    header = next(line for line in result.output.splitlines() if "difference" in line)
    assert header.split() == ["efficientnet-lite0", "efficientnet-lite0-int8", "difference"]
    row = next(line for line in result.output.splitlines() if line.startswith("all precision@1"))
    fp32, int8, change = (float(v) for v in row.split()[2:])
    assert change == pytest.approx(int8 - fp32, abs=1e-3)
    assert [figures["model"] for figures in json.loads(out.read_text())] == [args[3], args[5]]


def test_side_by_side_shows_rows_only_one_model_has() -> None:
    # Each model's per-copy rows are at its own best threshold: 0.96 for one, 0.91 for the other.
    def report(model: str, best: str, recall: float) -> Report:
        scores = {"t=0.96": {"f1": 0.5}, f"crop@{best}": {"f1": float("nan"), "recall": recall}}
        return Report("duplicates", model, "dir", {"copies": 5}, [], 100.0, scores)

    table = side_by_side([report("a", "0.96", 0.8), report("b", "0.91", 0.9)]).splitlines()
    assert next(line for line in table if line.startswith("t=0.96 f1")).split()[2:] == ["0.500", "0.500", "+0.000"]
    assert next(line for line in table if line.startswith("crop@0.96 recall")).split()[2:] == ["0.800", "—"]
    assert next(line for line in table if line.startswith("crop@0.91 recall")).split()[2:] == ["—", "0.900"]


def test_group_scores_count_pairs_of_the_groups_a_threshold_makes() -> None:
    # Images 0-2 are one photo and its copies, 3-4 another, 5 alone; 2 and 5 are alike by chance.
    sims = np.eye(6)
    for a, b, s in [(0, 1, 0.97), (1, 2, 0.93), (3, 4, 0.95), (2, 5, 0.94), (0, 2, 0.9)]:
        sims[a, b] = sims[b, a] = s
    origins = np.array([0, 0, 0, 3, 3, 5])
    assert group_scores(sims, origins, 0.96) == {"precision": 1.0, "recall": 0.25, "f1": 0.4, "groups": 1.0}
    chained = group_scores(sims, origins, 0.93)  # 0-1-2-5 chained, 3-4: of 7 pairs grouped, 4 are true
    assert chained["precision"] == pytest.approx(4 / 7) and chained["recall"] == 1.0
    assert suggest_threshold({"t=0.93": chained, "t=0.96": group_scores(sims, origins, 0.96)}) == "t=0.93"


def test_duplicates_mode_prints_precision_and_recall_per_threshold(
    app: Flask, tmp_path: Path, photos: dict[str, bytes]
) -> None:
    folder = tmp_path / "mixed"
    folder.mkdir()
    for name in ("chelsea", "rocket", "coffee", "astronaut"):
        (folder / f"{name}.jpg").write_bytes(photos[name])
    out = tmp_path / "figures.json"
    result = app.test_cli_runner().invoke(args=["evaluate", str(folder), "--duplicates", "--json", str(out)])
    assert result.exit_code == 0, result.output
    assert "4 distinct images, 4 with copies, 23 copies" in result.output  # astronaut, square, is not turned
    assert "best F1 at threshold" in result.output and "configured: DUPLICATE_THRESHOLD=0.96" in result.output
    figures = json.loads(out.read_text())
    assert figures["mode"] == "duplicates"
    rows = figures["scores"]
    assert rows["t=0.80"]["recall"] >= rows["t=0.99"]["recall"]
    kinds = {key.split("@")[0] for key in rows if "@" in key}
    assert kinds == {"crop", "resize", "reencode", "rotate", "colour", "turn"}
    assert all(0 <= rows[f"t={t:.2f}"]["precision"] <= 1 for t in THRESHOLDS)
    both = app.test_cli_runner().invoke(args=["evaluate", str(folder), "--duplicates", "--near-duplicates"])
    assert both.exit_code == 2 and "not both" in both.output
    some = app.test_cli_runner().invoke(args=["evaluate", str(folder), "--duplicates", "--copies", "crop,turn"])
    assert some.exit_code == 0 and "4 distinct images, 4 with copies, 7 copies" in some.output, some.output
    assert "turn@" in some.output and "resize@" not in some.output
    for wrong, message in (
        (["--duplicates", "--copies", "crop,tilt"], "unknown kind tilt"),
        (["--copies", "crop"], "goes with"),
    ):
        refused = app.test_cli_runner().invoke(args=["evaluate", str(folder), *wrong])
        assert refused.exit_code == 2 and message in refused.output, refused.output
    square = tmp_path / "square"
    square.mkdir()
    (square / "astronaut.jpg").write_bytes(photos["astronaut"])
    unturned = app.test_cli_runner().invoke(args=["evaluate", str(square), "--duplicates", "--copies", "turn"])
    assert unturned.exit_code == 1 and "no copy could be made" in unturned.output, unturned.output
