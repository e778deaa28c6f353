"""The multipart decoder that finds boundaries with bytes.find: the same matches and forms as Werkzeug's own."""

from __future__ import annotations

import io
import re
from typing import Any

import numpy as np
import pytest
from flask.testing import FlaskClient
from werkzeug import formparser
from werkzeug.sansio.multipart import MultipartDecoder

from webapp.multipart import BoundaryFindingDecoder, _Boundary

BOUNDARIES = [
    b"b0undary7f3a",
    b"----WebKitFormBoundary7MA4YWxkTrZu0gW",  # a browser's: dashes first
    b"------------------------d74496d66958873e",  # curl's
    b"--",  # only dashes: occurrences of "----" overlap
]


def body(
    parts: list[tuple[str, str | None, bytes]],
    boundary: bytes,
    line: bytes = b"\r\n",
    preamble: bytes = b"",
    epilogue: bytes = b"",
) -> bytes:
    """Encode (name, filename or None, data) parts as a multipart body with the given line break."""
    out = preamble
    for name, filename, data in parts:
        disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
        out += b"--" + boundary + line + f"Content-Disposition: {disposition}".encode() + line + line + data + line
    return out + b"--" + boundary + b"--" + epilogue + line


def parse(data: bytes, boundary: bytes, decoder: type[MultipartDecoder], buffer_size: int) -> tuple[Any, Any]:
    """Parse a body with the given decoder class; return its fields and files as comparable lists."""
    previous = formparser.MultipartDecoder
    formparser.MultipartDecoder = decoder  # type: ignore[misc]
    try:
        parser = formparser.MultiPartParser(buffer_size=buffer_size)
        fields, files = parser.parse(io.BytesIO(data), boundary, len(data))
    finally:
        formparser.MultipartDecoder = previous  # type: ignore[misc]
    return list(fields.items(multi=True)), [(k, f.filename, f.read()) for k, f in files.items(multi=True)]


RNG = np.random.default_rng(3)
NOISE = RNG.integers(0, 256, 70_000, dtype=np.uint8).tobytes()  # holds \r, \n and "--" by chance


def bodies(b: bytes) -> dict[str, bytes]:
    """Bodies of every shape for the boundary ``b``."""
    return {
        "a field and a binary file": body([("top_k", None, b"10"), ("image", "q.jpg", NOISE)], b),
        "the boundary inside the data without a line break": body(
            [("image", "q.jpg", b"x--" + b + b"y" + NOISE[:5000] + b"\r--" + b[:-1])], b
        ),
        "the boundary after a line break, then neither dashes nor a line break": body(
            [("image", "q.jpg", b"a\r\n--" + b + b"x\r\n--" + b + b" y" + NOISE[:300])], b
        ),
        "line breaks as LF only": body([("top_k", None, b"5"), ("image", "a.png", NOISE[:3000])], b, line=b"\n"),
        "line breaks as CR only": body([("image", "a.png", b"abc\r\rdef")], b, line=b"\r"),
        "a line break of LF then CR": body([("image", "a.png", b"abc\n")], b, line=b"\r"),
        "a preamble": body([("image", "a.png", NOISE[:500])], b, preamble=b"This is a preamble.\r\n"),
        "a preamble without a line break": body([("image", "a.png", b"x")], b, preamble=b"text"),
        "an empty file and an empty field": body([("album", None, b""), ("image", "empty.jpg", b"")], b),
        "whitespace after the closing boundary": body([("image", "q.jpg", NOISE[:100])], b, epilogue=b" \t"),
        "data ending in line breaks": body([("image", "q.jpg", NOISE[:2000] + b"\r\n\r\n")], b),
        "data ending in dashes": body([("image", "q.jpg", NOISE[:200] + b"---")], b),
    }


@pytest.mark.parametrize("buffer_size", [7, 64, 1000, 64 * 1024])
@pytest.mark.parametrize("boundary", BOUNDARIES, ids=lambda b: b.decode()[:12])
def test_the_boundary_finding_decoder_parses_every_body_as_werkzeugs_own(boundary: bytes, buffer_size: int) -> None:
    """Every body, read in chunks that split boundaries anywhere, gives the same fields and files (or error)."""
    for name, data in bodies(boundary).items():
        try:
            expected: Any = parse(data, boundary, MultipartDecoder, buffer_size)
        except ValueError as exc:  # a body Werkzeug refuses is refused alike
            expected = ("refused", str(exc))
        try:
            got: Any = parse(data, boundary, BoundaryFindingDecoder, buffer_size)
        except ValueError as exc:
            got = ("refused", str(exc))
        assert got == expected, name
    assert parse(bodies(boundary)["a field and a binary file"], boundary, BoundaryFindingDecoder, buffer_size)[1]


def werkzeugs_expressions(boundary: bytes) -> tuple[re.Pattern[bytes], re.Pattern[bytes]]:
    """Return the preamble's and a part's boundary expression as Werkzeug compiles them."""
    stock = MultipartDecoder(boundary)
    return stock.preamble_re, stock.boundary_re


