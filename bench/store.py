"""Measure Milvus search latency at library sizes that photos alone would take too long to reach.

Fills a Milvus Lite file and a real Milvus standalone (the tests' `milvus==2.3.5`, in .venv-milvus)
with synthetic unit vectors plus the same metadata the app stores, then times single searches
(top 10, with the metadata fields, the app's HNSW and consistency settings), one client.

    .venv/bin/python bench/store.py [--sizes 10000 100000] [--queries 200]
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.milvus_server import MilvusServer  # noqa: E402
from webapp.services.vectors import MilvusVectorStore, Record  # noqa: E402

DIM = 1280


def fill(store: MilvusVectorStore, start: int, stop: int, rng: np.random.Generator) -> None:
    """Upsert synthetic records ``start``..``stop`` in batches."""
    for first in range(start, stop, 2000):
        vectors = rng.standard_normal((min(2000, stop - first), DIM)).astype(np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        store.upsert(
            [
                (
                    Record(
                        hashlib.sha256(str(first + i).encode()).hexdigest(),
                        f"{first + i}.jpg",
                        640,
                        480,
                        "bench",
                        "image/jpeg",
                        first + i,
                    ),
                    vector,
                )
                for i, vector in enumerate(vectors)
            ]
        )


def wait_for_index(store: MilvusVectorStore, timeout: float = 600) -> None:
    """Wait until the HNSW index covers every row (searches before that scan growing segments)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        index = store._client.describe_index(store.collection, "vector")
        if index.get("pending_index_rows", 0) == 0 and index.get("indexed_rows", 0) >= index.get("total_rows", 0):
            return
        time.sleep(1)


def latencies(store: MilvusVectorStore, queries: int, rng: np.random.Generator) -> list[float]:
    """Time ``queries`` single searches, in ms."""
    out = []
    for _ in range(queries):
        query = rng.standard_normal(DIM).astype(np.float32)
        query /= np.linalg.norm(query)
        t0 = time.perf_counter()
        store.search(query, 10)
        out.append((time.perf_counter() - t0) * 1000)
    return out


def measure(label: str, store: MilvusVectorStore, sizes: list[int], queries: int) -> None:
    """Grow the store through ``sizes`` and print latency percentiles at each."""
    rng = np.random.default_rng(0)
    filled = 0
    for size in sizes:
        t0 = time.perf_counter()
        fill(store, filled, size, rng)
        store.flush()
        wait_for_index(store)
        loaded = time.perf_counter() - t0
        filled = size
        store.search(rng.standard_normal(DIM).astype(np.float32), 10)  # warm up
        ms = latencies(store, queries, rng)
        q = np.percentile(ms, [50, 95, 99])
        print(
            f"{label:28s} {size:>7d} vectors  search p50 {q[0]:6.1f}  p95 {q[1]:6.1f}  p99 {q[2]:6.1f} ms"
            f"   (filled in {loaded:.0f} s)",
            flush=True,
        )


def main() -> None:
    """Run both stores."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--queries", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        lite = MilvusVectorStore(str(Path(tmp) / "bench.db"), "bench", DIM, timeout=600)
        measure("Milvus Lite (file)", lite, args.sizes, args.queries)
        lite.close()
        server = MilvusServer(Path(tmp))
        server.start()
        try:
            for consistency in ("Strong", "Bounded"):
                store = MilvusVectorStore(
                    server.uri, f"bench_{consistency.lower()}", DIM, timeout=600, consistency=consistency
                )
                measure(f"Milvus 2.3.5 server, {consistency}", store, args.sizes, args.queries)
                store.close()
        finally:
            server.stop()


if __name__ == "__main__":
    main()
