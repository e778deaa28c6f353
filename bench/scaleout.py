"""`make bench-scaleout`: bulk ingestion scaled out against the embedded default, in one run.

1. Embedded default: Gunicorn, Milvus Lite, SQLite, the job in a thread of the web worker.
2. Scale-out, one worker: Gunicorn + one `flask --app wsgi worker`, PostgreSQL, Redis (Celery) and
   a Milvus server (the test suite's milvus==2.3.5 standalone, but with Milvus's default 200 ms
   time tick, as users run it: the suite's 50 ms tick costs CPU, make bench-milvus-idle), a shared
   storage folder.
3. The same with two workers (on this one machine they share its cores).

Each run loads the same folder into a fresh library after a one-image warm-up job, and the rate is
images divided by the wall time from the POST to `done` (polled every 0.1 s). PostgreSQL, Redis and
Milvus come from Debian's and PyPI's packages (make install-servers, .venv-milvus) and run on
loopback; they are stopped at the end whatever happens.

    .venv/bin/python bench/scaleout.py [--images 1000]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.harness import Server  # noqa: E402
from bench.ingest import make_images  # noqa: E402
from tests.milvus_server import MilvusServer  # noqa: E402
from tests.servers import PostgresServer, RedisServer, Worker, free_port  # noqa: E402
from tests.test_gunicorn import environment  # noqa: E402

TARGET = 0.9


def timed_job(url: str, folder: Path) -> tuple[float, dict[str, Any]]:
    """Load a folder through the API; return the wall time to done and the final job."""
    session = requests.Session()
    start = time.perf_counter()
    job = session.post(f"{url}/api/v1/jobs", json={"folder": str(folder)}, timeout=60).json()
    while (state := session.get(f"{url}{job['url']}", timeout=30).json())["status"] in ("queued", "running"):
        time.sleep(0.1)
    elapsed = time.perf_counter() - start
    if state["status"] != "done":
        raise SystemExit(f"the job ended {state['status']}: {state.get('error')}")
    return elapsed, dict(state)


def write(folder: Path, images: list[bytes]) -> Path:
    """Write JPEG files into a new folder."""
    folder.mkdir(parents=True)
    for i, data in enumerate(images):
        (folder / f"{i:05d}.jpg").write_bytes(data)
    return folder


def run(
    label: str, root: Path, model_dir: Path, folders: tuple[Path, Path], services: dict[str, str], workers: int
) -> float:
    """Start the app (and workers), warm up, time the folder job, stop; return images/s."""
    imports = {"WEBAPP_IMPORT_ROOTS": str(root)}
    data = root / f"{label}-web"
    server = Server("flask", data, model_dir, data.parent / f"{label}-web.log", **imports, **services)
    started: list[Worker] = []
    try:
        for n in range(workers):
            folder = root / f"{label}-worker{n}"
            folder.mkdir()
            env = environment(folder, model_dir, **imports, **services, WEBAPP_WORKER_METRICS_PORT=str(free_port()))
            started.append(Worker(f"{label}{n}", env, folder / "worker.log"))
        for worker in started:
            worker.wait_ready()
        timed_job(server.url, folders[0])  # warm-up: the model is loaded where the work runs
        elapsed, job = timed_job(server.url, folders[1])
    finally:
        for worker in started:
            worker.stop()
        server.stop()
    rate = job["added"] / elapsed
    print(f"  {label:24s} {job['added']:6d} images in {elapsed:6.1f} s: {rate:6.1f} images/s")
    return rate


def main() -> None:
    """Run the three configurations and print the ratios."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--model-dir", type=Path, default=ROOT / "var" / "models")
    args = parser.parse_args()
    images = make_images(args.images + 1)
    with tempfile.TemporaryDirectory(prefix="bench-scaleout-") as tmp:
        root = Path(tmp)
        folders = (write(root / "warmup", images[-1:]), write(root / "photos", images[:-1]))
        print(f"Bulk ingestion of {args.images} images (640 px JPEGs), one run on this machine")
        embedded = run("embedded default", root, args.model_dir, folders, {}, 0)
        milvus = MilvusServer(root / "milvus", time_tick_ms=200)  # stock settings
        postgres, redis = PostgresServer(), RedisServer(root / "redis")
        (root / "milvus").mkdir()
        try:
            milvus.start()
            postgres.start()
            redis.start()
            rates = []
            for workers in (1, 2):
                name = f"bench_{uuid.uuid4().hex[:8]}"
                services = {
                    "WEBAPP_MILVUS_URI": milvus.uri,
                    "WEBAPP_COLLECTION": name,
                    "WEBAPP_DATABASE_URL": postgres.create_database(name),
                    "WEBAPP_BROKER_URL": f"{redis.url.rsplit('/', 1)[0]}/{workers}",
                    "WEBAPP_STORAGE_DIR": str(root / f"storage-{workers}"),
                }
                rates.append(run(f"scale-out, {workers} worker(s)", root, args.model_dir, folders, services, workers))
        finally:
            redis.stop()
            postgres.remove()
            milvus.stop()
    one, two = rates
    verdict = "ok" if one / embedded >= TARGET else "MISSED"
    print(f"\nscale-out (1 worker) / embedded default: {one / embedded:.2f}  (target >= {TARGET}: {verdict})")
    print(f"scale-out 2 workers / 1 worker:          {two / one:.2f}  (both workers on this machine's cores)")


if __name__ == "__main__":
    main()
