"""`make bench-clients`: the app under 16 clients against the raw pipeline on all cores, in alternating rounds.

`make bench`'s 16-client ratio measures the raw pipeline for about a second and the app for 15,
minutes apart, on a machine whose speed drifts by a tenth from one minute to the next. Here each
round measures the raw pipeline (single images, one thread per core, in this process) for
``--seconds``, then the app (Gunicorn, gunicorn.conf.py, Milvus Lite, a library of ``--images``
loaded by a folder job) under ``--clients`` closed-loop clients for as long, once per variant, in
turn. Besides throughput and latency it counts the server's CPU time (all its processes, from
/proc): how busy it kept the cores, how much CPU a request cost and how much of it the query
helpers spent (decoding and embedding queries; the rest is the web worker's), and the helpers'
own memory after the run. Variants are settings
(``--variant WEBAPP_THREADS=12``) or other checkouts of the code (``--checkout /tmp/old``, a git
worktree), which run with this checkout's virtualenv and model.

    .venv/bin/python bench/clients.py [--rounds 2] [--seconds 15] [--clients 16] \
        [--variant WEBAPP_THREADS=12] [--checkout ../other-worktree]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.during_load import settings  # noqa: E402
from bench.harness import closed_loop, sustained  # noqa: E402
from bench.ingest import make_images  # noqa: E402
from bench.run import loaded_app  # noqa: E402
from webapp.models import DEFAULT  # noqa: E402
from webapp.services.embedding import Embedder  # noqa: E402


def one_run(root: Path, variant: str, images: list[bytes], queries: list[bytes], args: Any) -> dict[str, Any]:
    """Start the app from ``root`` with a variant's settings, load the library, then load it with clients."""
    with tempfile.TemporaryDirectory() as tmp:
        with loaded_app(Path(tmp), images, queries, args.model_dir, args.clients, root=root, **settings(variant)) as (
            server,
            host,
            send,
        ):
            helpers = server.helper_pids()
            cpu, in_helpers = server.cpu_seconds(), server.cpu_seconds(helpers)
            result = closed_loop(send, host, args.clients, args.seconds)
            cpu, in_helpers = server.cpu_seconds() - cpu, server.cpu_seconds(helpers) - in_helpers
            memory = [anon_mb(pid) for pid in helpers]
    per_request = 1000 / max(result.requests, 1)
    return {
        "throughput": result.throughput,
        "p50": result.p50,
        "errors": result.errors,
        "cores": cpu / result.seconds,
        "cpu_ms": cpu * per_request,
        "helpers_ms": in_helpers * per_request,
        "helpers": len(helpers),
        "helper_mb": statistics.mean(memory) if memory else 0.0,
    }


def anon_mb(pid: int) -> float:
    """Return a process's own resident memory (RssAnon: not its shared libraries or files), in MB."""
    status = Path(f"/proc/{pid}/status").read_text()
    return next(int(line.split()[1]) for line in status.splitlines() if line.startswith("RssAnon:")) / 1024


COLUMNS = (
    ("raw", "raw all cores /s", "{:.1f}"),
    ("throughput", "app req/s", "{:.1f}"),
    ("ratio", "app / raw", "{:.2f}"),
    ("p50", "p50 ms", "{:.1f}"),
    ("cores", "server cores busy", "{:.2f}"),
    ("cpu_ms", "server CPU ms/request", "{:.2f}"),
    ("helpers_ms", "of which query helpers", "{:.2f}"),
    ("helpers", "helpers", "{:.0f}"),
    ("helper_mb", "MB each (RssAnon)", "{:.0f}"),
    ("errors", "errors", "{:.0f}"),
)


def row(name: str, result: dict[str, Any]) -> str:
    """Return one line of the table."""
    return "| " + " | ".join([name, *(fmt.format(result[key]) for key, _, fmt in COLUMNS)]) + " |"


def main() -> None:
    """Run the rounds and print one line per run, then the medians by variant."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2, help="runs of each variant, taking turns")
    parser.add_argument("--seconds", type=float, default=15, help="duration of the raw run and of the clients' run")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--images", type=int, default=1000, help="images in the library (a folder job)")
    parser.add_argument("--model-dir", type=Path, default=ROOT / "var" / "models")
    parser.add_argument("--variant", action="append", default=[], help="WEBAPP_NAME=value[,...]; repeat to compare")
    parser.add_argument("--checkout", action="append", type=Path, default=[], help="another checkout to compare")
    args = parser.parse_args()
    variants = [(ROOT, v, v or "as is") for v in args.variant or [""]]
    variants += [(path.resolve(), "", str(path)) for path in args.checkout]
    images, queries = make_images(args.images), make_images(32, seed=7)
    embedder = Embedder(args.model_dir, DEFAULT)
    for query in queries:
        embedder.embed(query)  # warm up
    print(f"{args.clients} clients, {args.seconds:g} s each, the default model ({DEFAULT}), {os.cpu_count()} cores")
    print("| variant | " + " | ".join(title for _, title, _ in COLUMNS) + " |")
    print("|" + " --- |" * (len(COLUMNS) + 1))
    runs: dict[str, list[dict[str, Any]]] = {name: [] for _, _, name in variants}
    for _ in range(args.rounds):
        for root, variant, name in variants:
            raw = sustained(lambda i: embedder.embed(queries[i % len(queries)]), os.cpu_count() or 1, args.seconds)
            result = one_run(root, variant, images, queries, args)
            runs[name].append({"raw": raw, **result, "ratio": result["throughput"] / raw})
            print(row(name, runs[name][-1]), flush=True)
    print("\nMedians by variant:")
    for name, results in runs.items():
        print(row(name, {key: statistics.median(r[key] for r in results) for key, _, _ in COLUMNS}))


if __name__ == "__main__":
    main()
