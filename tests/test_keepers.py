"""The suggested keeper of a near-duplicate group (services/keepers.py): the most of the picture's
pixels, the fill a rotation or a padding brings in left out (scikit-image's photos; no model)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageOps
from skimage import data as skdata

from webapp.services.keepers import MORE_FILL, Copy, fill, keeper
from webapp.services.records import Record


def saved(tmp_path: Path, name: str, img: Image.Image, quality: int = 90) -> Path:
    path = tmp_path / f"{name}.jpg"
    img.save(path, "JPEG", quality=quality)
    return path


def copy_of(path: Path, added_at: int = 0) -> Copy:
    with Image.open(path) as img:
        width, height = img.size
    return Copy(Record(path.stem, path.name, width, height, "", "image/jpeg", added_at), path, path)


def askew(img: Image.Image, angle: float, colour: str = "white") -> Image.Image:
    return img.rotate(angle, Image.Resampling.BICUBIC, expand=True, fillcolor=colour)


def product() -> Image.Image:
    """A dark object on a white backdrop: all four corners one colour, as a fill's."""
    pixels = np.full((400, 600, 3), 255, np.uint8)
    pixels[80:320, 180:420] = skdata.chelsea()[:240, :240]
    return Image.fromarray(pixels)


@pytest.mark.parametrize("name", ["chelsea", "coffee", "rocket"])
def test_a_photo_has_no_fill_and_a_copy_rotated_or_padded_has_its_corners_or_bars(tmp_path: Path, name: str) -> None:
    photo = Image.fromarray(getattr(skdata, name)()).convert("RGB")
    assert fill(saved(tmp_path, "photo", photo)) == 0.0  # its corners differ
    rotated = askew(photo, 3)
    added = 1 - photo.width * photo.height / (rotated.width * rotated.height)  # the corners brought in
    assert fill(saved(tmp_path, "rotated", rotated)) == pytest.approx(added, abs=0.02)
    assert fill(saved(tmp_path, "black", askew(photo, -10, "black"))) > 0.2
    wide = ImageOps.pad(photo, (photo.height * 2, photo.height), color="black")  # bars left and right
    assert fill(saved(tmp_path, "wide", wide)) == pytest.approx(1 - photo.width / wide.width, abs=0.02)
    tall = ImageOps.pad(photo, (photo.width, photo.width * 2), color="black")  # bars above and below
    assert fill(saved(tmp_path, "tall", tall)) == pytest.approx(1 - photo.height / tall.height, abs=0.02)


def test_the_keeper_is_the_photo_not_its_copy_rotated_or_padded_with_more_pixels(tmp_path: Path) -> None:
    """Before 2026-12-04 the copy rotated 3 degrees (9% more pixels, white corners) was suggested."""
    photo = Image.fromarray(skdata.coffee())
    copies = {
        "photo": saved(tmp_path, "photo", photo),
        "rotated": saved(tmp_path, "rotated", askew(photo, 3)),
        "padded": saved(tmp_path, "padded", ImageOps.pad(photo, (photo.height * 16 // 9, photo.height))),
        "halved": saved(tmp_path, "halved", photo.resize((photo.width // 2, photo.height // 2))),
    }
    group = {name: copy_of(path) for name, path in copies.items()}
    assert group["rotated"].record.width * group["rotated"].record.height > photo.width * photo.height
    assert keeper(group) == "photo"
    assert keeper({k: v for k, v in group.items() if k != "photo"}) == "rotated"  # the most of the picture left
    unmeasured = {name: Copy(c.record, c.original, None) for name, c in group.items()}
    assert keeper(unmeasured) == "padded"  # no file to measure: the most pixels, as before


def test_copies_on_one_backdrop_are_kept_by_the_rest_whatever_their_fill(tmp_path: Path) -> None:
    """Both copies of a product shot count their backdrop as fill: neither is padded more than the
    other, so the larger file (the higher JPEG quality) is kept; rotated, it is padded more."""
    shot = product()
    assert fill(saved(tmp_path, "probe", shot)) > 0.5
    group = {
        "low": copy_of(saved(tmp_path, "low", shot, 60)),
        "high": copy_of(saved(tmp_path, "high", shot, 95)),
    }
    assert keeper(group) == "high"
    group["rotated"] = copy_of(saved(tmp_path, "rotated", askew(shot, 3), 95))  # more pixels, fill of one colour
    filled = {name: fill(c.seen) * c.record.width * c.record.height for name, c in group.items() if c.seen}
    pixels = group["high"].record.width * group["high"].record.height
    assert filled["rotated"] - filled["high"] > MORE_FILL * pixels > abs(filled["high"] - filled["low"]), filled
    assert keeper(group) == "high"


def test_a_file_that_cannot_be_read_has_no_fill(tmp_path: Path) -> None:
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8\xff not a JPEG")
    assert fill(tmp_path / "broken.jpg") == 0.0 and fill(tmp_path / "gone.jpg") == 0.0


@pytest.mark.parametrize("corner", ["nw", "c"])
def test_a_dark_sky_reaching_the_edges_is_not_fill(tmp_path: Path, corner: str) -> None:
    """The black between the Hubble deep field's galaxies runs from its edges as a fill would, but
    not in straight lines: while it counted, a crop of the evaluation's views of it (40% a side) was
    suggested over the view (a one-off run of the evaluation's copies, 2026-12-04)."""
    sky = Image.fromarray(skdata.hubble_deep_field()).convert("RGB")
    width, height = round(sky.width * 0.4), round(sky.height * 0.4)
    left, top = (0, 0) if corner == "nw" else ((sky.width - width) // 2, (sky.height - height) // 2)
    view = saved(tmp_path, "view", sky.crop((left, top, left + width, top + height)), 92)
    with Image.open(view) as img:
        w, h = img.size
        trimmed = img.crop((round(w * 0.05), round(h * 0.05), round(w * 0.95), round(h * 0.95)))
    crop = saved(tmp_path, "crop", trimmed)
    assert fill(view) == 0.0
    assert keeper({"view": copy_of(view), "crop": copy_of(crop)}) == "view"
