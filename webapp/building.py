"""The app's settings turned into what each service takes: the model's pipeline, a vector store, a job's limits."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from webapp.services.database import sqlite_url
from webapp.services.imaging import return_large_buffers_to_the_system
from webapp.services.units import Limits

if TYPE_CHECKING:  # imported where they are built: a command that needs no model or Milvus starts without them
    from webapp.services.embedding import Embedder
    from webapp.services.vectors import MilvusVectorStore


def database_url(settings: dict[str, Any]) -> str:
    """Return the database's URL: DATABASE_URL, else a SQLite file in DATA_DIR."""
    return settings["DATABASE_URL"] or sqlite_url(Path(settings["DATA_DIR"]) / "webapp.sqlite")


def embedder(settings: dict[str, Any], model: str) -> Embedder:
    """Return a new embedding pipeline of ``model``."""
    from webapp.services.embedding import Embedder

    s = settings
    return_large_buffers_to_the_system()  # this process decodes images: keep its peak bounded
    return Embedder(
        s["MODEL_DIR"],
        model,
        max_pixels=s["MAX_IMAGE_PIXELS"],
        batch_size=s["EMBED_BATCH_SIZE"],
        threads=s["ONNX_THREADS"],
        query_processes=s["SEARCH_PROCESSES"],
    )


def vector_store(settings: dict[str, Any], uri: str, collection: str, token: str, dim: int) -> MilvusVectorStore:
    """Open a vector store with the index, search and consistency settings."""
    from webapp.services.vectors import MilvusVectorStore

    s = settings
    return MilvusVectorStore(
        uri,
        collection,
        dim,
        token=token,
        hnsw_m=s["HNSW_M"],
        ef_construction=s["HNSW_EF_CONSTRUCTION"],
        search_ef=s["SEARCH_EF"],
        timeout=s["MILVUS_TIMEOUT"],
        consistency=s["MILVUS_CONSISTENCY"],
        search_consistency=s["MILVUS_SEARCH_CONSISTENCY"],
        flush_seconds=float(s["MILVUS_FLUSH_SECONDS"]),
        flush_rows=int(s["MILVUS_FLUSH_ROWS"]),
    )


def job_limits(settings: dict[str, Any]) -> Limits:
    """Return what a job may hold and read, and how long its uploads are kept."""
    s = settings
    return Limits(
        max_job_files=s["MAX_JOB_FILES"],
        max_file_bytes=s["MAX_FILE_BYTES"],
        max_archive_entries=s["MAX_ARCHIVE_ENTRIES"],
        max_archive_expanded_bytes=s["MAX_ARCHIVE_EXPANDED_BYTES"],
        import_roots=s["IMPORT_ROOTS"],
        upload_retention=float(s["UPLOAD_RETENTION_HOURS"]) * 3600,
    )
