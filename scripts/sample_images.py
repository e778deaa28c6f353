"""Write evaluation folders from the images bundled with scikit-image (nothing is downloaded).

python scripts/sample_images.py OUT
  OUT/photos/  the 18 bundled photos as JPEG (for `evaluate --near-duplicates`)
  OUT/views/   one class per photo: its 4 corner crops and centre crop, 40% a side
  OUT/faces/   the LFW subset: 100 faces and 100 non-faces, 25x25 grey (two classes)
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image
from skimage import data

PHOTOS = ["astronaut", "brick", "camera", "cell", "chelsea", "clock", "coffee", "coins", "grass", "gravel"]
PHOTOS += ["hubble_deep_field", "immunohistochemistry", "microaneurysms", "moon", "page", "retina", "rocket", "text"]


def main(root: Path) -> None:
    """Write the three folders under ``root``."""
    for name in PHOTOS:
        img = Image.fromarray(getattr(data, name)()).convert("RGB")
        (root / "photos").mkdir(parents=True, exist_ok=True)
        img.save(root / "photos" / f"{name}.jpg", quality=92)
        w, h = img.size
        cw, ch = round(w * 0.4), round(h * 0.4)
        corners = {"nw": (0, 0), "ne": (w - cw, 0), "sw": (0, h - ch), "se": (w - cw, h - ch)}
        corners["c"] = ((w - cw) // 2, (h - ch) // 2)
        (root / "views" / name).mkdir(parents=True, exist_ok=True)
        for view, (x, y) in corners.items():
            img.crop((x, y, x + cw, y + ch)).save(root / "views" / name / f"{view}.jpg", quality=92)
    for i, face in enumerate(data.lfw_subset()):
        folder = root / "faces" / ("face" if i < 100 else "not-face")
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray((face * 255).astype(np.uint8)).save(folder / f"{i:03d}.png")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="folder to write photos/, views/ and faces/ into")
    main(parser.parse_args().out)
