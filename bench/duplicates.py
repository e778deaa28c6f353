"""Time a near-duplicate scan of a large library, on synthetic vectors in Milvus Lite.

Fills a Milvus Lite file with random unit vectors in the model's 1280 dimensions, a share of them
with one to three planted near-duplicates (the vector plus noise, cosine 0.965-0.995 to it),
catalogues each with a fingerprint (random, a planted copy's within 4 bits of its base's; half of
the bases landscape, half portrait), then runs the app's scan (services/duplicates.py: every
vector's top-k from Milvus, the fingerprints of the pairs found read from the catalogue, then every
fingerprint looked up among the others' by its bits, as it is, at its centre and turned, joined into
groups, ranked, saved to SQLite) and prints its time, the lookup's, and how many planted pairs it
found.

Random vectors are far apart, unlike photos, so this measures the scan's cost, not its quality
(`flask --app wsgi evaluate DIR --duplicates` measures that).

    .venv/bin/python bench/duplicates.py [--vectors 100000] [--planted 0.05] [--threshold 0.96]
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.store import DIM, wait_for_index  # noqa: E402
from webapp.services import duplicates  # noqa: E402
from webapp.services.catalog import Catalog  # noqa: E402
from webapp.services.database import Database, sqlite_url  # noqa: E402
from webapp.services.duplicates import KIND, Duplicates  # noqa: E402
from webapp.services.fingerprints import Fingerprint, to_bytes  # noqa: E402
from webapp.services.images import ImageStore  # noqa: E402
from webapp.services.jobs import JobStore  # noqa: E402
from webapp.services.records import Record  # noqa: E402
from webapp.services.vectors import MilvusVectorStore  # noqa: E402


def synthetic(count: int, planted: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Return ``count`` unit vectors and, for each, the index of the base it copies (itself if none)."""
    bases = int(count / (1 + 2 * planted))  # each planted base brings two copies on average
    vectors = [rng.standard_normal((bases, DIM)).astype(np.float32)]
    origin = [np.arange(bases)]
    chosen = rng.choice(bases, size=int(bases * planted), replace=False)
    copies = np.repeat(chosen, rng.integers(1, 4, size=len(chosen)))[: count - bases]
    cosine = rng.uniform(0.965, 0.995, size=len(copies))
    sigma = np.sqrt((1 / cosine**2 - 1) / DIM)  # noise of this size leaves about that cosine
    base = vectors[0][copies] / np.linalg.norm(vectors[0][copies], axis=1, keepdims=True)
    vectors.append(base + sigma[:, None] * rng.standard_normal((len(copies), DIM)).astype(np.float32))
    origin.append(copies)
    matrix = np.concatenate(vectors)
    return matrix / np.linalg.norm(matrix, axis=1, keepdims=True), np.concatenate(origin)


def sha(i: int) -> str:
    return hashlib.sha256(str(i).encode()).hexdigest()


def fill(store: MilvusVectorStore, vectors: np.ndarray) -> None:
    for first in range(0, len(vectors), 2000):
        part = vectors[first : first + 2000]
        rows = [
            (Record(sha(first + i), f"{first + i}.jpg", 640, 480, "bench", "image/jpeg", first + i), v)
            for i, v in enumerate(part)
        ]
        store.upsert(rows)


def catalogue(catalog: Catalog, origin: np.ndarray, rng: np.random.Generator) -> None:
    """Catalogue every vector with a fingerprint: its base's, with up to 4 bits flipped for a copy."""
    bases = rng.integers(0, 2**63, size=(int(origin.max()) + 1, 3), dtype=np.int64)
    rows = []
    for i, base in enumerate(origin.tolist()):
        print_, clockwise, anticlockwise = (int(layout) for layout in bases[base])
        if base != i:
            for bit in rng.choice(63, size=int(rng.integers(0, 5)), replace=False).tolist():
                print_ ^= 1 << bit
        shape = (640, 480) if base % 2 else (480, 640)  # a phone's library: both shapes, so the turned pass works
        made = Fingerprint(print_, print_, (clockwise, anticlockwise), print_, shape)  # the centre is the whole's
        rows.append((sha(i), i, "", to_bytes(made)))
    for first in range(0, len(rows), 5000):
        catalog.add(rows[first : first + 5000])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vectors", type=int, default=100_000)
    parser.add_argument("--planted", type=float, default=0.05, help="share of vectors given near-duplicates")
    parser.add_argument("--threshold", type=float, default=0.96)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    vectors, origin = synthetic(args.vectors, args.planted, rng)
    with tempfile.TemporaryDirectory() as tmp:
        store = MilvusVectorStore(str(Path(tmp) / "milvus.db"), "images", DIM, timeout=600)
        t0 = time.perf_counter()
        fill(store, vectors)
        store.flush()
        wait_for_index(store)
        print(
            f"{len(vectors)} vectors ({len(vectors) - int(origin.max()) - 1} planted copies) "
            f"loaded and indexed in {time.perf_counter() - t0:.0f} s"
        )
        db = Database(sqlite_url(Path(tmp) / "webapp.sqlite"))
        db.upgrade()
        jobs = JobStore(db)
        catalog = Catalog(db)
        catalogue(catalog, origin, rng)
        files = ImageStore(Path(tmp) / "images")  # none: every fingerprint is in the catalogue
        library: Any = SimpleNamespace(vectors=store, original=lambda sha256: None, catalog=catalog, images=files)
        finder = Duplicates(db, jobs, lambda: library, args.threshold, "bench")
        lookup, looked_up = duplicates.close_copies, []

        def timed(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return lookup(*args, **kwargs)
            finally:
                looked_up.append(time.perf_counter() - start)

        duplicates.close_copies = timed
        job = jobs.create(KIND, "bench", "bench")
        t0 = time.perf_counter()
        finder.run(job.id)
        seconds = time.perf_counter() - t0
        done = jobs.get(job.id)
        groups, total = finder.groups(0, 1_000_000)
        store.close()
    index_of = {sha(i): i for i in range(len(vectors))}
    found = {frozenset(origin[index_of[m.record.sha256]] for m in g.members) for g in groups}
    planted = {b for b in np.unique(origin[origin != np.arange(len(origin))])}
    mixed = sum(1 for bases in found if len(bases) > 1)
    pure = {next(iter(bases)) for bases in found if len(bases) == 1}
    print(
        f"scan: {seconds:.0f} s ({len(vectors) / seconds:.0f} vectors/s), job {done.status}, "
        f"{total} groups at threshold {args.threshold}; of it, the lookup of very close layouts "
        f"(services/fingerprints.py, close_copies): {sum(looked_up):.1f} s"
    )
    print(
        f"planted groups found whole or in part: {len(pure & planted)} of {len(planted)}; "
        f"groups mixing unrelated vectors: {mixed}"
    )


if __name__ == "__main__":
    main()
