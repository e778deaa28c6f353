"""The library: adds, finds and searches images, keeping files and vectors in step."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass

from webapp.errors import NotFound
from webapp.services.embedding import Embedder
from webapp.services.images import ImageStore
from webapp.services.imaging import Decoded, content_id, thumbnail
from webapp.services.vectors import Hit, Record, VectorStore

DEFAULT_TOP_K = 10
MAX_TOP_K = 100
_UNSAFE = re.compile(r"[\x00-\x1f\x7f]")


@dataclass(frozen=True)
class SearchResult:
    """A query image, its ranked hits, and how long the search took."""

    query: Decoded
    hits: list[Hit]
    took_ms: float


def clean_filename(name: str | None) -> str:
    """Keep only the last path component of a client's file name, without control characters."""
    base = re.split(r"[\\/]", name or "")[-1]
    return _UNSAFE.sub("", base).strip()[:255] or "unnamed"


class Library:
    """The images a person has indexed, searchable by similarity."""

    def __init__(self, embedder: Embedder, vectors: VectorStore, images: ImageStore, thumbnail_size: int) -> None:
        self.embedder = embedder
        self.vectors = vectors
        self.images = images
        self.thumbnail_size = thumbnail_size

    def add(self, data: bytes, filename: str | None, source: str = "upload") -> tuple[Record, bool]:
        """Index one image; return its record and whether it was new (False for a duplicate)."""
        sha256 = content_id(data)
        existing = self.vectors.get([sha256]).get(sha256)
        if existing is not None and self.images.original(sha256):
            return existing, False
        decoded, vector = self.embedder.embed(data)
        record = Record(
            sha256=decoded.sha256,
            filename=clean_filename(filename),
            width=decoded.width,
            height=decoded.height,
            source=source,
            mime=decoded.mime,
            added_at=int(time.time() * 1000),
        )
        # File first, then vector: a vector is never stored without its file.
        created = self.images.put(sha256, decoded.mime, data, thumbnail(decoded.image, self.thumbnail_size))
        try:
            self.vectors.upsert([(record, vector)])
        except Exception:
            if created:
                self.images.delete(sha256)
            raise
        return record, True

    def search(self, data: bytes, top_k: int) -> SearchResult:
        """Embed the query image and return the ``top_k`` most similar indexed images."""
        start = time.perf_counter()
        decoded, vector = self.embedder.embed(data)
        hits = self.vectors.search(vector, top_k)
        return SearchResult(decoded, hits, (time.perf_counter() - start) * 1000)

    def get(self, sha256: str) -> Record:
        """Return the record of an indexed image or raise NotFound."""
        record = self.vectors.get([sha256]).get(sha256)
        if record is None:
            raise NotFound(f"no image with id {sha256} in the library")
        return record

    def count(self) -> int:
        """Return the number of indexed images."""
        return self.vectors.count()
