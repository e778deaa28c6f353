"""Measure bulk ingestion through the app next to the raw embedding pipeline, in one run.

Generates N distinct photo-like JPEGs (random crops, sizes and tints of the photos bundled with
scikit-image, 640 px on the long side), then:
  1. raw: the batched Towhee/ONNX pipeline alone, in-process (decode + preprocess + embed);
  2. app: Gunicorn (gunicorn.conf.py) on loopback, one folder job through the API, timed from the
     POST to the job's end (embedding, thumbnails, file writes, Milvus Lite upserts, SQLite progress).

    .venv/bin/python bench/ingest.py [--images 2000]
"""

from __future__ import annotations

import argparse
import io
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import requests
from PIL import Image, ImageEnhance
from skimage import data as skdata

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.harness import Server  # noqa: E402
from bench.latency import NAMES  # noqa: E402
from webapp.models import DEFAULT, MODELS  # noqa: E402
from webapp.services.embedding import Embedder  # noqa: E402


def make_images(count: int, seed: int = 0, names: Sequence[str] = NAMES) -> list[bytes]:
    """Return ``count`` distinct JPEGs derived from the bundled photos (those of ``names``)."""
    rng = np.random.default_rng(seed)
    bases = [Image.fromarray(getattr(skdata, name)()).convert("RGB") for name in names]
    out = []
    for i in range(count):
        base = bases[i % len(bases)]
        w, h = base.size
        cw, ch = int(w * rng.uniform(0.5, 1.0)), int(h * rng.uniform(0.5, 1.0))
        x, y = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
        img = base.crop((x, y, x + cw, y + ch)).resize((640, int(640 * ch / cw)), Image.Resampling.BILINEAR)
        img = ImageEnhance.Color(img).enhance(float(rng.uniform(0.6, 1.4)))
        buf = io.BytesIO()
        img.save(buf, "JPEG", quality=int(rng.integers(75, 95)))
        out.append(buf.getvalue())
    return out


def run_job(url: str, folder: Path, meanwhile: Callable[[], None] | None = None) -> dict[str, Any]:
    """Load a folder through the API and return the finished job; call ``meanwhile`` while it runs."""
    job = requests.post(f"{url}/api/v1/jobs", json={"folder": str(folder)}).json()
    while (state := requests.get(f"{url}{job['url']}").json())["status"] in ("queued", "running"):
        if meanwhile is not None:
            meanwhile()
        time.sleep(0.1)
    return dict(state)


def search_latencies(url: str, image: bytes, count: int) -> list[float]:
    """Time ``count`` sequential searches, in ms."""
    out = []
    for _ in range(count):
        t0 = time.perf_counter()
        requests.post(f"{url}/api/v1/search", files={"image": ("q.jpg", image)}).raise_for_status()
        out.append((time.perf_counter() - t0) * 1000)
    return out


def main() -> None:
    """Run both measurements and print them side by side."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--model-dir", type=Path, default=ROOT / "var" / "models")
    parser.add_argument("--model", choices=sorted(MODELS), default=DEFAULT, help="the same on both sides")
    args = parser.parse_args()
    images = make_images(args.images)

    embedder = Embedder(args.model_dir, args.model)
    list(embedder.embed_many(list(enumerate(images[:32]))))  # warm up
    t0 = time.perf_counter()
    rows = list(embedder.embed_many(list(enumerate(images))))
    raw_rate = len(rows) / (time.perf_counter() - t0)
    del embedder

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "import" / "photos"
        more = Path(tmp) / "import" / "more"
        for path, batch in ((folder, images), (more, make_images(len(images) // 2, seed=1))):
            path.mkdir(parents=True)
            for i, data in enumerate(batch):
                (path / f"{i:05d}.jpg").write_bytes(data)
        roots = str(Path(tmp) / "import")
        gunicorn = Server(
            "flask",
            Path(tmp) / "app",
            args.model_dir,
            Path(tmp) / "gunicorn.log",
            WEBAPP_IMPORT_ROOTS=roots,
            WEBAPP_MODEL=args.model,
        )
        url = gunicorn.url
        try:
            idle = search_latencies(url, images[0], 20)
            t0 = time.perf_counter()
            job = requests.post(f"{url}/api/v1/jobs", json={"folder": str(folder)}).json()
            while (state := requests.get(f"{url}{job['url']}").json())["status"] in ("queued", "running"):
                time.sleep(0.2)
            app_seconds = time.perf_counter() - t0
            again = run_job(url, folder)
            # A second, different folder while one client searches in a loop.
            busy: list[float] = []
            other = run_job(url, more, lambda: busy.extend(search_latencies(url, images[0], 1)))
        finally:
            gunicorn.stop()
    assert state["status"] == "done" and state["added"] == len(images), state
    app_rate = len(images) / app_seconds
    print(f"{len(images)} distinct 640px JPEGs, 2-core machine, one run")
    print(f"raw pipeline (batched, in-process)   {raw_rate:7.1f} images/s")
    print(f"app folder job through the API      {app_rate:7.1f} images/s  ({app_seconds:.1f} s end to end)")
    print(f"app / raw                            {app_rate / raw_rate:7.2f}")
    print(f"search while idle (one client)        p50 {np.median(idle):6.1f} ms  p95 {np.percentile(idle, 95):6.1f} ms")
    print(f"second load of the same folder        added {again['added']}, duplicates {again['duplicates']}")
    print(f"another folder while searching        {other['rate']:7.1f} images/s ({other['added']} images)")
    print(
        f"search during that job ({len(busy)} requests)  p50 {np.median(busy):6.1f} ms"
        f"  p95 {np.percentile(busy, 95):6.1f} ms  max {max(busy):6.1f} ms"
    )


if __name__ == "__main__":
    main()
