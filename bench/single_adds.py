"""`make bench-single-adds`: search latency of a library grown one upload at a time vs by jobs.

Two apps under Gunicorn (gunicorn.conf.py, Milvus Lite, loopback), each on its own data folder.
The first gets images one at a time through `POST /api/v1/images`, as scripts, the Add form and
the bootcamp's `/img/upload` send them; the second gets the same images through folder jobs.
At each checkpoint both are searched at once (no idle time) and the single-upload library's p50
is printed as a ratio of the job-loaded one's (target: within 1.5x).

    .venv/bin/python bench/single_adds.py [--images 3000] [--checkpoints 500 1500 3000]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.harness import Server  # noqa: E402
from bench.ingest import make_images, run_job, search_latencies  # noqa: E402

TARGET = 1.5


def add_one_at_a_time(url: str, images: list[bytes], start: int) -> None:
    """Upload images one request each, on one keep-alive connection."""
    session = requests.Session()
    for i, data in enumerate(images, start):
        session.post(f"{url}/api/v1/images", files={"image": (f"{i:05d}.jpg", data)}).raise_for_status()


def add_by_job(url: str, images: list[bytes], start: int, folder: Path) -> None:
    """Write the images into a new folder and load it with one job."""
    part = folder / f"from-{start:05d}"
    part.mkdir(parents=True)
    for i, data in enumerate(images, start):
        (part / f"{i:05d}.jpg").write_bytes(data)
    job = run_job(url, part)
    assert job["status"] == "done", job


def main() -> None:
    """Grow both libraries checkpoint by checkpoint and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=3000)
    parser.add_argument("--checkpoints", type=int, nargs="+", default=[500, 1500, 3000])
    parser.add_argument("--searches", type=int, default=100)
    parser.add_argument("--model-dir", type=Path, default=ROOT / "var" / "models")
    args = parser.parse_args()
    checkpoints = sorted(c for c in args.checkpoints if c <= args.images)
    images = make_images(args.images)
    query = make_images(1, seed=99)[0]
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-single-") as tmp:
        root = Path(tmp)
        # Both servers live at once: IMPORT_ROOTS lets the job server read the benchmark's folders.
        singles = Server("flask", root / "singles", args.model_dir, root / "singles.log")
        jobs = Server(
            "flask", root / "jobs", args.model_dir, root / "jobs.log", WEBAPP_IMPORT_ROOTS=str(root / "folders")
        )
        try:
            done = 0
            for checkpoint in checkpoints:
                add_one_at_a_time(singles.url, images[done:checkpoint], done)
                add_by_job(jobs.url, images[done:checkpoint], done, root / "folders")
                done = checkpoint
                single = float(np.median(search_latencies(singles.url, query, args.searches)))
                loaded = float(np.median(search_latencies(jobs.url, query, args.searches)))
                rows.append((checkpoint, single, loaded))
                print(f"  {checkpoint:6d} images: one at a time p50 {single:6.1f} ms, by jobs {loaded:6.1f} ms")
        finally:
            singles.stop()
            jobs.stop()
    print("\nSearch p50 of a library grown by single uploads, against one loaded by jobs (same size, same run)")
    print(f"{'images':>8} {'single adds':>12} {'jobs':>8} {'ratio':>7}  target <= {TARGET}")
    for checkpoint, single, loaded in rows:
        ratio = single / loaded
        verdict = "ok" if ratio <= TARGET else "MISSED"
        print(f"{checkpoint:8d} {single:9.1f} ms {loaded:5.1f} ms {ratio:7.2f}  {verdict}")


if __name__ == "__main__":
    main()
