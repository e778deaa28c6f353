"""The duplicate scan's second pass alone: the lookup of very close layouts (services/fingerprints.py,
``close_copies``; services/hamming.py) on random fingerprints, half of them landscape and half
portrait, and the memory of their ids and layouts as the scan holds them (read 500 at a time).

Random layouts are far apart, unlike a library's copies: this measures the lookup's cost, and the
pairs it prints are the ones within VERY_CLOSE bits by chance, which the model's similarity then
judges. `bench/duplicates.py` times the whole scan, Milvus included.

    .venv/bin/python bench/close_layouts.py [--pictures 1000000]
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from webapp.services.fingerprints import Fingerprint, Layouts, close_copies  # noqa: E402


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pictures", type=int, default=1_000_000)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    before = peak_mb()
    shas: list[str] = []
    parts: list[Layouts] = []
    for first in range(0, args.pictures, 500):  # as Verdicts.every_print reads the catalogue
        rows = rng.integers(0, 2**63, size=(min(500, args.pictures - first), 4), dtype=np.uint64).tolist()
        prints = {
            f"{first + i:064x}": Fingerprint(a, 0, (b, c), d, (640, 480) if (first + i) % 2 else (480, 640))
            for i, (a, b, c, d) in enumerate(rows)
        }
        shas += prints
        parts.append(Layouts.of(list(prints.values())))
    layouts = Layouts.joined(parts)
    del parts
    print(f"{len(shas)} pictures: ids and layouts held, peak {peak_mb() - before:.0f} MB more")
    start = time.perf_counter()
    found = close_copies(layouts)
    print(f"close_copies: {time.perf_counter() - start:.1f} s, {len(found)} pairs within reach by chance")


if __name__ == "__main__":
    main()
