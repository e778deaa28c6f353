"""A bounded load test on loopback: concurrent clients mixing searches, uploads and page views,
while a bulk job runs. Prints counts, errors and latency percentiles; exits 1 on any error or
any upload that cannot be found afterwards.

    .venv/bin/python bench/load.py [--clients 16] [--seconds 30]
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.harness import Server  # noqa: E402
from bench.ingest import make_images  # noqa: E402


class Load:
    """Shared results of the client threads."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.latency: dict[str, list[float]] = defaultdict(list)
        self.errors: list[str] = []
        self.uploaded: list[str] = []

    def record(self, kind: str, started: float, response: requests.Response, ok: tuple[int, ...]) -> None:
        ms = (time.perf_counter() - started) * 1000
        with self.lock:
            self.latency[kind].append(ms)
            if response.status_code not in ok:
                self.errors.append(f"{kind}: {response.status_code} {response.text[:200]}")


def client(url: str, load: Load, queries: list[bytes], uploads: list[bytes], ids: list[str], until: float) -> None:
    """One client: a loop of weighted random actions until the deadline."""
    session = requests.Session()
    rng = random.Random(threading.get_ident())
    while time.perf_counter() < until:
        action = rng.random()
        started = time.perf_counter()
        try:
            if action < 0.5:
                r = session.post(f"{url}/api/v1/search", files={"image": ("q.jpg", rng.choice(queries))})
                load.record("search", started, r, (200,))
            elif action < 0.7:
                with load.lock:
                    data = uploads.pop() if uploads else None
                if data is None:
                    continue
                r = session.post(f"{url}/api/v1/images", files={"image": ("new.jpg", data)})
                load.record("upload", started, r, (201,))
                if r.status_code == 201:
                    with load.lock:
                        load.uploaded.append(r.json()["id"])
            else:
                path = rng.choice(["/", "/library", f"/images/{rng.choice(ids)}", "/jobs"])
                r = session.get(url + path)
                load.record("page", started, r, (200,))
        except requests.RequestException as exc:
            with load.lock:
                load.errors.append(f"request failed: {exc}")


def main() -> int:
    """Run the load and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--model-dir", type=Path, default=ROOT / "var" / "models")
    args = parser.parse_args()
    library = make_images(200, seed=10)
    bulk = make_images(1500, seed=11)
    uploads = make_images(2000, seed=12)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "import" / "bulk"
        folder.mkdir(parents=True)
        for i, data in enumerate(bulk):
            (folder / f"{i:05d}.jpg").write_bytes(data)
        roots = str(Path(tmp) / "import")
        gunicorn = Server(
            "flask", Path(tmp) / "app", args.model_dir, Path(tmp) / "gunicorn.log", WEBAPP_IMPORT_ROOTS=roots
        )
        url = gunicorn.url
        try:
            ids = [requests.post(f"{url}/api/v1/images", files={"image": ("l.jpg", d)}).json()["id"] for d in library]
            job = requests.post(f"{url}/api/v1/jobs", json={"folder": str(folder)}).json()
            load = Load()
            until = time.perf_counter() + args.seconds
            threads = [
                threading.Thread(target=client, args=(url, load, library, uploads, ids, until))
                for _ in range(args.clients)
            ]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            state = requests.get(f"{url}{job['url']}").json()
            lost = [i for i in load.uploaded if requests.get(f"{url}/api/v1/images/{i}").status_code != 200]
        finally:
            gunicorn.stop()

    total = sum(len(v) for v in load.latency.values())
    print(f"{args.clients} clients for {args.seconds:.0f} s on loopback, one Gunicorn worker (Milvus Lite)")
    print(f"bulk job meanwhile: {state['status']}, {state['processed']}/{state['total']} processed")
    for kind, ms in sorted(load.latency.items()):
        q = np.percentile(ms, [50, 95, 99])
        print(
            f"{kind:7s} {len(ms):6d} requests  p50 {q[0]:7.1f}  p95 {q[1]:7.1f}  p99 {q[2]:7.1f}  max {max(ms):7.1f} ms"
        )
    print(
        f"total   {total:6d} requests, {total / args.seconds:.1f}/s; errors {len(load.errors)}; "
        f"uploads {len(load.uploaded)}, lost {len(lost)}"
    )
    for error in load.errors[:10]:
        print("  ", error)
    return 1 if load.errors or lost else 0


if __name__ == "__main__":
    sys.exit(main())
