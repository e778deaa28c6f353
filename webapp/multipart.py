"""Werkzeug's multipart decoder, finding boundaries with ``bytes.find`` instead of an expression per boundary.

Werkzeug's decoder finds the preamble's end and each part's end with two regular expressions (an
optional or a required line break, ``--boundary``, then ``--`` or a line break), compiled for
every request, since each client sends a boundary of its own: 0.3 ms of the interpreter's lock
a request (`requests`, browsers and curl pick a random one each time; a client that reuses one
hits ``re``'s cache). It then runs the part's expression from the start of the part, byte by
byte: 0.27 ms for a 56 KB photo.

The decoder installed here compiles nothing for a well-formed body. It finds ``--boundary``
with ``bytes.find`` (in C) and reads the line break before it and what follows it as the
expression would; only where the boundary's text turns up inside a part does it compile the
expression, to search on from there. The same matches, so the same forms
(``tests/test_multipart.py`` parses bodies of every shape with both decoders).
"""

from __future__ import annotations

import re

from werkzeug import formparser
from werkzeug.sansio.multipart import LINE_BREAK, MultipartDecoder, State

# What follows ``--boundary`` in both of Werkzeug's expressions, as they write it: ``--`` (the
# closing boundary) and optional spaces and a line break, or optional spaces and a line break.
_AFTER = re.compile(rb"(--[^\S\n\r]*%s?|[^\S\n\r]*%s)" % (LINE_BREAK, LINE_BREAK))


class _Found:
    """A match as the decoder reads it: where it starts and ends, and what followed the boundary."""

    __slots__ = ("_after", "_start")

    def __init__(self, start: int, after: re.Match[bytes]) -> None:
        self._start, self._after = start, after

    def start(self) -> int:
        return self._start

    def end(self) -> int:
        return self._after.end()

    def group(self, number: int) -> bytes:
        if number != 1:
            raise IndexError("only the group after the boundary is kept")
        return self._after.group(1)


class _Boundary:
    """One of Werkzeug's boundary expressions: ``line_break`` (required or optional), ``--boundary``, the rest.

    ``search`` returns the leftmost match from ``pos``, as ``re.Pattern.search`` would. Every match
    holds an occurrence of ``--boundary`` and starts at most two bytes (a line break) before it,
    so the first occurrence, if it has what the expression needs around it, gives the leftmost
    match. Otherwise (the boundary's text inside a part: rare with a random boundary, or a body
    made to look so) the expression itself, compiled then, searches on from just after it: the
    same answer, in C, however many such occurrences follow.
    """

    def __init__(self, boundary: bytes, line_break_required: bool) -> None:
        self.boundary = boundary
        self.marker = b"--" + boundary
        self.line_break_required = line_break_required
        self._expression: re.Pattern[bytes] | None = None

    def search(self, data: bytes | bytearray, pos: int = 0) -> _Found | re.Match[bytes] | None:
        at = data.find(self.marker, pos)
        if at == -1:
            return None
        start = self._start(data, pos, at)
        if start is not None and (after := _AFTER.match(data, at + len(self.marker))) is not None:
            return _Found(start, after)
        # No match holds this occurrence, and any other's starts after it (the bytes between are not a line break).
        return self.expression().search(data, at + 1)

    def expression(self) -> re.Pattern[bytes]:
        """Return Werkzeug's expression for this boundary, compiled at the first call."""
        if self._expression is None:
            before = LINE_BREAK if self.line_break_required else LINE_BREAK + b"?"
            self._expression = re.compile(before + b"--" + re.escape(self.boundary) + _AFTER.pattern, re.MULTILINE)
        return self._expression

    def _start(self, data: bytes | bytearray, pos: int, at: int) -> int | None:
        """Where the match of the occurrence at ``at`` starts: at its line break, the longest one first."""
        if at - 2 >= pos and data[at - 2 : at] == b"\r\n":
            return at - 2
        if at - 1 >= pos and data[at - 1 : at] in (b"\r", b"\n"):
            return at - 1
        return None if self.line_break_required else at


class BoundaryFindingDecoder(MultipartDecoder):
    """Werkzeug's decoder with its two boundary expressions found by ``bytes.find`` (see the module).

    Its ``__init__`` is Werkzeug's (3.1, pinned) without the two ``re.compile`` calls.
    """

    def __init__(
        self, boundary: bytes, max_form_memory_size: int | None = None, *, max_parts: int | None = None
    ) -> None:
        self.buffer = bytearray()
        self.complete = False
        self.max_form_memory_size = max_form_memory_size
        self.max_parts = max_parts
        self.state = State.PREAMBLE
        self.boundary = boundary
        self.preamble_re = _Boundary(boundary, line_break_required=False)  # type: ignore[assignment]
        self.boundary_re = _Boundary(boundary, line_break_required=True)  # type: ignore[assignment]
        self._search_position = 0
        self._parts_decoded = 0


def install() -> None:
    """Make Werkzeug's form parser (so every Flask request's form) decode with BoundaryFindingDecoder."""
    formparser.MultipartDecoder = BoundaryFindingDecoder  # type: ignore[misc]