@pytest.mark.parametrize("boundary", BOUNDARIES, ids=lambda b: b.decode()[:12])
def test_a_boundary_search_finds_what_werkzeugs_expression_finds(boundary: bytes) -> None:
    """On data made of line breaks, dashes, spaces and the boundary, from any position: the same match."""
    rng = np.random.default_rng(11)
    tokens = [b"\r", b"\n", b"\r\n", b"-", b"--", b" ", b"\t", b"x", b"--" + boundary, boundary[:-1]]
    preamble, part = werkzeugs_expressions(boundary)
    ours = {preamble: _Boundary(boundary, line_break_required=False), part: _Boundary(boundary, True)}
    matched = 0
    for _ in range(3000):
        data = b"".join(tokens[i] for i in rng.integers(0, len(tokens), rng.integers(0, 12)))
        for pos in range(len(data) + 1):
            for expression, search in ours.items():
                want, got = expression.search(data, pos), search.search(bytearray(data), pos)
                if want is None:
                    assert got is None, (data, pos)
                    continue
                assert got is not None, (data, pos)
                assert (got.start(), got.end(), got.group(1)) == (want.start(), want.end(), want.group(1)), (data, pos)
                matched += 1
    assert matched > 1000, "the data should hold many matches"


def test_the_decoder_compiles_no_expression_for_a_boundary(monkeypatch: pytest.MonkeyPatch) -> None:
    """A body with a boundary never seen before parses with ``re.compile`` forbidden; Werkzeug's would not."""
    boundary = b"never-seen-" + NOISE[:8].hex().encode()
    data = body([("top_k", None, b"10"), ("image", "q.jpg", NOISE[:5000])], boundary)

    def forbidden(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("re.compile called")

    monkeypatch.setattr(re, "compile", forbidden)
    fields, files = parse(data, boundary, BoundaryFindingDecoder, 64 * 1024)
    assert fields == [("top_k", "10")] and files == [("image", "q.jpg", NOISE[:5000])]
    re.purge()
    stock = ""
    try:
        parse(data, boundary, MultipartDecoder, 64 * 1024)
    except AssertionError as exc:
        stock = str(exc)
    monkeypatch.undo()
    assert stock == "re.compile called"


def test_the_boundarys_text_inside_a_part_falls_back_to_werkzeugs_expression_compiled_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Many near-boundaries in a part (a body made so) parse as Werkzeug parses them, by one expression."""
    boundary = b"b0undary7f3a"
    near = (b"--" + boundary + b"x") * 20_000 + (b"\n--" + boundary + b"y") * 20_000
    data = body([("image", "q.jpg", near + NOISE[:1000])], boundary)
    compiled: list[bytes] = []
    compile_ = re.compile

    def counted(pattern: Any, flags: int = 0) -> re.Pattern[Any]:
        compiled.append(pattern)
        return compile_(pattern, flags)

    expected = parse(data, boundary, MultipartDecoder, 64 * 1024)
    monkeypatch.setattr(re, "compile", counted)
    assert parse(data, boundary, BoundaryFindingDecoder, 64 * 1024) == expected
    monkeypatch.undo()
    assert len(compiled) == 1 and boundary in compiled[0], "one expression, for the parts, compiled once"
    preamble, part = werkzeugs_expressions(boundary)
    assert _Boundary(boundary, False).expression().pattern == preamble.pattern
    assert _Boundary(boundary, True).expression().pattern == part.pattern


def test_the_decoder_sets_up_what_werkzeugs_own_sets_up() -> None:
    """Its own __init__ leaves the decoder with Werkzeug's attributes (a Werkzeug upgrade that adds one fails)."""
    stock, ours = MultipartDecoder(b"b", 10, max_parts=3), BoundaryFindingDecoder(b"b", 10, max_parts=3)
    assert vars(ours).keys() == vars(stock).keys()
    differ = {k for k in vars(stock) if k not in ("preamble_re", "boundary_re") and vars(stock)[k] != vars(ours)[k]}
    assert not differ


def test_the_app_decodes_multipart_bodies_with_the_boundary_finding_decoder(
    client: FlaskClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Creating the app installs the decoder, and a request's form is read with it."""
    assert formparser.MultipartDecoder is BoundaryFindingDecoder
    made: list[BoundaryFindingDecoder] = []
    init = BoundaryFindingDecoder.__init__

    def counted(self: BoundaryFindingDecoder, *args: Any, **kwargs: Any) -> None:
        made.append(self)
        init(self, *args, **kwargs)

    monkeypatch.setattr(BoundaryFindingDecoder, "__init__", counted)
    answer = client.post("/api/v1/search", data={"image": (io.BytesIO(b"not an image"), "q.jpg")})
    assert answer.status_code == 422 and "not an image" in answer.json["message"]
    assert len(made) == 1
