"""Hostile and unusual input: each file gets a correct result or a clear 4xx, and nothing is stored."""

from __future__ import annotations

import io
import stat
import struct
import zipfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from flask import Flask
from flask.testing import FlaskClient
from PIL import Image

from tests.conftest import heic, jpeg, mpo, png, wait_for_job


def encoded(img: Image.Image, fmt: str, **options: Any) -> bytes:
    out = io.BytesIO()
    img.save(out, fmt, **options)
    return out.getvalue()


def declared_png(width: int, height: int) -> bytes:
    """A tiny PNG whose header declares a huge size (a decompression bomb's first line)."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")


def animated(fmt: str) -> bytes:
    frames = [Image.new("RGB", (64, 48), colour) for colour in ("red", "green", "blue")]
    return encoded(frames[0], fmt, save_all=True, append_images=frames[1:], duration=100, loop=0)


def rotated_jpeg() -> bytes:
    exif = Image.Exif()
    exif[0x0112] = 6
    return encoded(Image.new("RGB", (80, 40), "orange"), "JPEG", exif=exif)


def rotated_heic() -> bytes:
    exif = Image.Exif()
    exif[0x0112] = 6
    return heic(Image.new("RGB", (80, 40), "orange"), exif=exif.tobytes())


def with_preview() -> bytes:
    """A photo followed by a smaller copy, as many cameras save it (Pillow says MPO)."""
    return mpo(jpeg(Image.new("RGB", (60, 40), "gold")), jpeg(Image.new("RGB", (30, 20), "gold")))


def palette_with_transparency() -> bytes:
    img = Image.new("P", (40, 40), 1)
    img.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    img.info["transparency"] = 0
    return png(img)


GOOD = {
    # name: (bytes, expected mime, expected width, height)
    "png-named-jpg.jpg": (png(Image.new("RGB", (30, 20), "teal")), "image/png", 30, 20),
    "animated.gif": (animated("GIF"), "image/gif", 64, 48),
    "animated.webp": (animated("WEBP"), "image/webp", 64, 48),
    "cmyk.jpg": (encoded(Image.new("CMYK", (50, 40), (0, 255, 255, 0)), "JPEG"), "image/jpeg", 50, 40),
    "sixteen-bit.png": (
        png(Image.fromarray(np.arange(64 * 64, dtype=np.uint16).reshape(64, 64) * 16)),
        "image/png",
        64,
        64,
    ),
    "palette-transparent.png": (palette_with_transparency(), "image/png", 40, 40),
    "grey.jpg": (jpeg(Image.new("L", (33, 44), 128)), "image/jpeg", 33, 44),
    "rotated.jpg": (rotated_jpeg(), "image/jpeg", 40, 80),
    "camera-with-preview.jpg": (with_preview(), "image/jpeg", 60, 40),
    "photo.avif": (encoded(Image.new("RGB", (24, 24), "purple"), "AVIF"), "image/avif", 24, 24),
    "bitmap.bmp": (encoded(Image.new("RGB", (20, 10), "navy"), "BMP"), "image/bmp", 20, 10),
    "scan.tiff": (encoded(Image.new("RGB", (20, 10), "olive"), "TIFF"), "image/tiff", 20, 10),
    "phone.heic": (heic(Image.effect_noise((64, 48), 40).convert("RGB")), "image/heic", 64, 48),
    "rotated.heic": (rotated_heic(), "image/heic", 40, 80),  # upright, turned once
    "transparent.heic": (heic(Image.new("RGBA", (30, 20), (255, 0, 0, 100))), "image/heic", 30, 20),
}

BAD = {
    # name: (bytes, status, words the message must contain)
    "empty.jpg": (b"", 422, "empty"),
    "text.jpg": (b"just some text, not a picture", 422, "not an image"),
    "page.svg": (b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>', 422, "not an image"),
    "truncated.jpg": (jpeg(Image.new("RGB", (300, 300), "red"))[:400], 422, "damaged or truncated"),
    "truncated.png": (png(Image.effect_noise((200, 200), 50).convert("RGB"))[:500], 422, "damaged or truncated"),
    "icon.ico": (encoded(Image.new("RGB", (16, 16)), "ICO"), 422, "unsupported image format ICO"),
    "header-only.heic": (b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + b"\x00" * 64, 422, "not an image"),
    "truncated.heic": (heic(Image.effect_noise((200, 200), 50).convert("RGB"))[:1500], 422, "damaged or truncated"),
    "bomb-100m.png": (declared_png(10_000, 10_000), 413, "10000x10000"),
    "bomb-400m.png": (declared_png(20_000, 20_000), 413, "too many pixels"),
}


def post(client: FlaskClient, url: str, name: str, data: bytes) -> Any:
    return client.post(url, data={"image": (io.BytesIO(data), name)}, content_type="multipart/form-data")


def stored_files(app: Flask) -> list[Path]:
    return sorted((Path(app.config["DATA_DIR"]) / "images").rglob("*.*"))


@pytest.mark.parametrize("name", sorted(GOOD))
def test_unusual_but_valid_images_are_indexed_correctly(client: FlaskClient, name: str) -> None:
    data, mime, width, height = GOOD[name]
    response = post(client, "/api/v1/images", name, data)
    assert response.status_code == 201, response.json
    assert (response.json["mime"], response.json["width"], response.json["height"]) == (mime, width, height)
    assert client.get(response.json["url"]).data == data
    found = post(client, "/api/v1/search", "q", data).json["results"]
    assert found[0]["id"] == response.json["id"] and found[0]["score"] > 0.99


@pytest.mark.parametrize("url", ["/api/v1/images", "/api/v1/search"])
@pytest.mark.parametrize("name", sorted(BAD))
def test_malformed_images_get_a_clear_4xx_and_nothing_is_stored(
    app: Flask, client: FlaskClient, url: str, name: str
) -> None:
    data, status, words = BAD[name]
    response = post(client, url, name, data)
    assert response.status_code == status, response.json
    assert words in response.json["message"] and "\n" not in response.json["message"]
    assert client.get("/api/v1/stats").json["count"] == 0
    assert stored_files(app) == []


def zip_of(entries: dict[str, bytes], links: tuple[str, ...] = ()) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
        for name in links:
            info = zipfile.ZipInfo(name)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            archive.writestr(info, "/etc/passwd")
    return buffer.getvalue()


def test_dangerous_archive_entries_are_refused_one_by_one(
    app: Flask, client: FlaskClient, photos: dict[str, bytes]
) -> None:
    archive = zip_of(
        {
            "good/coffee.jpg": photos["coffee"],
            "../escape.jpg": photos["rocket"],
            "/absolute.jpg": photos["moon"],
            "inner.zip": zip_of({"x.jpg": photos["camera"]}),
            "bomb.png": b"\x00" * 20_000_000,  # 1,000:1, read up to the file limit, as any file
            "scanned-page.bmp": encoded(Image.new("RGB", (2480, 3508), "white"), "BMP"),  # 1,000:1 too
        },
        links=("link.jpg",),
    )
    data = {"archive": (io.BytesIO(archive), "mixed.zip")}
    job = client.post("/api/v1/jobs", data=data, content_type="multipart/form-data").json
    final = wait_for_job(client, job["url"])
    reasons = {f["name"]: f["reason"] for f in final["failures"]}
    assert final["added"] == 2 and final["failed"] == 5, final
    assert "outside the archive" in reasons["../escape.jpg"] and "outside the archive" in reasons["/absolute.jpg"]
    assert "symbolic link" in reasons["link.jpg"]
    assert "archives inside" in reasons["inner.zip"]
    assert "not an image" in reasons["bomb.png"]
    assert not (Path(app.config["DATA_DIR"]).parent / "escape.jpg").exists()


@pytest.mark.parametrize(
    ("setting", "value", "message"),
    [("MAX_ARCHIVE_ENTRIES", 2, "3 entries"), ("MAX_ARCHIVE_EXPANDED_BYTES", 1000, "would expand")],
)
def test_whole_archives_over_the_limits_are_refused(
    app: Flask, client: FlaskClient, photos: dict[str, bytes], setting: str, value: int, message: str
) -> None:
    app.config[setting] = value
    app.extensions["webapp"].settings[setting] = value
    archive = zip_of({"a.jpg": photos["coffee"], "b.jpg": photos["rocket"], "c.jpg": photos["moon"]})
    response = client.post(
        "/api/v1/jobs", data={"archive": (io.BytesIO(archive), "a.zip")}, content_type="multipart/form-data"
    )
    assert response.status_code == 422 and message in response.json["message"]
    assert client.get("/api/v1/jobs").json == []
    assert not list(Path(app.config["STORAGE_DIR"]).rglob("*.zip"))  # the refused upload is gone too


def test_too_many_files_in_one_upload_is_refused(app: Flask, client: FlaskClient, photos: dict[str, bytes]) -> None:
    app.config["MAX_JOB_FILES"] = 2
    files = [(io.BytesIO(photos[name]), f"{name}.jpg") for name in ("coffee", "rocket", "moon")]
    response = client.post("/api/v1/jobs", data={"files": files}, content_type="multipart/form-data")
    assert response.status_code == 422 and "too many files" in response.json["message"]
    assert client.get("/api/v1/jobs").json == []


def test_a_job_upload_over_its_limit_is_413(app: Flask, client: FlaskClient, photos: dict[str, bytes]) -> None:
    app.config["MAX_JOB_UPLOAD_BYTES"] = 10_000
    response = client.post(
        "/api/v1/jobs",
        data={"archive": (io.BytesIO(zip_of({"a.jpg": photos["coffee"]})), "a.zip")},
        content_type="multipart/form-data",
    )
    assert response.status_code == 413 and response.json["code"] == 413
