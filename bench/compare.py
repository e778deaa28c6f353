"""`make compare`: the Flask app under Gunicorn next to its FastAPI twin under Uvicorn, same load.

Both servers run one worker over the same service layer (webapp.runtime: Towhee/ONNX embedder,
Milvus Lite, the ingestion service) with the same settings, the same library (a bulk folder job of the
same images) and the same closed-loop search load at 1, 4 and 16 clients. Then each loads another
folder while a client polls the job's progress every 0.1 s: does the server stay responsive?

    .venv/bin/python bench/compare.py [--images 500] [--later 500] [--seconds 15]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.ingest import make_images  # noqa: E402
from bench.run import app  # noqa: E402

SERVERS = {"flask": "Flask + Gunicorn (gthread)", "fastapi": "FastAPI + Uvicorn"}


def row(label: str, flask: float, fastapi: float, unit: str) -> str:
    """One line of the side-by-side table, with FastAPI / Flask."""
    ratio = f"{fastapi / flask:8.2f}" if flask else f"{'-':>8s}"
    return f"{label:40s} {flask:10.1f} {fastapi:10.1f} {ratio}  {unit}"


def table(results: dict[str, dict[str, Any]], meta: dict[str, Any]) -> str:
    """Render both servers' figures side by side."""
    f, a = results["flask"], results["fastapi"]
    lines = [
        f"{meta['images']} images in the library, {meta['later']} more loaded while polling; "
        f"{meta['cores']} cores; one worker each; one run, {meta['when']}",
        "",
        f"{'measure':40s} {'Flask':>10s} {'FastAPI':>10s} {'FA/Flask':>8s}",
        row("bulk folder job", f["ingest_images_per_s"], a["ingest_images_per_s"], "images/s"),
        row("search, one client, p50", f["search_ms"]["p50"], a["search_ms"]["p50"], "ms"),
        row("search, one client, p99", f["search_ms"]["p99"], a["search_ms"]["p99"], "ms"),
    ]
    for fl, fa in zip(f["load"], a["load"], strict=True):
        n = fl["clients"]
        lines.append(row(f"{n:2d} clients: throughput", fl["throughput"], fa["throughput"], "req/s"))
        lines.append(row(f"{n:2d} clients: p50", fl["p50"], fa["p50"], "ms"))
        lines.append(row(f"{n:2d} clients: p99", fl["p99"], fa["p99"], "ms"))
        lines.append(row(f"{n:2d} clients: errors", fl["errors"], fa["errors"], ""))
    fp, ap = f["progress_poll_ms"], a["progress_poll_ms"]
    lines.append(row("progress poll during a load, p50", fp["p50"], ap["p50"], "ms"))
    lines.append(row("progress poll during a load, p99", fp["p99"], ap["p99"], "ms"))
    lines.append(row("progress poll during a load, max", fp["max"], ap["max"], "ms"))
    lines.append(row("peak server memory", f["peak_memory_mb"], a["peak_memory_mb"], "MB"))
    return "\n".join(lines)


def main() -> None:
    """Run both servers one after the other and print the comparison."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=500)
    parser.add_argument("--later", type=int, default=500, help="images loaded while polling progress")
    parser.add_argument("--requests", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--model-dir", type=Path, default=ROOT / "var" / "models")
    parser.add_argument("--json", type=Path, default=ROOT / "bench" / "results" / "compare.json")
    args = parser.parse_args()
    images = make_images(args.images)
    later = make_images(args.later, seed=3)
    queries = make_images(32, seed=7)
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for kind in SERVERS:
            results[kind] = app(kind, args.model_dir, images, queries, Path(tmp), args.requests, args.seconds, later)
    meta = {
        "images": args.images,
        "later": args.later,
        "cores": os.cpu_count(),
        "when": time.strftime("%Y-%m-%d %H:%M"),
    }
    print(table(results, meta))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({**meta, **results}, indent=2))
    print(f"\nwritten to {args.json}")


if __name__ == "__main__":
    main()
