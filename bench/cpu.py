"""`make bench-cpu`: where the CPU of a search goes, by library, in the app and in the raw pipeline.

The raw pipeline (single images on one thread per core, in this process) and the app under
``--clients`` closed-loop clients (Gunicorn, gunicorn.conf.py, Milvus Lite, a library of
``--images`` loaded by a folder job) are each sampled by Linux ``perf record`` for ``--seconds``:
in the app, the web worker and its query helpers (which decode and embed the queries that overlap
others) each by a ``perf`` of their own. Each library's share of a process's samples times the CPU
that process spent on an image or a request in that window (from /proc) gives its milliseconds:
what the app spends beyond the raw pipeline, where, and in which code. Needs ``perf`` (Debian's
linux-perf) and the right to profile these processes.

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
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.harness import closed_loop, sustained  # noqa: E402
from bench.ingest import make_images  # noqa: E402
from bench.run import loaded_app  # noqa: E402
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
NAMES = [*(name for name, _ in GROUPS), REST]


def shares(data: Path) -> dict[str, float]:
    """Return each group's share of the samples recorded in ``data`` (0 to 1)."""
    report = subprocess.run(
        ["perf", "report", "-i", str(data), "--sort", "dso", "--stdio"], capture_output=True, text=True, check=True
    ).stdout
    out = dict.fromkeys(NAMES, 0.0)
    for line in report.splitlines():
        parts = line.split()
        if len(parts) < 2 or not parts[0].endswith("%") or line.lstrip().startswith("#"):
            continue
        share, dso = float(parts[0].rstrip("%")) / 100, parts[1]
        group = next((name for name, prefixes in GROUPS if dso.startswith(prefixes)), REST)
        out[group] += share
    total = sum(out.values()) or 1.0
    return {name: value / total for name, value in out.items()}


class Profile:
    """``perf record`` of some processes from now on, for ``seconds``: their libraries' shares of the samples."""

    def __init__(self, pids: list[int], seconds: float, data: Path) -> None:
        self.pids, self.data = pids, data
        self._perf = subprocess.Popen(
            [
                "perf",
                "record",
                "-F",
                "499",
                "-p",
                ",".join(map(str, pids)),
                "-o",
                str(data),
                "--",
                "sleep",
                str(seconds),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def shares(self) -> dict[str, float]:
        """Wait for the recording to end; return each group's share of its samples."""
        if self._perf.wait() != 0:
            raise SystemExit(f"perf record -p {self.pids} failed: is perf allowed here (kernel.perf_event_paranoid)?")
        return shares(self.data)


def raw(embedder: Embedder, queries: list[bytes], seconds: float) -> tuple[int, float]:
    """Embed single images on one thread per core for ``seconds``; return how many and the CPU seconds."""
    threads = os.cpu_count() or 1
    t0, c0 = time.perf_counter(), time.process_time()
    rate = sustained(lambda i: embedder.embed(queries[i % len(queries)]), threads, seconds)
    return round(rate * (time.perf_counter() - t0)), time.process_time() - c0


Column = tuple[dict[str, float], float]  # each library's share of the samples, and the CPU ms of one item


def app_columns(
    args: argparse.Namespace, tmp: Path, images: list[bytes], queries: list[bytes]
) -> tuple[dict[str, Column], float]:
    """Profile the app's web worker and its query helpers under clients; return their columns and req/s."""
    with loaded_app(tmp, images, queries, args.model_dir, args.clients) as (server, host, send):
        helpers = server.helper_pids()
        worker = next(pid for pid in server.pids() if pid != server.proc.pid and pid not in helpers)
        parts = {name: pids for name, pids in (("App: web worker", [worker]), ("App: query helpers", helpers)) if pids}
        before = {name: server.cpu_seconds(pids) for name, pids in parts.items()}
        profiles = {
            name: Profile(pids, args.seconds, tmp / f"app{i}.data") for i, (name, pids) in enumerate(parts.items())
        }
        done = closed_loop(send, host, args.clients, args.seconds)
        spent = {name: server.cpu_seconds(pids) - before[name] for name, pids in parts.items()}
    columns = {name: (profiles[name].shares(), spent[name] * 1000 / max(done.requests, 1)) for name in parts}
    total = sum(ms for _, ms in columns.values())
    summed = {group: sum(share[group] * ms for share, ms in columns.values()) / (total or 1) for group in NAMES}
    return columns | {"App in all": (summed, total)}, done.throughput


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
        profile = Profile([os.getpid()], args.seconds, Path(tmp) / "raw.data")
        done, cpu = raw(embedder, queries, args.seconds)
        columns: dict[str, Column] = {
            "Raw pipeline, one thread per core": (profile.shares(), cpu * 1000 / max(done, 1))
        }
        app, throughput = app_columns(args, Path(tmp), images, queries)
        columns |= app
    print(
        f"CPU a search by library, {os.cpu_count()} cores, the default model ({DEFAULT}); "
        f"the app under {args.clients} clients answered {throughput:.1f} req/s"
    )
    print("| Library | " + " | ".join(columns) + " |")
    print("| --- |" + " --- |" * len(columns))
    for name in NAMES:
        print(f"| {name} | " + " | ".join(f"{share[name] * ms:.2f} ms" for share, ms in columns.values()) + " |")
    print("| In all | " + " | ".join(f"{ms:.2f} ms" for _, ms in columns.values()) + " |")


if __name__ == "__main__":
    main()
