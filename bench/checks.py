"""What a check costs next to a load, and what it finds of copies it is shown.

Generates N photo-like JPEGs (``bench/ingest.py``'s: crops and tints of 14 of the photos bundled
with scikit-image), loads them through a Gunicorn server on loopback (a folder job), then checks a
second folder of N files against the library: a third the same files, a third saved again at half
size and JPEG quality 30, a third new (made the same way from the 4 other photos). Prints both
jobs' rates and what the check found of each third.

    .venv/bin/python bench/checks.py [--images 1000]
"""

from __future__ import annotations

import argparse
import io
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import requests
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.harness import Server  # noqa: E402
from bench.ingest import make_images  # noqa: E402
from bench.latency import NAMES  # noqa: E402

HELD_OUT = 14  # the library is made of the first photos; the new files, of the others


def resaved(data: bytes) -> bytes:
    """Return a copy at half size, saved again at JPEG quality 30."""
    img = Image.open(io.BytesIO(data))
    out = io.BytesIO()
    img.resize((img.width // 2, img.height // 2)).save(out, "JPEG", quality=30)
    return out.getvalue()


def timed_job(url: str, body: dict[str, Any]) -> tuple[dict[str, Any], float]:
    """Start a job, wait for its end; return it and its images per second from the POST to its end."""
    t0 = time.perf_counter()
    job = requests.post(f"{url}/api/v1/jobs", json=body).json()
    while (state := requests.get(f"{url}{job['url']}").json())["status"] in ("queued", "running"):
        time.sleep(0.1)
    return state, state["processed"] / (time.perf_counter() - t0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--model-dir", type=Path, default=ROOT / "var" / "models")
    args = parser.parse_args()
    images = make_images(args.images, names=NAMES[:HELD_OUT])
    third = args.images // 3
    shown = {
        "same": images[:third],
        "resaved": [resaved(data) for data in images[third : 2 * third]],
        "new": make_images(args.images - 2 * third, seed=7, names=NAMES[HELD_OUT:]),
    }
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "import"
        library, checked = root / "library", root / "checked"
        for folder, files in ((library, {"": images}), (checked, shown)):
            for part, batch in files.items():
                (folder / part).mkdir(parents=True, exist_ok=True)
                for i, data in enumerate(batch):
                    (folder / part / f"{i:05d}.jpg").write_bytes(data)
        server = Server(
            "flask", Path(tmp) / "app", args.model_dir, Path(tmp) / "gunicorn.log", WEBAPP_IMPORT_ROOTS=str(root)
        )
        try:
            load, load_rate = timed_job(server.url, {"folder": str(library)})
            check, check_rate = timed_job(server.url, {"folder": str(checked), "check": True})
            found: dict[str, dict[str, int]] = {part: {} for part in shown}
            params: dict[str, int] = {"page_size": 100}
            while page := requests.get(f"{server.url}/api/v1/jobs/{check['id']}/matches", params=params).json():
                for item in page:
                    part = item["name"].split("/")[0]
                    found[part][item["verdict"]] = found[part].get(item["verdict"], 0) + 1
                params["after"] = page[-1]["position"]
        finally:
            server.stop()
    print(f"load of {load['processed']} files: {load_rate:.1f} images/s ({load['added']} added)")
    print(f"check of {check['processed']} files: {check_rate:.1f} images/s ({check_rate / load_rate:.2f} of the load)")
    for part, verdicts in found.items():
        print(f"  {part:8s} {len(shown[part]):5d} files: " + ", ".join(f"{v} {n}" for v, n in sorted(verdicts.items())))


if __name__ == "__main__":
    main()
