"""What a check's second look costs in a large library: reading every image's layout from the
catalogue and indexing them (services/checks.py ``KnownLayouts``: once a minute by each process that
runs the check's chunks), and looking a batch of 64 files up among them (``LayoutIndex.close_to``).

Fills a catalogue (SQLite, in a temporary data folder; no vectors, no files) with random layouts,
half of them landscape and half portrait, then times both steps. Random layouts are far apart: the
pairs found are the few within VERY_CLOSE bits by chance.

    .venv/bin/python bench/check_layouts.py [--images 100000]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from webapp import create_app  # noqa: E402
from webapp.runtime import EXTENSION  # noqa: E402
from webapp.services.checks import KnownLayouts  # noqa: E402
from webapp.services.fingerprints import Fingerprint, Layouts, to_bytes  # noqa: E402

CHUNK, BATCH = 256, 64  # services/units.py


def random_prints(rng: np.random.Generator, count: int, first: int = 0) -> list[Fingerprint]:
    rows = rng.integers(0, 2**63, size=(count, 5), dtype=np.uint64).tolist()
    shapes = ((640, 480), (480, 640))
    return [Fingerprint(a, b, (c, d), e, shapes[(first + i) % 2]) for i, (a, b, c, d, e) in enumerate(rows)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=100_000)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        os.environ.update(WEBAPP_DATA_DIR=tmp, WEBAPP_MODEL_DIR=str(ROOT / "var" / "models"), WEBAPP_AUTH="off")
        catalog = create_app().extensions[EXTENSION].library.catalog
        for first in range(0, args.images, 5000):
            prints = random_prints(rng, min(5000, args.images - first), first)
            catalog.add((f"{first + i:064x}", first + i, "", to_bytes(p)) for i, p in enumerate(prints))
        start = time.perf_counter()
        ids, index = KnownLayouts(catalog).get()
        read = time.perf_counter() - start
        files = Layouts.of(random_prints(rng, BATCH))
        start = time.perf_counter()
        index.close_to(files)  # the first look sorts the library's layouts
        indexing = time.perf_counter() - start
        start = time.perf_counter()
        for _ in range(10):
            index.close_to(files)
        looked = (time.perf_counter() - start) / 10
        del ids, index
        tracemalloc.start()  # numpy's arrays are traced too
        kept = KnownLayouts(catalog)
        kept.get()[1].close_to(files)
        held = tracemalloc.get_traced_memory()[0]
        tracemalloc.stop()
    made = (read + indexing) * 1000
    print(f"{args.images} images' layouts read and indexed: {made:.0f} ms ({indexing * 1000:.0f} to index)")
    print(f"{BATCH} files looked up among them: {looked * 1000:.1f} ms, {looked * 1000 / BATCH:.2f} ms a file")
    print(f"held while the check runs: {held / 1e6:.0f} MB")
    print(f"read once a minute (REREAD) by each process a check runs on: {made / 600:.1f}% of its time")


if __name__ == "__main__":
    main()
