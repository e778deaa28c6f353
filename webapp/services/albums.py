"""Albums: the folder an image was loaded from, relative to the loaded root (``animals/birds``).

An image is in its album and, through it, in every album above (``animals``). Milvus stores the
album with its ancestors in an array field, so "this album and its sub-albums" is one
``array_contains`` filter: no LIKE pattern, nothing to escape but the string literal itself.
"""

from __future__ import annotations

import re
import unicodedata
from bisect import bisect_left
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import islice

from webapp.errors import InvalidInput

MAX_DEPTH = 16  # levels kept (the Milvus array's capacity)
MAX_LENGTH = 500  # characters of a whole album path (the array's element length is 512 bytes)
MAX_MOVED = 500  # images one request may put in an album (more: move their album, a job)
ORDERS = ("name", "newest", "largest")  # how a level of albums may be sorted: by name, last added to, most images
_CONTROL = re.compile("[\x00-\x1f\x7f\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def _parts(path: str) -> list[str]:
    return [p.strip() for p in path.split("/") if p.strip() not in ("", ".", "..")]


def album_of_item(name: str) -> str:
    """Return the album of a loaded file from its path relative to the root (``a/b/x.jpg`` -> ``a/b``).

    Never refuses: control characters are dropped, ``.`` and ``..`` ignored, depth and length cut.
    """
    parts = [_CONTROL.sub("", p) for p in _parts(name)[:-1]]
    album = "/".join(p for p in parts if p)
    return _cut(album)


def _cut(album: str) -> str:
    parts = album.split("/")[:MAX_DEPTH] if album else []
    while parts and len("/".join(parts).encode()) > MAX_LENGTH:
        parts.pop()
    return "/".join(parts)


def within(album: str, sub: str) -> str:
    """Return the album ``sub`` placed below ``album`` (a job's album and a file's own folder)."""
    return _cut("/".join(a for a in (album, sub) if a))


def parse_album(value: str | None) -> str:
    """Return a client's album name in its one spelling (``/a//b/`` -> ``a/b``); refuse a bad one.

    Empty means no album (the whole library).
    """
    if value is None:
        return ""
    if _CONTROL.search(value):
        raise InvalidInput("the album name has control characters")
    if any(p.strip() in (".", "..") for p in value.split("/")):
        raise InvalidInput("an album name cannot have . or .. as a part")
    album = "/".join(_parts(value))
    if len(album.encode()) > MAX_LENGTH or album.count("/") >= MAX_DEPTH:
        raise InvalidInput(f"the album name is too long (at most {MAX_DEPTH} levels and {MAX_LENGTH} bytes)")
    return album


def renamed(album: str, old: str, new: str) -> str | None:
    """Return ``album``'s name once the album ``old`` is renamed ``new`` (``a/b/c`` with ``a/b`` to ``x``
    gives ``x/c``), in any spelling of ``old``; None if ``album`` is not ``old`` or below it.

    A name the move would make longer than an album may be is cut, as a loaded folder's is.
    """
    for name in spellings(old):
        if album == name:
            return new
        if album.startswith(name + "/"):
            return within(new, album[len(name) + 1 :])
    return None


def lineage(album: str) -> list[str]:
    """Return an album and every album above it, top first (``a/b`` -> ``a``, ``a/b``)."""
    parts = album.split("/") if album else []
    return ["/".join(parts[: i + 1]) for i in range(len(parts))]


def literal(value: str) -> str:
    """Quote a string for a Milvus filter expression (backslashes and double quotes escaped)."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def spellings(album: str) -> list[str]:
    """Return the ways an album's name may be stored: as given, composed (NFC, as keyboards type) and
    decomposed (NFD, as a Mac's folders may be named). They look alike, so a filter takes them all."""
    return sorted({album, unicodedata.normalize("NFC", album), unicodedata.normalize("NFD", album)})


def milvus_filter(album: str) -> str:
    """Return the Milvus filter for images in ``album`` or below it ("" for no album: no filter)."""
    if not album:
        return ""
    names = spellings(album)
    if len(names) == 1:
        return f"array_contains(albums, {literal(album)})"
    return f"array_contains_any(albums, [{', '.join(literal(n) for n in names)}])"


def named(albums: Iterable[tuple[str, int]], contains: str, limit: int | None) -> list[tuple[str, int]]:
    """Return the albums whose name holds ``contains`` in any case and Unicode form, at most ``limit``
    of them, in order.

    A folder copied from a Mac may spell é as e and a combining accent (NFD) where a keyboard types
    one character (NFC): either finds it.
    """
    wanted = _folded(contains)
    return list(islice((a for a in albums if wanted in _folded(a[0])), limit))


def _folded(text: str) -> str:
    return unicodedata.normalize("NFKC", text).casefold()


def shallowest(albums: Iterable[tuple[str, int]], limit: int) -> list[tuple[str, int]]:
    """Return at most ``limit`` albums, the top levels first, by name within a level (a field's first suggestions)."""
    return sorted(albums, key=lambda a: (a[0].count("/"), a[0]))[:limit]


@dataclass(frozen=True)
class AlbumEntry:
    """An album as a level of the album tree shows it: its path, the images in it and below, how many
    albums sit directly below it, and its cover (the content id of the image a person chose, or of
    its newest; None: not known) and whether a person chose it."""

    name: str
    count: int
    sub_albums: int
    cover: str | None = None
    chosen: bool = False

    @property
    def title(self) -> str:
        """Return the last part of the album's path (``animals/birds`` -> ``birds``)."""
        return self.name.rpartition("/")[2]


def tree(albums: Sequence[tuple[str, int]]) -> list[AlbumEntry]:
    """Return every album of an album list (as ``Catalog.albums`` gives them), each with how many
    albums sit directly below it."""
    below = Counter(name.rpartition("/")[0] for name, _ in albums)
    return [AlbumEntry(name, n, below[name]) for name, n in albums]


def level(albums: Sequence[tuple[str, int]], parent: str, find: str = "") -> list[AlbumEntry]:
    """Return the albums directly below ``parent`` ("" for the top level) of an album list sorted
    by name, each with how many albums sit directly below it; with ``find``, those at any depth
    below it whose path below it holds that text, in any case and Unicode form.

    Reads only the part of the list below ``parent``: a library page asks for it on every view.
    """
    below = _below(albums, parent)
    above = Counter(name.rpartition("/")[0] for name, _ in below)  # how many sit directly below each
    if find:
        wanted, cut = _folded(find), len(parent) + 1 if parent else 0
        chosen = [(name, n) for name, n in below if wanted in _folded(name[cut:])]
    else:
        chosen = [(name, n) for name, n in below if name.rpartition("/")[0] == parent]
    return [AlbumEntry(name, n, above[name]) for name, n in chosen]


def _below(albums: Sequence[tuple[str, int]], parent: str) -> Sequence[tuple[str, int]]:
    """Return the albums below ``parent`` at any depth: in a list sorted by name, the names from
    ``parent/`` up to ``parent0`` ('/' sorts just before '0')."""
    if not parent:
        return albums
    return albums[bisect_left(albums, (parent + "/",)) : bisect_left(albums, (parent + "0",))]


def children(albums: Sequence[tuple[str, int]], parent: str) -> list[tuple[str, int]]:
    """Return the albums directly below ``parent`` ("" for the top level) of an album list sorted by name."""
    depth = parent.count("/") + 1 if parent else 0
    return [(name, n) for name, n in _below(albums, parent) if name.count("/") == depth]
