"""Measure warm single-request search latency through the app under Gunicorn, on loopback.

Starts Gunicorn with gunicorn.conf.py on a temporary data folder, indexes the photos bundled with
scikit-image, then times sequential searches (one client, warm) and prints percentiles next to the
in-process cost of the same work (embed + Milvus search) measured on the same machine in the same run.

    .venv/bin/python bench/latency.py [--requests 200]
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import requests
from PIL import Image
from skimage import data as skdata

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.harness import Server  # noqa: E402
from webapp.models import DEFAULT, MODELS  # noqa: E402
from webapp.services.embedding import Embedder  # noqa: E402
from webapp.services.records import Record  # noqa: E402
from webapp.services.vectors import MilvusVectorStore  # noqa: E402

NAMES = ["astronaut", "brick", "camera", "cell", "chelsea", "clock", "coffee", "coins", "grass", "gravel"]
NAMES += ["hubble_deep_field", "immunohistochemistry", "microaneurysms", "moon", "page", "retina", "rocket", "text"]


def photos() -> dict[str, bytes]:
    """Return the bundled photos as JPEG bytes."""
    out = {}
    for name in NAMES:
        buf = io.BytesIO()
        Image.fromarray(getattr(skdata, name)()).convert("RGB").save(buf, "JPEG", quality=90)
        out[name] = buf.getvalue()
    return out


def percentiles(samples: list[float]) -> str:
    """Format p50/p95/p99 and the mean of millisecond samples."""
    q = np.percentile(samples, [50, 95, 99])
    return f"p50 {q[0]:6.1f}  p95 {q[1]:6.1f}  p99 {q[2]:6.1f}  mean {statistics.fmean(samples):6.1f} ms"


def main() -> None:
    """Run the measurement and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--model-dir", type=Path, default=ROOT / "var" / "models")
    parser.add_argument("--model", choices=sorted(MODELS), default=DEFAULT, help="the same on both sides")
    args = parser.parse_args()
    images = photos()
    query = images["chelsea"]
    with tempfile.TemporaryDirectory() as tmp:
        gunicorn = Server(
            "flask", Path(tmp) / "app", args.model_dir, Path(tmp) / "gunicorn.log", WEBAPP_MODEL=args.model
        )
        url = gunicorn.url
        try:
            session = requests.Session()
            for name, data in images.items():
                session.post(f"{url}/api/v1/images", files={"image": (f"{name}.jpg", data)}).raise_for_status()
            for _ in range(20):  # warm up
                session.post(f"{url}/api/v1/search", files={"image": ("q.jpg", query)})
            wall, server = [], []
            for _ in range(args.requests):
                start_t = time.perf_counter()
                response = session.post(f"{url}/api/v1/search", files={"image": ("q.jpg", query)}, data={"top_k": 10})
                wall.append((time.perf_counter() - start_t) * 1000)
                response.raise_for_status()
                server.append(response.json()["took_ms"])
        finally:
            gunicorn.stop()

        embedder = Embedder(args.model_dir, args.model)
        store = MilvusVectorStore(str(Path(tmp) / "raw.db"), "raw", embedder.dim)
        store.upsert(list(_records(embedder, images)))
        embed_ms, search_ms = [], []
        for _ in range(args.requests):
            t0 = time.perf_counter()
            _, vector = embedder.embed(query)
            t1 = time.perf_counter()
            store.search(vector, 10)
            t2 = time.perf_counter()
            embed_ms.append((t1 - t0) * 1000)
            search_ms.append((t2 - t1) * 1000)
        store.close()

    size = "x".join(map(str, Image.open(io.BytesIO(query)).size))
    print(f"library: {len(images)} images; query: chelsea.jpg ({size} JPEG); {args.requests} sequential requests")
    print(f"HTTP round trip (client)   {percentiles(wall)}")
    print(f"server took_ms             {percentiles(server)}")
    print(f"raw embed (in-process)     {percentiles(embed_ms)}")
    print(f"raw Milvus search          {percentiles(search_ms)}")
    raw = np.median(embed_ms) + np.median(search_ms)
    print(f"app p50 - (raw embed p50 + raw search p50) = {np.median(wall) - raw:+.1f} ms")


def _records(embedder: Embedder, images: dict[str, bytes]) -> Iterator[tuple[Record, np.ndarray]]:
    """Embed the photos into records for the raw store."""
    for name, data in images.items():
        decoded, vector = embedder.embed(data)
        yield Record(decoded.sha256, name, decoded.width, decoded.height, "bench", decoded.mime, 0), vector


if __name__ == "__main__":
    main()
