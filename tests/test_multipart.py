"""The multipart decoder that finds a part's end from the boundary: the same forms as Werkzeug's own."""

from __future__ import annotations

import io
import re
from typing import Any

import numpy as np
import pytest
from flask.testing import FlaskClient
from werkzeug import formparser
from werkzeug.sansio.multipart import MultipartDecoder

from webapp.multipart import BoundaryFirstDecoder, _FromFirstBoundary

BOUNDARY = b"b0undary7f3a"


def body(parts: list[tuple[str, str | None, bytes]], line: bytes = b"\r\n", epilogue: bytes = b"") -> bytes:
    """Encode (name, filename or None, data) parts as a multipart body with the given line break."""
    out = b""
    for name, filename, data in parts:
        disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
        out += b"--" + BOUNDARY + line + f"Content-Disposition: {disposition}".encode() + line + line + data + line
    return out + b"--" + BOUNDARY + b"--" + epilogue + line


def parse(data: bytes, decoder: type[MultipartDecoder], buffer_size: int) -> tuple[list[Any], list[Any]]:
    """Parse a body with the given decoder class; return its fields and files as comparable lists."""
    previous = formparser.MultipartDecoder
    formparser.MultipartDecoder = decoder  # type: ignore[misc]
    try:
        parser = formparser.MultiPartParser(buffer_size=buffer_size)
        fields, files = parser.parse(io.BytesIO(data), BOUNDARY, len(data))
    finally:
        formparser.MultipartDecoder = previous  # type: ignore[misc]
    return list(fields.items(multi=True)), [(k, f.filename, f.read()) for k, f in files.items(multi=True)]


RNG = np.random.default_rng(3)
NOISE = RNG.integers(0, 256, 70_000, dtype=np.uint8).tobytes()  # holds \r, \n and "--" by chance
BODIES = {
    "a field and a binary file": body([("top_k", None, b"10"), ("image", "q.jpg", NOISE)]),
    "the boundary inside the data without a line break": body(
        [("image", "q.jpg", b"x--" + BOUNDARY + b"y" + NOISE[:5000] + b"\r--" + BOUNDARY[:-1])]
    ),
    "line breaks as LF only": body([("top_k", None, b"5"), ("image", "a.png", NOISE[:3000])], line=b"\n"),
    "line breaks as CR only": body([("image", "a.png", b"abc\r\rdef")], line=b"\r"),
    "an empty file and an empty field": body([("album", None, b""), ("image", "empty.jpg", b"")]),
    "whitespace after the closing boundary": body([("image", "q.jpg", NOISE[:100])], epilogue=b" \t"),
    "data ending in line breaks": body([("image", "q.jpg", NOISE[:2000] + b"\r\n\r\n")]),
}


@pytest.mark.parametrize("buffer_size", [7, 64, 1000, 64 * 1024])
@pytest.mark.parametrize("name", list(BODIES))
def test_the_boundary_first_decoder_parses_every_body_as_werkzeugs_own(name: str, buffer_size: int) -> None:
    """Every body, read in chunks that split boundaries anywhere, gives the same fields and files."""
    expected = parse(BODIES[name], MultipartDecoder, buffer_size)
    assert expected[0] or expected[1], "the body should hold parts"
    assert parse(BODIES[name], BoundaryFirstDecoder, buffer_size) == expected


def test_a_boundary_search_starts_just_before_the_boundarys_first_occurrence() -> None:
    """The expression is run from the boundary (less a line break), not from the start of the data."""
    starts: list[int] = []
    pattern = re.compile(rb"(?:\r\n|\n|\r)--" + BOUNDARY)

    class Recording:
        def search(self, data: bytes, pos: int = 0) -> re.Match[bytes] | None:
            starts.append(pos)
            return pattern.search(data, pos)

    search = _FromFirstBoundary(Recording(), b"--" + BOUNDARY)  # type: ignore[arg-type]
    data = NOISE[:50_000].replace(b"--", b"__") + b"\r\n--" + BOUNDARY + b"--\r\n"
    match = search.search(data)
    assert match is not None and match.start() == 50_000
    assert starts == [50_000]
    assert search.search(b"no boundary here\r\n") is None
    assert starts == [50_000], "with no boundary at all the expression is not run"


def test_the_app_decodes_multipart_bodies_with_the_boundary_first_decoder(
    client: FlaskClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Creating the app installs the decoder, and a request's form is read with it."""
    assert formparser.MultipartDecoder is BoundaryFirstDecoder
    made: list[BoundaryFirstDecoder] = []
    init = BoundaryFirstDecoder.__init__

    def counted(self: BoundaryFirstDecoder, *args: Any, **kwargs: Any) -> None:
        made.append(self)
        init(self, *args, **kwargs)

    monkeypatch.setattr(BoundaryFirstDecoder, "__init__", counted)
    answer = client.post("/api/v1/search", data={"image": (io.BytesIO(b"not an image"), "q.jpg")})
    assert answer.status_code == 422 and "not an image" in answer.json["message"]
    assert len(made) == 1
