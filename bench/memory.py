"""Where a process's resident memory goes as a library grows (issue 13, point 6).

Steps through what the app's web worker holds, in one process, and prints the resident set
(VmRSS) after each, then again after glibc's ``malloc_trim`` (memory freed but kept by the
allocator is given back): the Python interpreter and the app's imports, the ONNX model's sessions,
embedding a bulk batch of photos, a Milvus Lite library of 10,000 then 20,000 vectors (synthetic,
with the app's metadata, written 64 at a time as a job writes them), and searches on it. With
``--searched``, a search follows every write, as when someone searches during a load: the store
then flushes in small steps. Also prints the CPU time writing took, the store's threads included.

    .venv/bin/python bench/memory.py [--vectors 10000] [--searched] [--model NAME]
"""

from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.ingest import make_images  # noqa: E402
from bench.store import DIM, fill, wait_for_index  # noqa: E402
from webapp.models import DEFAULT, MODELS  # noqa: E402
from webapp.services.embedding import Embedder  # noqa: E402
from webapp.services.units import BATCH  # noqa: E402
from webapp.services.vectors import MilvusVectorStore  # noqa: E402

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")


def rss_mb() -> float:
    """Return this process's resident set in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


class Steps:
    """Print each step's resident set, before and after trimming the allocator, and the change."""

    def __init__(self) -> None:
        self.last = rss_mb()
        print(f"{'step':58s} {'RSS MB':>8s} {'trimmed':>8s} {'change':>8s}")
        print(f"{'Python, numpy, the app and its libraries imported':58s} {self.last:8.0f}")

    def __call__(self, label: str) -> None:
        now = rss_mb()
        _libc.malloc_trim(0)
        trimmed = rss_mb()
        print(f"{label:58s} {now:8.0f} {trimmed:8.0f} {trimmed - self.last:+8.0f}", flush=True)
        self.last = trimmed


def main() -> None:
    """Run the steps."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vectors", type=int, default=10_000, help="vectors per library step")
    parser.add_argument("--model-dir", type=Path, default=ROOT / "var" / "models")
    parser.add_argument("--model", choices=sorted(MODELS), default=DEFAULT, help="what the app embeds with")
    parser.add_argument("--searched", action="store_true", help="search after every write, as during a load")
    args = parser.parse_args()
    images = make_images(256)
    step = Steps()
    embedder = Embedder(args.model_dir, args.model)
    step(f"the model loaded, no call yet ({args.model})")
    embedder.embed(images[0])
    step("one search's embedding (the single-image session)")
    list(embedder.embed_many(list(enumerate(images))))
    step("a bulk batch of 256 photos embedded (the batch session)")
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        store = MilvusVectorStore(str(Path(tmp) / "memory.db"), "memory", DIM, timeout=600)
        step("Milvus Lite opened, empty collection")
        writing = [0.0, 0.0]  # seconds, CPU seconds
        for size in (args.vectors, 2 * args.vectors):
            started, cpu = time.perf_counter(), time.process_time()
            for first in range(size - args.vectors, size, BATCH):
                fill(store, first, min(first + BATCH, size), rng)
                if args.searched:
                    store.search(rng.standard_normal(DIM).astype(np.float32), 10)
            writing = [writing[0] + time.perf_counter() - started, writing[1] + time.process_time() - cpu]
            step(f"{size:,} vectors written{', searched meanwhile' if args.searched else ''}")
            store.flush()
            time.sleep(10)  # Lite merges small segments and builds their HNSW index in the background
            wait_for_index(store)
            step(f"{size:,} vectors flushed and indexed")
            for _ in range(20):
                query = rng.standard_normal(DIM).astype(np.float32)
                store.search(query / np.linalg.norm(query), 10)
            step(f"20 searches at {size:,} vectors")
        store.close()
    raw = 2 * args.vectors * DIM * 4 / 2**20
    print(f"\nfor scale: {2 * args.vectors:,} vectors of {DIM} float32 are {raw:.0f} MB")
    rows = 2 * args.vectors
    print(f"writing them took {writing[0]:.1f} s, {writing[1] / rows * 1000:.2f} ms of CPU a vector (all threads)")


if __name__ == "__main__":
    main()
