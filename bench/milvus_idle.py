"""The test suite's Milvus server idle: the CPU it keeps busy by time tick and collections loaded.

Each loaded collection ticks as the proxy does, so an idle server is not idle: this is why the
suite ticks every 50 ms (tests/milvus_server.py) and stops the server after its last test
(tests/conftest.py). For each time tick given, it starts the server on a temporary folder, makes
and loads the collections as the suite makes them ahead of its tests (PreparedCollections), waits
5 s, then reads the server's CPU time over the window.

    .venv/bin/python bench/milvus_idle.py [--ticks 20 50 200] [--collections 9] [--window 30]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.milvus_server import MilvusServer, fresh_name  # noqa: E402
from webapp.config import Defaults  # noqa: E402
from webapp.models import DEFAULT, MODELS  # noqa: E402
from webapp.services.milvus_schema import ensure  # noqa: E402


def cpu_seconds(pid: int) -> float:
    """Return the user and system CPU time of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def idle_share(tick_ms: int, collections: int, window: float) -> float:
    """Return the share of one core the server kept busy, idle with ``collections`` loaded."""
    from pymilvus import MilvusClient

    with tempfile.TemporaryDirectory(prefix="milvus-idle-") as folder:
        server = MilvusServer(Path(folder), time_tick_ms=tick_ms)
        server.start()
        try:
            assert server.proc is not None
            client = MilvusClient(uri=server.uri, timeout=60)
            for _ in range(collections):
                ensure(client, fresh_name(), MODELS[DEFAULT].dim, Defaults.HNSW_M, Defaults.HNSW_EF_CONSTRUCTION)
            client.close()
            time.sleep(5)
            before, start = cpu_seconds(server.proc.pid), time.monotonic()
            time.sleep(window)
            return (cpu_seconds(server.proc.pid) - before) / (time.monotonic() - start)
        finally:
            server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ticks", type=int, nargs="+", default=[20, 50, 200], help="proxy.timeTickInterval (ms)")
    parser.add_argument("--collections", type=int, default=9, help="collections loaded (the suite has up to 9)")
    parser.add_argument("--window", type=float, default=30, help="seconds of CPU time read")
    args = parser.parse_args()
    print(f"Milvus 2.3.5 standalone, idle with {args.collections} collections loaded, {args.window:.0f} s each")
    for tick in args.ticks:
        share = idle_share(tick, args.collections, args.window)
        print(f"time tick {tick:4d} ms: {100 * share:5.1f}% of a core")


if __name__ == "__main__":
    main()
