"""`make bench-during-load`: a search during a bulk load against the same search idle, in alternating rounds.

What `make bench`'s line "search during a load" measures, repeated so that settings can be compared
on a noisy machine. Each run starts the app (Gunicorn, gunicorn.conf.py, Milvus Lite) with one
variant's settings, loads ``--images`` by a folder job (alone), times ``--requests`` searches one
after another (idle), then loads ``--later`` more while a client searches every ``--every`` seconds.
Each round runs every variant once, in turn. It prints, per run and then as medians by variant:
the load's rate alone and while searched, and the search's p50 idle and during the load (with the
p95 and the slowest during the load: a search that meets a Milvus Lite flush waits for it), in all
(client side) and by step from the answers' Server-Timing header (embed: decode and embed the
query; search: the vector search).

    .venv/bin/python bench/during_load.py [--rounds 2] [--later 1500] [--every 0.5] \
        [--variant WEBAPP_MILVUS_FLUSH_ROWS=64 --variant WEBAPP_MILVUS_FLUSH_ROWS=512]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.harness import Server, search_sender, sequential_searches  # noqa: E402
from bench.ingest import make_images  # noqa: E402
from bench.run import bulk_load, load_while_searched, write_folder  # noqa: E402

STEPS = ("embed", "search")
nan = float("nan")


def p50(samples: list[float]) -> float:
    """Return the median of some samples (NaN when there are none)."""
    return statistics.median(samples) if samples else nan


def p95(samples: list[float]) -> float:
    """Return the 95th percentile of some samples (NaN when there are fewer than two)."""
    return statistics.quantiles(samples, n=20)[-1] if len(samples) > 1 else nan


def settings(variant: str) -> dict[str, str]:
    """Return a variant's environment: "A=1,B=2" (or "" for the defaults)."""
    pairs = [item.split("=", 1) for item in variant.split(",") if item]
    if any(len(pair) != 2 or not pair[0].startswith("WEBAPP_") for pair in pairs):
        raise SystemExit(f"a variant is WEBAPP_NAME=value[,WEBAPP_OTHER=value]: {variant!r}")
    return dict(pairs)


def one_run(variant: str, images: list[bytes], later: list[bytes], queries: list[bytes], args: Any) -> dict[str, Any]:
    """Start the app with a variant's settings, load, search idle, then load more while searching."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = write_folder(Path(tmp) / "import" / "library", images)
        env = {"WEBAPP_IMPORT_ROOTS": str(folder.parent), **settings(variant)}
        server = Server("flask", Path(tmp) / "data", args.model_dir, Path(tmp) / "server.log", **env)
        try:
            t0 = time.perf_counter()
            bulk_load(server.url, folder)
            alone = len(images) / (time.perf_counter() - t0)
            time.sleep(5)  # the job's last flush: let Milvus Lite finish indexing, as make bench does
            host = server.url.removeprefix("http://")
            idle_steps: list[dict[str, float]] = []
            idle = sequential_searches(search_sender(queries, steps=idle_steps), host, args.requests)
            busy_steps: list[dict[str, float]] = []
            send = search_sender(queries, steps=busy_steps)
            state, _, loaded, busy = load_while_searched(server.url, folder.parent / "later", later, send, args.every)
        finally:
            server.stop()
    if state["added"] != len(later):
        raise SystemExit(f"the load did not add every image: {state}")
    idle_steps = idle_steps[-len(idle) :]  # the warm-up searches are not timed
    result = {"alone": alone, "loaded": loaded, "kept": loaded / alone, "searches": len(busy)}
    result |= {"idle": p50(idle), "during": p50(busy), "during_p95": p95(busy), "during_max": max(busy, default=nan)}
    for step in STEPS:
        result[f"idle_{step}"] = p50([s[step] for s in idle_steps])
        result[f"during_{step}"] = p50([s[step] for s in busy_steps])
    result["ratio"] = result["during"] / result["idle"]
    return result


COLUMNS = (
    ("alone", "load alone /s", "{:.1f}"),
    ("kept", "kept", "{:.2f}"),
    ("idle", "idle p50", "{:.1f}"),
    ("during", "during p50", "{:.1f}"),
    ("ratio", "during/idle", "{:.2f}"),
    ("during_p95", "during p95", "{:.1f}"),
    ("during_max", "during max", "{:.1f}"),
    ("idle_embed", "embed idle", "{:.1f}"),
    ("during_embed", "embed during", "{:.1f}"),
    ("idle_search", "search idle", "{:.2f}"),
    ("during_search", "search during", "{:.2f}"),
    ("searches", "searches", "{:d}"),
)


def row(name: str, result: dict[str, Any]) -> str:
    """Return one line of the table."""
    cells = [fmt.format(result[key]) if key != "searches" else str(result[key]) for key, _, fmt in COLUMNS]
    return "| " + " | ".join([name, *cells]) + " |"


def main() -> None:
    """Run the rounds and print one line per run, then the medians by variant."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2, help="runs of each variant, taking turns")
    parser.add_argument("--images", type=int, default=1000, help="images loaded first, alone")
    parser.add_argument("--later", type=int, default=1500, help="images loaded while a client searches")
    parser.add_argument("--every", type=float, default=0.5, help="seconds between two searches during the load")
    parser.add_argument("--requests", type=int, default=100, help="searches one after another, idle")
    parser.add_argument("--model-dir", type=Path, default=ROOT / "var" / "models")
    parser.add_argument(
        "--variant", action="append", default=[], help="WEBAPP_NAME=value[,...]; repeat to compare (default: as is)"
    )
    args = parser.parse_args()
    variants = args.variant or [""]
    images, later = make_images(args.images), make_images(args.later, seed=9)
    queries = make_images(32, seed=7)
    print("| variant | " + " | ".join(title for _, title, _ in COLUMNS) + " |")
    print("|" + " --- |" * (len(COLUMNS) + 1))
    runs: dict[str, list[dict[str, Any]]] = {variant: [] for variant in variants}
    for _ in range(args.rounds):
        for variant in variants:
            runs[variant].append(one_run(variant, images, later, queries, args))
            print(row(variant or "as is", runs[variant][-1]), flush=True)
    print("\nMedians by variant (ms; the load in images/s):")
    for variant, results in runs.items():
        median = {key: statistics.median(r[key] for r in results) for key, _, _ in COLUMNS}
        median["searches"] = int(median["searches"])
        print(row(variant or "as is", median))


if __name__ == "__main__":
    main()
