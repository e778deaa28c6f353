"""`make bench-cpu`: where the CPU of a search goes, by library, in the app and in the raw pipeline.

The raw pipeline (single images on one thread per core, in this process) and the app under
``--clients`` closed-loop clients (Gunicorn, gunicorn.conf.py, Milvus Lite, a library of
``--images`` loaded by a folder job) are each sampled by Linux ``perf record`` for ``--seconds``.
Each library's share of the samples times the CPU an image or a request took in that window (from
/proc) gives its milliseconds: what the app spends beyond the raw pipeline, and in which code.
Needs ``perf`` (Debian's linux-perf) and the right to profile these processes.

    .venv/bin/python bench/cpu.py [--seconds 12] [--clients 16] [--images 1000]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.harness import Server, closed_loop, search_sender, sustained  # noqa: E402
from bench.ingest import make_images  # noqa: E402
from bench.run import bulk_load, write_folder  # noqa: E402
from webapp.models import DEFAULT  # noqa: E402
from webapp.services.embedding import Embedder  # noqa: E402

# Libraries by the file name they start with, in the rows they are added to.
GROUPS = (
    ("onnxruntime (the model)", ("onnxruntime",)),
    ("Python (libpython)", ("libpython",)),
    ("Pillow and image codecs", ("_imaging", "libjpeg", "libpng", "libwebp", "libopenjp", "libtiff")),
    ("the kernel (sockets, scheduling)", ("[kernel",)),
)
REST = "libc, numpy, faiss and the rest"


def shares(data: Path) -> dict[str, float]:
    """Return each group's share of the samples recorded in ``data`` (0 to 1)."""
    report = subprocess.run(
        ["perf", "report", "-i", str(data), "--sort", "dso", "--stdio"], capture_output=True, text=True, check=True
    ).stdout
    out = dict.fromkeys([name for name, _ in GROUPS] + [REST], 0.0)
    for line in report.splitlines():
        parts = line.split()
        if len(parts) < 2 or not parts[0].endswith("%") or line.lstrip().startswith("#"):
            continue
        share, dso = float(parts[0].rstrip("%")) / 100, parts[1]
        group = next((name for name, prefixes in GROUPS if dso.startswith(prefixes)), REST)
        out[group] += share
    total = sum(out.values()) or 1.0
    return {name: value / total for name, value in out.items()}


def profiled(
    pid: int, seconds: float, data: Path, work: Callable[[], tuple[int, float]]
) -> tuple[dict[str, float], float]:
    """Sample ``pid`` while ``work()`` runs; return the groups' shares and the CPU ms of one item.

    ``work`` returns how many items it did and the CPU seconds it took.
    """
    perf = subprocess.Popen(
        ["perf", "record", "-F", "499", "-p", str(pid), "-o", str(data), "--", "sleep", str(seconds)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    items, cpu = work()
    if perf.wait() != 0:
        raise SystemExit(f"perf record -p {pid} failed: is perf allowed here (kernel.perf_event_paranoid)?")
    return shares(data), cpu * 1000 / max(items, 1)


def raw(embedder: Embedder, queries: list[bytes], seconds: float) -> tuple[int, float]:
    """Embed single images on one thread per core for ``seconds``; return how many and the CPU seconds."""
    threads = os.cpu_count() or 1
    t0, c0 = time.perf_counter(), time.process_time()
    rate = sustained(lambda i: embedder.embed(queries[i % len(queries)]), threads, seconds)
    return round(rate * (time.perf_counter() - t0)), time.process_time() - c0


def main() -> None:
    """Profile the raw pipeline, then the app under clients, and print one table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=12)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--images", type=int, default=1000, help="images in the library (a folder job)")
    parser.add_argument("--model-dir", type=Path, default=ROOT / "var" / "models")
    args = parser.parse_args()
    if shutil.which("perf") is None:
        raise SystemExit("bench/cpu.py needs perf (Debian: apt-get install linux-perf)")
    images, queries = make_images(args.images), make_images(32, seed=7)
    embedder = Embedder(args.model_dir, DEFAULT)
    for query in queries:
        embedder.embed(query)  # warm up
    with tempfile.TemporaryDirectory() as tmp:
        raw_shares, raw_ms = profiled(
            os.getpid(), args.seconds, Path(tmp) / "raw.data", lambda: raw(embedder, queries, args.seconds)
        )
        folder = write_folder(Path(tmp) / "import" / "library", images)
        server = Server(
            "flask",
            Path(tmp) / "data",
            args.model_dir,
            Path(tmp) / "server.log",
            WEBAPP_IMPORT_ROOTS=str(folder.parent),
        )
        try:
            bulk_load(server.url, folder)
            time.sleep(5)  # the job's last flush: let Milvus Lite finish indexing, as make bench does
            host, send = server.url.removeprefix("http://"), search_sender(queries)
            closed_loop(send, host, args.clients, 3)  # warm up
            worker = next(pid for pid in server.pids() if pid != server.proc.pid)
            result: list[float] = []

            def load() -> tuple[int, float]:
                cpu = server.cpu_seconds()
                done = closed_loop(send, host, args.clients, args.seconds)
                result.append(done.throughput)
                return done.requests, server.cpu_seconds() - cpu

            app_shares, app_ms = profiled(worker, args.seconds, Path(tmp) / "app.data", load)
        finally:
            server.stop()
    print(f"CPU a search by library, {os.cpu_count()} cores, the default model ({DEFAULT})")
    print(f"| Library | Raw pipeline, one thread per core | App, {args.clients} clients ({result[0]:.1f} req/s) |")
    print("| --- | --- | --- |")
    for name in [*(name for name, _ in GROUPS), REST]:
        print(f"| {name} | {raw_shares[name] * raw_ms:.2f} ms | {app_shares[name] * app_ms:.2f} ms |")
    print(f"| In all | {raw_ms:.2f} ms | {app_ms:.2f} ms |")


if __name__ == "__main__":
    main()
