"""What the library stores about an image, what it needs of a vector store to keep it, and what it answers."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Protocol

import numpy as np

if TYPE_CHECKING:
    from PIL import Image

    from webapp.services.imaging import QueryImage


def pk_of(sha256: str) -> int:
    """Return the primary key of an image: the first 8 bytes of its SHA-256 as a signed int64."""
    return int.from_bytes(bytes.fromhex(sha256[:16]), "big", signed=True)


@dataclass(frozen=True)
class Record:
    """What the library knows about one indexed image."""

    sha256: str
    filename: str
    width: int
    height: int
    source: str
    mime: str
    added_at: int  # milliseconds since the epoch
    album: str = ""  # the folder it was loaded from, relative to the loaded root ("" for none)

    @property
    def added(self) -> datetime:
        """Return when the image was indexed, in UTC."""
        return datetime.fromtimestamp(self.added_at / 1000, tz=UTC)


@dataclass(frozen=True)
class Added:
    """An uploaded image's record, and whether its bytes were already indexed (nothing added then)."""

    record: Record
    duplicate: bool


@dataclass(frozen=True)
class Detailed:
    """An image's record, and the account that added it ("" with access control off, or unknown)."""

    record: Record
    added_by: str


@dataclass(frozen=True)
class Hit:
    """One search result: a record and its cosine similarity to the query."""

    record: Record
    score: float


class VectorStore(Protocol):
    """What the library needs of a vector store (Milvus Lite file or Milvus server)."""

    kind: str
    index_type: str
    metric: str

    def upsert(self, items: Sequence[tuple[Record, np.ndarray]]) -> None: ...
    def delete(self, sha256s: Sequence[str]) -> None: ...
    def clear(self) -> None: ...
    def ids(self) -> dict[str, int]: ...
    def albums(self) -> dict[str, str]: ...
    def vector(self, sha256: str) -> np.ndarray | None: ...
    def flush(self) -> None: ...
    def checkpoint(self) -> None: ...
    def search(self, vector: np.ndarray, top_k: int, album: str = "") -> list[Hit]: ...
    def search_many(self, vectors: Sequence[np.ndarray], top_k: int, album: str = "") -> list[list[Hit]]: ...
    def album_filter(self, album: str) -> str: ...
    def export(self, batch_size: int = 1000) -> Iterator[list[tuple[Record, np.ndarray]]]: ...
    def neighbours(self, vectors: Sequence[np.ndarray], top_k: int) -> list[list[tuple[str, float]]]: ...
    def vectors(self, sha256s: Iterable[str]) -> dict[str, np.ndarray]: ...
    def entries(self, sha256s: Iterable[str]) -> dict[str, tuple[Record, np.ndarray]]: ...
    def get(self, sha256s: Iterable[str], fresh: bool = True) -> dict[str, Record]: ...
    def count(self) -> int: ...
    def close(self) -> None: ...


@dataclass(frozen=True)
class SearchResult:
    """A query image, its ranked hits, and how long the search took (in all, and its two steps)."""

    query: QueryImage
    hits: list[Hit]
    took_ms: float
    embed_ms: float  # decoding and embedding the query
    search_ms: float  # the vector search
    image: Image.Image | None = None  # the query's pixels, when asked for (a page shows them)

    def server_timing(self) -> str:
        """Return the steps' times as an HTTP Server-Timing header value (browsers' dev tools show it)."""
        return f"embed;dur={self.embed_ms:.2f}, search;dur={self.search_ms:.2f}, total;dur={self.took_ms:.2f}"


@dataclass(frozen=True)
class Description:
    """How a library embeds and indexes its images."""

    count: int
    model: str
    dimension: int
    metric: str
    index_type: str
    store: str
