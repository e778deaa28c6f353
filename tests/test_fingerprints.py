"""Fingerprints: a copy of a photo keeps its layout, other photos do not, and the duplicate scan's
rule weighs them with the model's similarity (scikit-image's photos; no model)."""

from __future__ import annotations

import io
import itertools

import pytest
from PIL import Image, ImageEnhance, ImageOps

from tests.conftest import PHOTO_NAMES
from webapp.services.fingerprints import CLOSE, FAR, FLOOR, Fingerprint, fingerprint, same_picture
from webapp.services.imaging import decode


def printed(data: bytes) -> Fingerprint:
    return fingerprint(decode(data, 64_000_000, draft=128).image)


def saved(img: Image.Image, quality: int = 90) -> bytes:
    out = io.BytesIO()
    img.save(out, "JPEG", quality=quality)
    return out.getvalue()


def bits(a: int, b: int) -> int:
    return (a ^ b).bit_count()


@pytest.mark.parametrize("name", ["chelsea", "rocket", "page", "retina"])
def test_a_copy_keeps_the_layout_of_its_photo(photos: dict[str, bytes], name: str) -> None:
    img = Image.open(io.BytesIO(photos[name])).convert("RGB")
    original = printed(photos[name])
    copies = {
        "JPEG quality 30": saved(img, 30),
        "halved": saved(img.resize((img.width // 2, img.height // 2))),
        "recoloured": saved(ImageEnhance.Brightness(ImageEnhance.Color(img).enhance(1.5)).enhance(0.8)),
    }
    apart = {kind: bits(original[0], printed(data)[0]) for kind, data in copies.items()}
    assert all(n <= CLOSE // 2 for n in apart.values()), apart
    mirrored = printed(saved(ImageOps.mirror(img)))
    assert bits(original[0], mirrored[0]) > FAR  # a mirror image has another layout...
    assert bits(original[1], mirrored[0]) <= CLOSE // 2  # ...which is the mirrored layout of the photo


def test_other_photos_have_other_layouts(photos: dict[str, bytes]) -> None:
    prints = {name: printed(photos[name]) for name in PHOTO_NAMES}
    closest = min(bits(prints[a][0], prints[b][0]) for a, b in itertools.combinations(prints, 2))
    assert closest > CLOSE + 4, closest  # 20 here: two dark, nearly even pictures (cells, the Hubble deep field)


def test_the_rule_weighs_the_model_and_the_layout(photos: dict[str, bytes]) -> None:
    chelsea, rocket = printed(photos["chelsea"]), printed(photos["rocket"])
    img = Image.open(io.BytesIO(photos["chelsea"])).convert("RGB")
    copy, mirrored = printed(saved(img, 30)), printed(saved(ImageOps.mirror(img)))
    assert same_picture(0.85, chelsea, copy, 0.96)  # the model finds a copy less alike than the threshold
    assert not same_picture(FLOOR - 0.01, chelsea, copy, 0.96)  # too unlike to the model whatever the layout
    assert not same_picture(0.99, chelsea, rocket, 0.96)  # alike to the model, but other layouts (two textures)
    assert same_picture(0.97, chelsea, mirrored, 0.96)  # a mirror image, as alike as the threshold asks
    assert not same_picture(0.90, chelsea, mirrored, 0.96)  # ...but not below it: symmetric pictures' halves
    assert same_picture(0.96, None, rocket, 0.96) and not same_picture(0.95, chelsea, None, 0.96)  # unread: model only
