"""Fingerprints: a copy of a photo keeps its layout, other photos do not, and the duplicate scan's
rule weighs them with the model's similarity (scikit-image's photos; no model)."""

from __future__ import annotations

import io
import itertools
import random
from collections import Counter

import numpy as np
import pytest
from PIL import Image, ImageEnhance, ImageOps
from skimage import data as skdata

from tests.conftest import PHOTO_NAMES
from webapp.services import hamming
from webapp.services.fingerprints import (
    CLOSE,
    FAR,
    FLOOR,
    LOW_FLOOR,
    VERY_CLOSE,
    Fingerprint,
    Layouts,
    close_copies,
    close_to,
    fingerprint,
    from_bytes,
    layout_apart,
    same_layout,
    same_picture,
    to_bytes,
    turn_apart,
    turned_shapes,
    very_close,
)
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
    apart = {kind: bits(original.bits, printed(data).bits) for kind, data in copies.items()}
    assert all(n <= CLOSE // 2 for n in apart.values()), apart
    mirrored = printed(saved(ImageOps.mirror(img)))
    assert bits(original.bits, mirrored.bits) > FAR  # a mirror image has another layout...
    assert bits(original.mirrored, mirrored.bits) <= CLOSE // 2  # ...which is the mirrored layout of the photo


@pytest.mark.parametrize("name", ["chelsea", "rocket", "page"])
def test_a_copy_turned_a_quarter_keeps_the_layout_turned(photos: dict[str, bytes], name: str) -> None:
    img = Image.open(io.BytesIO(photos[name])).convert("RGB")
    original = printed(photos[name])
    clockwise = printed(saved(img.transpose(Image.Transpose.ROTATE_270), 40))
    anticlockwise = printed(saved(img.transpose(Image.Transpose.ROTATE_90), 40))
    assert clockwise.shape == anticlockwise.shape == original.shape[::-1]
    assert (
        bits(original.turned[0], clockwise.bits) <= CLOSE // 2
        and bits(original.turned[1], anticlockwise.bits) <= CLOSE // 2
    )
    for turned in (clockwise, anticlockwise):
        assert bits(original.bits, turned.bits) > FAR  # as they are: two layouts
        assert layout_apart(original, turned) == layout_apart(turned, original) <= CLOSE // 2
        assert same_layout(original, turned) and same_picture(0.85, turned, original, 0.96)


@pytest.mark.parametrize(("name", "degrees"), [("clock", 3), ("rocket", -3), ("coffee", -3)])
def test_a_copy_rotated_a_few_degrees_keeps_the_layout_of_its_centre(
    photos: dict[str, bytes], name: str, degrees: int
) -> None:
    """A print scanned twice: rotated, with white corners where the rotation brought them in."""
    img = Image.open(io.BytesIO(photos[name])).convert("RGB")
    original = printed(photos[name])
    rotated = printed(saved(img.rotate(degrees, Image.Resampling.BICUBIC, expand=True, fillcolor="white")))
    assert bits(original.bits, rotated.bits) > CLOSE  # its edges moved...
    assert bits(original.centre, rotated.centre) <= CLOSE // 2  # ...its centre barely
    assert same_layout(original, rotated) and same_picture(0.85, rotated, original, 0.96)


def test_a_turned_layout_counts_only_between_turned_shapes() -> None:
    """The corners of a round retina, square, are each other's quarter turns: not one picture."""
    retina = Image.fromarray(skdata.retina()).convert("RGB")
    side = round(retina.width * 0.4)
    nw, ne = (fingerprint(retina.crop((left, 0, left + side, side))) for left in (0, retina.width - side))
    assert min(bits(turn, nw.bits) for turn in ne.turned) <= CLOSE // 2  # ne turned is laid out as nw...
    assert not same_layout(nw, ne) and not same_picture(0.95, nw, ne, 0.96)  # ...but keeps its shape
    assert turned_shapes((640, 480), (480, 640)) and turned_shapes((451, 300), (213, 320))  # a thumbnail's rounding
    assert not turned_shapes((512, 500), (500, 512))  # nearly square: a turn leaves its shape
    assert not turned_shapes((640, 480), (480, 720)) and not turned_shapes((640, 480), (640, 480))


def test_a_photo_saved_sideways_is_the_same_picture_however_unlike_to_the_model(photos: dict[str, bytes]) -> None:
    """The rocket turned anticlockwise is 0.54-0.58 alike to the model (README, Near-duplicates)."""
    rocket = Image.open(io.BytesIO(photos["rocket"])).convert("RGB")
    original, sideways = printed(photos["rocket"]), printed(saved(rocket.transpose(Image.Transpose.ROTATE_90), 40))
    assert turned_shapes(original.shape, sideways.shape) and turn_apart(original, sideways) <= VERY_CLOSE // 2
    assert same_picture(0.55, original, sideways, 0.96) and same_picture(LOW_FLOOR, sideways, original, 0.96)
    assert not same_picture(LOW_FLOOR - 0.01, original, sideways, 0.96)  # nothing at all alike to the model
    chelsea = printed(photos["chelsea"])  # a landscape picture too: not one turn from the other
    assert not same_picture(0.79, chelsea, Fingerprint(*sideways[:4], chelsea.shape[::-1]), 0.96)
    nearly = Fingerprint(original.turned[1] ^ (1 << VERY_CLOSE + 1) - 1, 0, (0, 0), 0, sideways.shape)  # 9 bits
    assert turn_apart(original, nearly) > VERY_CLOSE and not same_picture(0.79, original, nearly, 0.96)


def test_a_photo_rotated_a_few_degrees_is_the_same_picture_by_its_centre_however_unlike_to_the_model(
    photos: dict[str, bytes],
) -> None:
    """The cells rotated 3 degrees with white corners are 0.65-0.69 alike to the model (README,
    Near-duplicates): their whole layouts 12 to 14 bits apart, their centres 4 to 6."""
    cell = Image.open(io.BytesIO(photos["cell"])).convert("RGB")
    original = printed(photos["cell"])
    for angle in (-3, 3):
        askew = printed(saved(cell.rotate(angle, Image.Resampling.BICUBIC, expand=True, fillcolor="white")))
        assert bits(original.bits, askew.bits) > VERY_CLOSE >= bits(original.centre, askew.centre), angle
        assert very_close(original, askew) and same_picture(0.65, original, askew, 0.96)
        assert not same_picture(LOW_FLOOR - 0.01, original, askew, 0.96)
    other = printed(photos["coins"])  # another photo's centre, 9 bits from the cells'
    nearly = Fingerprint(other.bits, other.mirrored, other.turned, original.centre ^ (1 << VERY_CLOSE + 1) - 1, (9, 9))
    assert not very_close(original, nearly) and not same_picture(0.79, original, nearly, 0.96)


@pytest.mark.parametrize("index", [False, True])
def test_close_copies_finds_each_pair_a_comparison_of_every_two_would(
    monkeypatch: pytest.MonkeyPatch, index: bool
) -> None:
    """Random layouts in shapes of photos, thumbnails and nearly squares, and a tenth of them another's,
    as it is, at its centre or turned, with up to 11 bits changed; compared two by two in numpy
    (few layouts) or looked up by their bits (services/hamming.py)."""
    monkeypatch.setattr(hamming, "EVERY_TWO", 0 if index else 1 << 40)
    rng = random.Random(7)
    shapes = [(640, 480), (480, 640), (500, 500), (1920, 1080), (1080, 1920), (451, 300), (213, 320), (528, 480)]
    shapes += [(480, 505), (550, 500), (500, 550)]  # the last three only nearly square: 1.05 and 1.10

    def noise(layout: int) -> int:
        return layout ^ sum(1 << rng.randrange(63) for _ in range(rng.randrange(12)))

    prints: list[Fingerprint] = []
    for _ in range(1200):
        layouts = [rng.getrandbits(63) for _ in range(4)]
        made = Fingerprint(layouts[0], 0, (layouts[1], layouts[2]), layouts[3], rng.choice(shapes))
        if prints and rng.random() < 0.1:
            other, kind = rng.choice(prints), rng.randrange(4)
            if kind == 0:  # as it is
                made = made._replace(bits=noise(other.bits), shape=other.shape)
            elif kind == 1:  # its centre
                made = made._replace(centre=noise(other.centre))
            else:  # turned one way, or the other way (turned back, it is the other, or half the time not)
                way, back = kind - 2, noise(other.bits) if rng.random() < 0.5 else made.turned[1 - (kind - 2)]
                turned = (made.turned[0], back) if way == 0 else (back, made.turned[1])
                made = Fingerprint(noise(other.turned[way]), 0, turned, made.centre, other.shape[::-1])
        prints.append(made)
    expected = {(a, b) for a, b in itertools.combinations(range(len(prints)), 2) if very_close(prints[a], prints[b])}
    assert len(expected) > 70  # most of the copies
    assert set(close_copies(Layouts.of(prints))) == expected
    blank = [Fingerprint(0, 0, (0, 0), 0, (640, 480) if i % 3 else (480, 640)) for i in range(100)]
    found = close_copies(Layouts.of(blank), most=3)  # each blank frame is every other, and every other turned
    assert 50 <= len(found) <= 150 and max(Counter(i for pair in found for i in pair).values()) <= 3

    # A check's files (the later half) against a library (the first, as the catalogue keeps them).
    library, files = prints[:600], prints[600:]
    stored = Layouts.stored([to_bytes(p) for p in library])
    assert all(np.array_equal(a, b) for a, b in zip(stored, Layouts.of(library), strict=True))
    between = {(q, c) for q, f in enumerate(files) for c, p in enumerate(library) if very_close(f, p)}
    assert len(between) > 25 and set(close_to(Layouts.of(files), stored)) == between
    found = close_to(Layouts.of(blank[:2]), Layouts.of(blank), most=3)
    assert len(found) == 6 and {q for q, _ in found} == {0, 1}


def test_looking_codes_up_by_their_bits_finds_what_comparing_every_two_does(monkeypatch: pytest.MonkeyPatch) -> None:
    """Multi-index hashing (services/hamming.py) against numpy comparing every two: 3,000 random
    codes, a tenth of them near copies of others (up to 11 bits changed), and a crowd of equal codes
    larger than a bucket is looked through."""
    rng = np.random.default_rng(3)
    codes = rng.integers(0, 2**63, size=3000, dtype=np.uint64)
    flips = rng.integers(0, 63, size=(300, 11)).astype(np.uint64)
    copies = codes[:300].copy()
    for k in range(11):
        chosen = rng.random(300) < 0.6
        copies[chosen] ^= np.uint64(1) << flips[chosen, k]
    crowd = np.full(hamming.CROWDED + 45, codes[-1])
    every = np.concatenate([codes, copies, crowd])
    queries = every[::7]
    q, c = np.nonzero(np.bitwise_count(queries[:, None] ^ every[None, :]) <= 8)
    truth = set(zip(q.tolist(), c.tolist(), strict=True))
    monkeypatch.setattr(hamming, "EVERY_TWO", 0)
    found = list(zip(*(a.tolist() for a in hamming.near(every, queries, 8)), strict=True))
    assert len(found) == len(set(found))  # each pair once, however many runs found it
    missed = truth - set(found)
    assert not set(found) - truth and len(truth) > 400
    crowded = {q for q, c in missed}  # only pairs of the crowd, each query's at most its bucket's share
    assert len(crowded) > 10
    assert all(every[c] == codes[-1] for _, c in missed) and all(queries[q] == codes[-1] for q in crowded)
    assert all(sum(1 for q2, _ in found if q2 == q) >= hamming.CROWDED for q in crowded)


def test_a_square_photo_saved_sideways_is_the_same_picture_only_as_alike_as_the_threshold(
    photos: dict[str, bytes],
) -> None:
    """scikit-image's brick wall, 512 px square, turned anticlockwise."""
    brick = Image.open(io.BytesIO(photos["brick"])).convert("RGB")
    original, sideways = printed(photos["brick"]), printed(saved(brick.transpose(Image.Transpose.ROTATE_90)))
    assert original.shape == sideways.shape  # nothing to tell a turn by
    as_they_are = min(bits(original.bits, sideways.bits), bits(original.mirrored, sideways.bits))
    assert as_they_are > FAR and min(bits(turn, sideways.bits) for turn in original.turned) <= CLOSE // 2
    assert same_picture(0.97, original, sideways, 0.96)  # the model vouches for it: a turn, not another layout
    assert not same_picture(0.95, original, sideways, 0.96)  # below the threshold, as the retina's corners


def test_fingerprints_are_kept_as_bytes_and_those_of_the_release_before_are_made_again() -> None:
    print_ = Fingerprint(2**63 + 1, 5, (2**64 - 1, 0), 7, (4000, 3000))
    assert from_bytes(to_bytes(print_)) == print_ and len(to_bytes(print_)) == 48
    assert from_bytes(bytes(16)) is None  # as 9b4fc11 to 8747bcf kept them: no turned layouts, no shape


def test_other_photos_have_other_layouts(photos: dict[str, bytes]) -> None:
    prints = {name: printed(photos[name]) for name in PHOTO_NAMES}
    pairs = list(itertools.combinations(prints, 2))
    closest = min(bits(prints[a].bits, prints[b].bits) for a, b in pairs)
    assert closest > CLOSE + 4, closest  # 20 here: two dark, nearly even pictures (cells, the Hubble deep field)
    centres = min(bits(prints[a].centre, prints[b].centre) for a, b in pairs)
    assert centres > CLOSE + 4, centres


def test_layouts_more_than_far_apart_are_two_pictures_however_alike_to_the_model(photos: dict[str, bytes]) -> None:
    chelsea = printed(photos["chelsea"])

    def flipped(count: int) -> Fingerprint:
        mask = (1 << count) - 1  # the lowest bits of every layout
        turned = (chelsea.turned[0] ^ mask, chelsea.turned[1] ^ mask)
        return Fingerprint(chelsea.bits ^ mask, chelsea.mirrored ^ mask, turned, chelsea.centre ^ mask, chelsea.shape)

    assert same_picture(0.99, chelsea, flipped(FAR), 0.96)
    # Two close-ups of gravel, 0.964 alike and 26 bits apart mirrored, were one picture at FAR 26;
    # 24 bits apart are two (README, Near-duplicates).
    assert not same_picture(0.99, chelsea, flipped(24), 0.96)


def test_the_rule_weighs_the_model_and_the_layout(photos: dict[str, bytes]) -> None:
    chelsea, rocket = printed(photos["chelsea"]), printed(photos["rocket"])
    img = Image.open(io.BytesIO(photos["chelsea"])).convert("RGB")
    copy, mirrored = printed(saved(img, 30)), printed(saved(ImageOps.mirror(img)))
    assert same_picture(0.85, chelsea, copy, 0.96)  # the model finds a copy less alike than the threshold
    assert same_picture(FLOOR - 0.01, chelsea, copy, 0.96)  # below FLOOR, with the layout to the bit
    assert not same_picture(LOW_FLOOR - 0.01, chelsea, copy, 0.96)  # too unlike to the model whatever the layout
    ten = Fingerprint(chelsea.bits ^ (1 << 10) - 1, 0, (0, 0), chelsea.centre ^ (1 << 20) - 1, chelsea.shape)
    assert same_picture(FLOOR, chelsea, ten, 0.96) and not same_picture(FLOOR - 0.01, chelsea, ten, 0.96)  # 10 bits
    assert not same_picture(0.99, chelsea, rocket, 0.96)  # alike to the model, but other layouts (two textures)
    assert same_picture(0.97, chelsea, mirrored, 0.96)  # a mirror image, as alike as the threshold asks
    assert not same_picture(0.90, chelsea, mirrored, 0.96)  # ...but not below it: symmetric pictures' halves
    assert same_picture(0.96, None, rocket, 0.96) and not same_picture(0.95, chelsea, None, 0.96)  # unread: model only
