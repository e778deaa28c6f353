"""The suggested keeper (services/keepers.py): is it the original, per kind of copy, and what does
measuring a picture's fill cost?

Pairs each copy `flask evaluate --duplicates` makes of a folder's images (five or six kinds, of each
image at least 256 px a side) with its original, as a scan groups them, and counts the pairs whose
suggested keeper is the original. Then times ``keepers.fill`` on a thumbnail and on a 12-megapixel
JPEG whose thumbnail was never made.

    .venv/bin/python bench/keepers.py [FOLDER]

Without a folder, it runs on the set the README quotes: scikit-image's photos and crops of them.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections import Counter
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.fingerprints import evaluation_set, timed  # noqa: E402
from webapp.evaluation import MIN_COPY_SIDE, image_files  # noqa: E402
from webapp.evaluation_copies import DUPLICATE_COPIES, copy_chunks  # noqa: E402
from webapp.services.keepers import Copy, fill, keeper  # noqa: E402
from webapp.services.records import Record  # noqa: E402


def copy_of(path: Path, sha: str, added_at: int) -> Copy:
    with Image.open(path) as img:
        width, height = img.size
    return Copy(Record(sha, path.name, width, height, "", "image/jpeg", added_at), path, path)


def kept(folder: Path, tmp: Path) -> None:
    """Print, per kind of copy, how many of its pairs with their original keep the original."""
    names = [str(path.relative_to(folder)) for path in image_files(folder)]
    originals, total = Counter[str](), Counter[str]()
    chunks = copy_chunks(folder, names, 64_000_000, [], table=DUPLICATE_COPIES, min_side=MIN_COPY_SIDE)
    for chunk in chunks:
        for (index, kind), data in chunk:
            path = tmp / f"{index}-{kind}.jpg"
            path.write_bytes(data)
            group = {"original": copy_of(folder / names[index], "original", 0), "copy": copy_of(path, "copy", 1)}
            total[kind] += 1
            originals[kind] += keeper(group) == "original"
    print("the original suggested as the keeper over its copy:")
    for kind, n in total.items():
        print(f"  {kind}: {originals[kind]} of {n}")


def costs(tmp: Path, repeats: int) -> None:
    """Print what measuring the fill costs on the files a scan reads."""
    from skimage import data

    photo = Image.fromarray(data.astronaut())
    photo.resize((4000, 3000), Image.Resampling.BICUBIC).save(tmp / "large.jpg", quality=90)
    photo.resize((320, 320)).save(tmp / "thumbnail.jpg", quality=85)
    print(f"the fill of one picture, median of {repeats}:")
    for name in ("thumbnail", "large"):
        print(f"  from {name}.jpg: {timed(lambda path=tmp / f'{name}.jpg': fill(path), repeats):.2f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, nargs="?", help="default: scikit-image's photos and crops of them")
    parser.add_argument("--repeats", type=int, default=50)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "copies").mkdir()
        kept(args.folder or evaluation_set(Path(tmp)), Path(tmp) / "copies")
        costs(Path(tmp), args.repeats)


if __name__ == "__main__":
    main()
