"""`make bench-lite`: Milvus Lite search latency and write cost, milvus-lite's own way next to the app's.

The app replaces two pieces of milvus-lite 3.2.2's search (``webapp/services/lite_search.py`` and
``lite.py``: which rows may answer, and the vectors of rows not yet flushed). One process, one
store, switching between both ways at each point, so the machine's noise hits both alike:

- a library of ``--flushed`` vectors with more and more rows written but not yet flushed (as
  during a bulk load), then ``--one-by-one`` rows written one at a time (as single uploads);
- libraries of ``--sizes`` vectors, everything flushed and indexed.

Synthetic unit vectors with the app's metadata, top 10, one client, p50 of ``--queries`` searches.
Then the CPU a bulk load's write of 64 rows takes: over pymilvus's gRPC (as before the app wrote
through the engine), through the engine with milvus-lite's check of each vector value, and as the
app writes (``lite.py``: ``LiteEngine.insert``, ``faster_vector_checks``); ``--writes`` rounds of
each in turn. Last, a flush of 512 rows, milvus-lite's own way and the app's (``lite_maintenance.py``),
``--flushes`` rounds of each in turn: its wall time, which every call of the store waits, and its CPU.

    .venv/bin/python bench/lite_search.py [--flushed 1000] [--waiting 0 64 256 1024 2048]
        [--one-by-one 512] [--sizes 10000 100000] [--queries 100] [--writes 30] [--flushes 10]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.store import DIM, fill, latencies, records, settle  # noqa: E402
from webapp.services.lite_store import LiteVectorStore  # noqa: E402


class Switch:
    """Turn the app's replacements in milvus-lite off and on again."""

    def __init__(self) -> None:
        import milvus_lite.engine.collection as collection
        from milvus_lite.storage.memtable import MemTable

        self.collection, self.memtable = collection, MemTable
        self.search, self.snapshot = collection.execute_search_with_index, MemTable.to_search_snapshot
        if not hasattr(self.search, "__wrapped__") or not hasattr(self.snapshot, "__wrapped__"):
            raise SystemExit("this milvus-lite is not the one the app patches: nothing to compare")

    def __call__(self, theirs: bool) -> None:
        self.collection.execute_search_with_index = self.search.__wrapped__ if theirs else self.search
        self.memtable.to_search_snapshot = self.snapshot.__wrapped__ if theirs else self.snapshot


def both(store: LiteVectorStore, switch: Switch, queries: int, rng: np.random.Generator) -> tuple[float, float]:
    """Return the search p50 in ms with milvus-lite's own code, then with the app's arrays."""
    p50s = []
    for theirs in (True, False):
        switch(theirs)
        latencies(store, 3, rng)  # warm up
        p50s.append(float(np.percentile(latencies(store, queries, rng), 50)))
    switch(False)
    return p50s[0], p50s[1]


def line(label: str, p50s: tuple[float, float]) -> str:
    """Format one row: both p50s and how many times faster the arrays are."""
    return f"{label:34s} {p50s[0]:9.2f} {p50s[1]:9.2f} {p50s[0] / p50s[1]:8.1f}x"


def writes(tmp: Path, rounds: int, rng: np.random.Generator) -> dict[str, float]:
    """Return the median CPU ms to write 64 new rows each way, the ways taking turns."""
    import milvus_lite.engine.collection as collection

    check = collection.validate_record
    ways = {"over gRPC (pymilvus upsert)": (False, check), "engine, each value checked": (True, check.__wrapped__)}
    ways["engine, as the app writes"] = (True, check)
    store = LiteVectorStore(str(tmp / "writes.db"), "bench", DIM, flush_seconds=1e9, flush_rows=10**9)
    cpu: dict[str, list[float]] = {way: [] for way in ways}
    written = 0
    try:
        for _ in range(rounds):
            for way, (direct, validate) in ways.items():
                store.direct, collection.validate_record = direct, validate
                batch = records(written, written + 64, rng)
                t0 = time.process_time()
                store.upsert(batch)
                cpu[way].append((time.process_time() - t0) * 1000)
                written += 64
    finally:
        store.direct, collection.validate_record = True, check
        store.close()
    return {way: float(np.median(ms)) for way, ms in cpu.items()}


