"""Peak resident memory of a folder job of large files: A4 pages scanned at 300 dpi, uncompressed.

Writes ``--files`` distinct scans (2480 x 3508 pixels of text on white, 26 MB each as TIFF or BMP)
to a temporary folder, loads them with one folder job through the app in this process (Milvus Lite,
SQLite, the default model), and prints the job's time and the process's resident set before it and
at its peak (VmRSS, sampled every 20 ms), and how far one scan compresses as a zip entry. With
``--photos``, the files are that many 640 px photos saved as PNG instead (bench/ingest.py's). The
folder and the library are removed afterwards.

    .venv/bin/python bench/large_files.py [--files 96] [--format TIFF] [--photos]
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import tempfile
import threading
import time
import zlib
from pathlib import Path

from PIL import Image, ImageDraw

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ["WEBAPP_SEARCH_PROCESSES"] = "0"  # queries embedded here: no helper processes to count

from webapp import create_app  # noqa: E402
from webapp.runtime import EXTENSION  # noqa: E402


def rss_mb() -> float:
    """Return this process's resident set in MB."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def write_scans(folder: Path, count: int, fmt: str) -> int:
    """Write ``count`` distinct scanned pages; return their bytes in all."""
    for i in range(count):
        page = Image.new("RGB", (2480, 3508), "white")
        draw = ImageDraw.Draw(page)
        for line in range(40):
            draw.text((200 + (i * 7) % 300, 200 + line * 70), f"page {i} line {line} " * 8, fill="black")
        page.save(folder / f"scan{i:03d}.{fmt.lower()}", fmt)
    return sum(path.stat().st_size for path in folder.iterdir())


def write_photos(folder: Path, count: int) -> int:
    """Write ``count`` distinct 640 px photos as PNG; return their bytes in all."""
    from bench.ingest import make_images

    for i, data in enumerate(make_images(count)):
        Image.open(io.BytesIO(data)).save(folder / f"photo{i:04d}.png", "PNG")
    return sum(path.stat().st_size for path in folder.iterdir())


def zip_ratio(path: Path) -> float:
    """Return how far a file compresses as a zip entry (deflate, zipfile's default level)."""
    data = path.read_bytes()
    return len(data) / len(zlib.compress(data, 6))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=96)
    parser.add_argument("--format", choices=["TIFF", "BMP"], default="TIFF")
    parser.add_argument("--photos", action="store_true", help="640 px photos as PNG instead of scans")
    args = parser.parse_args()
    what = "PNG photos" if args.photos else f"{args.format} scans"
    with tempfile.TemporaryDirectory(prefix="large-files-") as tmp:
        folder = Path(tmp) / "files"
        folder.mkdir()
        size = write_photos(folder, args.files) if args.photos else write_scans(folder, args.files, args.format)
        ratio = zip_ratio(next(folder.iterdir()))
        data = Path(tmp) / "data"
        settings = {"DATA_DIR": str(data), "MODEL_DIR": str(ROOT / "var" / "models"), "SECRET_KEY": "bench"}
        app = create_app({**settings, "IMPORT_ROOTS": [tmp], "MILVUS_URI": str(data / "milvus.db")})
        client = app.test_client()
        first = next(folder.iterdir()).read_bytes()  # opens the model and the store before the count
        client.post("/api/v1/search", data={"image": (io.BytesIO(first), "query")})
        before, peak, done = rss_mb(), [0.0], threading.Event()

        def sample() -> None:
            while not done.is_set():
                peak[0] = max(peak[0], rss_mb())
                time.sleep(0.02)

        threading.Thread(target=sample, daemon=True).start()
        started = time.perf_counter()
        url = client.post("/api/v1/jobs", json={"folder": str(folder)}).get_json()["url"]
        while (state := client.get(url).get_json())["status"] in ("queued", "running"):
            time.sleep(0.2)
        took = time.perf_counter() - started
        done.set()
        app.extensions[EXTENSION].close()
    outcome = f"{state['status']}, {state['added']} added in {took:.1f} s"
    print(f"{args.files} {what}, {size / 1e6:,.0f} MB: {outcome}")
    print(f"resident memory: {before:,.0f} MB before the job, {peak[0]:,.0f} MB at its peak")
    print(f"one of them as a zip entry compresses {ratio:,.0f}:1")


if __name__ == "__main__":
    main()
