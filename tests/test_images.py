"""The image store: a batch's files appear under their names only once all of them are on disk."""

from __future__ import annotations

import hashlib
import io
import os
import time
from collections.abc import Iterator
from pathlib import Path
from unittest.mock import patch

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.conftest import files_under
from webapp.errors import StoreUnavailable
from webapp.services import images as images_module
from webapp.services.images import ImageStore, storage_state


def item(n: int) -> tuple[str, str, bytes, bytes]:
    data = f"original {n}".encode()
    return hashlib.sha256(data).hexdigest(), "image/png", data, f"thumbnail {n}".encode()


def test_put_many_stores_each_original_and_thumbnail_and_skips_those_already_there(tmp_path: Path) -> None:
    store = ImageStore(tmp_path)
    first, second = item(1), item(2)
    assert store.put(*first)

    assert store.put_many([first, second]) == [second[0]]

    for sha, _, data, thumbnail in (first, second):
        original = store.original(sha)
        thumb = store.thumbnail(sha)
        assert original is not None and original.read_bytes() == data and original.suffix == ".png"
        assert thumb is not None and thumb.read_bytes() == thumbnail
    assert len(files_under(tmp_path)) == 4  # no temporary file left


def test_a_batch_that_fails_midway_leaves_nothing_under_its_names(tmp_path: Path) -> None:
    store = ImageStore(tmp_path)

    def batch() -> Iterator[tuple[str, str, bytes, bytes]]:
        yield item(1)
        yield item(2)
        raise MemoryError("the third thumbnail could not be made")

    with pytest.raises(MemoryError):
        store.put_many(batch())

    assert files_under(tmp_path) == []
    assert store.original(item(1)[0]) is None and store.thumbnail(item(2)[0]) is None


def test_a_batch_whose_files_cannot_be_synced_leaves_nothing_under_its_names(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = ImageStore(tmp_path)
    synced, real_fsync = [], os.fsync

    def fsync(fd: int) -> None:
        synced.append(fd)
        if len(synced) == 3:
            raise OSError(28, "No space left on device")
        real_fsync(fd)

    monkeypatch.setattr(images_module.os, "fsync", fsync)
    with pytest.raises(OSError, match="No space"):
        store.put_many([item(1), item(2)])

    assert len(synced) == 3 and files_under(tmp_path) == []
    monkeypatch.undo()
    assert store.put_many([item(1), item(2)]) == [item(1)[0], item(2)[0]]  # and it can be retried


def test_a_thumbnail_made_while_its_original_is_deleted_is_not_left_behind(tmp_path: Path) -> None:
    store = ImageStore(tmp_path)
    sha, mime, data, _ = item(1)
    store.put_many([(sha, mime, data, None)])  # a bulk load: no thumbnail yet
    assert store.original(sha) is not None and store.thumbnail(sha) is None
    made = store.put_thumbnail(sha, b"thumb")
    assert made is not None and made.read_bytes() == b"thumb" and store.thumbnail(sha) == made
    store.delete(sha)
    store.put_many([(sha, mime, data, None)])
    original = store.original(sha)
    assert original is not None
    original.unlink()  # deleted while its thumbnail was being made
    assert store.put_thumbnail(sha, b"late") is None and store.thumbnail(sha) is None
    assert not list(tmp_path.rglob(".tmp-*"))


def test_a_thumbnail_added_to_an_original_already_there_does_not_count_it_as_stored(tmp_path: Path) -> None:
    """What put_many reports is what a failed vector write removes: never an original that was there."""
    store = ImageStore(tmp_path)
    sha, mime, data, thumbnail = item(1)
    assert store.put_many([(sha, mime, data, None)]) == [sha]  # a bulk load: the original alone
    assert store.put_many([(sha, mime, data, thumbnail)]) == []  # the same bytes uploaded: its thumbnail only
    found = store.thumbnail(sha)
    assert found is not None and found.read_bytes() == thumbnail
    assert store.put_many([(sha, mime, data, thumbnail)]) == [] and not list(tmp_path.rglob(".tmp-*"))


def test_clearing_empties_the_store_at_once_and_removes_what_it_moved_aside_later(tmp_path: Path) -> None:
    store = ImageStore(tmp_path)
    left = tmp_path / ".trash-originals-1-2" / "ab"  # moved aside by a process that stopped first
    left.mkdir(parents=True)
    (left / "x.png").write_bytes(b"x")
    assert store.put_many([item(n) for n in range(3)])
    store.clear()
    assert store.original(item(0)[0]) is None and not list(store.ids())
    deadline = time.monotonic() + 30
    while (files_under(tmp_path) or any(tmp_path.glob(".trash-*"))) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert files_under(tmp_path) == [] and not list(tmp_path.glob(".trash-*"))
    assert store.put(*item(0)) and store.original(item(0)[0]) is not None


def test_storage_is_ready_while_it_holds_any_of_the_newest_originals_and_can_be_written(tmp_path: Path) -> None:
    store = ImageStore(tmp_path / "storage")
    assert storage_state(store, []) == f"{store.root}: no image added over 120 s ago yet"
    kept, lost = item(1), item(2)
    store.put(*kept)
    assert "holds 1 of the newest 2 images' originals" in storage_state(store, [lost[0], kept[0]])
    with pytest.raises(StoreUnavailable, match="is the shared storage"):
        storage_state(store, [lost[0]])
    with patch.object(os, "access", return_value=False):  # a read-only mount (the tests run as root)
        with pytest.raises(StoreUnavailable, match="cannot be written to"):
            storage_state(store, [kept[0]])


def test_readiness_fails_while_the_storage_is_an_empty_folder_not_the_librarys(
    app: Flask, client: FlaskClient, photos: dict[str, bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    image = {"image": (io.BytesIO(photos["coffee"]), "c.jpg")}
    assert client.post("/api/v1/images", data=image, content_type="multipart/form-data").status_code == 201
    fresh = client.get("/api/v1/health/ready")  # just added: another machine's share might not show it yet
    assert fresh.status_code == 200 and "no image added over 120 s ago" in fresh.json["storage"]["message"]
    monkeypatch.setattr(images_module, "SETTLED", 0.0)
    ready = client.get("/api/v1/health/ready")
    assert ready.status_code == 200 and "holds 1 of the newest 1" in ready.json["storage"]["message"], ready.json
    root = Path(app.config["STORAGE_DIR"])
    root.rename(root.with_name("elsewhere"))  # as if the share were not mounted: its mount point, empty
    root.mkdir()
    unmounted = client.get("/api/v1/health/ready")
    assert unmounted.status_code == 503 and not unmounted.json["storage"]["ok"]
    assert "is the shared storage (STORAGE_DIR) mounted?" in unmounted.json["storage"]["message"]
    assert unmounted.json["model"]["ok"] and unmounted.json["store"]["ok"] and unmounted.json["database"]["ok"]
    root.rmdir()
    root.with_name("elsewhere").rename(root)
    assert client.get("/api/v1/health/ready").status_code == 200
