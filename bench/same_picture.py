"""What telling the same picture costs a search: ``same_picture=true`` against a plain search.

Starts Gunicorn on a temporary data folder, loads N photo-like JPEGs (``bench/ingest.py``'s) in a
folder job, then sends sequential searches (one client, warm) of copies of them (half size, JPEG
quality 30), alternating plain and judged ones, and prints both p50s and how many of the judged
searches marked their original, first, as the same picture.

    .venv/bin/python bench/same_picture.py [--images 1000] [--requests 200]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.checks import resaved, timed_job  # noqa: E402
from bench.harness import Server  # noqa: E402
from bench.ingest import make_images  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--model-dir", type=Path, default=ROOT / "var" / "models")
    args = parser.parse_args()
    images = make_images(args.images)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "import" / "library"
        folder.mkdir(parents=True)
        for i, data in enumerate(images):
            (folder / f"{i:05d}.jpg").write_bytes(data)
        server = Server(
            "flask",
            Path(tmp) / "app",
            args.model_dir,
            Path(tmp) / "gunicorn.log",
            WEBAPP_IMPORT_ROOTS=str(folder.parent),
        )
        times: dict[bool, list[float]] = {False: [], True: []}
        first_is_it = marked = anywhere = 0
        try:
            load, _ = timed_job(server.url, {"folder": str(folder)})
            session = requests.Session()
            for i in range(args.requests + 8):
                asked = i % 2 == 1
                query = resaved(images[i % len(images)])
                start = time.perf_counter()
                answer = session.post(
                    f"{server.url}/api/v1/search",
                    files={"image": ("q.jpg", query)},
                    data={"top_k": "10", "same_picture": "true" if asked else "false"},
                )
                took = (time.perf_counter() - start) * 1000
                answer.raise_for_status()
                if i < 8:
                    continue  # warming up
                times[asked].append(took)
                if asked:
                    results, name = answer.json()["results"], f"{i % len(images):05d}.jpg"
                    first_is_it += results[0]["filename"] == name
                    marked += results[0]["filename"] == name and results[0]["same_picture"]
                    anywhere += any(r["filename"] == name and r["same_picture"] for r in results)
        finally:
            server.stop()
    plain, judged = statistics.median(times[False]), statistics.median(times[True])
    print(f"library of {load['added']} images; {args.requests} searches of half-size copies at JPEG quality 30")
    print(f"plain search p50 {plain:.1f} ms, with same_picture {judged:.1f} ms ({judged - plain:+.1f} ms)")
    print(
        f"of {len(times[True])} judged: the original first {first_is_it}, first and marked the same picture "
        f"{marked}, marked among the 10 {anywhere}"
    )


if __name__ == "__main__":
    main()