def flushes(tmp: Path, rounds: int, rng: np.random.Generator) -> dict[str, tuple[float, float]]:
    """Return the median wall and CPU ms of flushing 512 rows each way (services/lite_maintenance.py), taking turns."""
    import milvus_lite.engine.flush as flush
    from milvus_lite.storage.memtable import MemTable

    app = MemTable._build_data_table, flush.write_data_file
    ways = {"milvus-lite's own": (app[0].__wrapped__, app[1].__wrapped__), "as the app flushes": app}
    store = LiteVectorStore(str(tmp / "flushes.db"), "bench", DIM, flush_seconds=1e9, flush_rows=10**9)
    engine = store._engine()
    assert engine is not None
    took: dict[str, list[tuple[float, float]]] = {way: [] for way in ways}
    written = 0
    try:
        for _ in range(rounds):
            for way, (build, write) in ways.items():
                MemTable._build_data_table, flush.write_data_file = build, write
                fill(store, written, written + 512, rng)
                written += 512
                engine.collection._wait_for_bg(timeout=600)  # no merge of earlier files meanwhile
                t0, c0 = time.perf_counter(), time.thread_time()
                engine.collection.flush()
                took[way].append(((time.perf_counter() - t0) * 1000, (time.thread_time() - c0) * 1000))
                store._schedule.flushed()
    finally:
        MemTable._build_data_table, flush.write_data_file = app
        engine.collection._wait_for_bg(timeout=600)  # a merge left running would find its files gone
        store.close()
    medians = {way: np.median(np.array(ms), axis=0) for way, ms in took.items()}
    return {way: (float(wall), float(cpu)) for way, (wall, cpu) in medians.items()}


def main() -> None:
    """Print both ways' p50 at each point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--flushed", type=int, default=1000, help="flushed vectors under the rows waiting")
    parser.add_argument("--waiting", type=int, nargs="*", default=[0, 64, 256, 1024, 2048])
    parser.add_argument("--one-by-one", type=int, default=512, help="rows waiting, written one at a time (0: none)")
    parser.add_argument("--sizes", type=int, nargs="*", default=[10000, 100000], help="library sizes, all flushed")
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--writes", type=int, default=30, help="rounds of 64-row writes each way (0: none)")
    parser.add_argument("--flushes", type=int, default=10, help="rounds of 512-row flushes each way (0: none)")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    header = f"{'':34s} {'lite, ms':>9s} {'arrays':>9s} {'faster':>9s}"
    with tempfile.TemporaryDirectory() as tmp:
        store = LiteVectorStore(str(Path(tmp) / "waiting.db"), "bench", DIM, flush_seconds=1e9, flush_rows=10**9)
        switch = Switch()
        try:
            fill(store, 0, args.flushed, rng)
            store.flush()
            settle(store)
            print(f"{args.flushed:,} vectors flushed, rows waiting to be flushed (p50 of {args.queries} searches)")
            print(header)
            written = args.flushed
            for waiting in args.waiting:
                while store.unflushed < waiting:
                    batch = min(64, waiting - store.unflushed)
                    fill(store, written, written + batch, rng)
                    written += batch
                print(line(f"{waiting:,} rows waiting", both(store, switch, args.queries, rng)), flush=True)
            if args.one_by_one:
                store.flush()
                settle(store)
                for i in range(written, written + args.one_by_one):
                    store.upsert(records(i, i + 1, rng))  # a write each, as single uploads make them
                label = f"{args.one_by_one:,} waiting, one write each"
                print(line(label, both(store, switch, args.queries, rng)), flush=True)
        finally:
            store.close()
        if args.sizes:
            store = LiteVectorStore(str(Path(tmp) / "sizes.db"), "bench", DIM)
            try:
                print(f"\nlibraries, everything flushed and indexed (p50 of {args.queries} searches)")
                print(header)
                filled = 0
                for size in args.sizes:
                    fill(store, filled, size, rng)
                    store.flush()
                    settle(store)
                    filled = size
                    print(line(f"{size:,} vectors", both(store, switch, args.queries, rng)), flush=True)
            finally:
                store.close()
        if args.writes:
            print(f"\nwriting 64 new rows, CPU ms (median of {args.writes})")
            for way, ms in writes(Path(tmp), args.writes, rng).items():
                print(f"{way:34s} {ms:9.2f}", flush=True)
        if args.flushes:
            print(f"\nflushing 512 rows, ms (median of {args.flushes})\n{'':34s} {'wall':>9s} {'CPU':>9s}")
            for way, (wall, cpu) in flushes(Path(tmp), args.flushes, rng).items():
                print(f"{way:34s} {wall:9.2f} {cpu:9.2f}", flush=True)


if __name__ == "__main__":
    main()
