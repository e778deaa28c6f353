"""Deleting many images in a job: an album with its sub-albums, or what a load added (real model,
Milvus Lite): into the trash, batch by batch, cancelled and resumed like a move."""

from __future__ import annotations

import io
import threading
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.conftest import csrf_token, noise_images, wait_for_job
from tests.test_albums import ids_in, load_tree
from tests.test_jobs import import_folder
from webapp import create_app
from webapp.runtime import EXTENSION
from webapp.services import deletions
from webapp.services.jobs import JobStatus


def trashed(client: FlaskClient) -> set[str]:
    return {item["filename"] for item in client.get("/api/v1/trash", query_string={"page_size": 100}).json}


def test_an_album_is_deleted_with_its_sub_albums_into_the_trash(app: Flask, client: FlaskClient) -> None:
    load_tree(app, client)
    started = client.post("/api/v1/images/albums/delete", json={"album": "animals"})
    assert started.status_code == 202, started.json
    assert (started.json["kind"], started.json["source"]) == ("delete", "album animals")
    job = wait_for_job(client, started.json["url"])
    assert (job["status"], job["processed"], job["total"]) == ("done", 3, 3)
    assert ids_in(client, "animals") == set() and ids_in(client, "animalsx") == {"y.jpg"}  # not a sub-album
    assert client.get("/api/v1/stats").json["count"] == 3
    assert trashed(client) == {"cat.jpg", "owl.jpg", "tit.jpg"}
    assert {item["deleted_in"] for item in client.get("/api/v1/trash").json} == {job["id"]}
    assert "the album animals and its sub-albums" in client.get(job["page_url"]).get_data(as_text=True)

    empty = client.post("/api/v1/images/albums/delete", json={"album": "animals"})
    assert empty.status_code == 404 and "has no images" in empty.json["message"]
    for body in ({}, {"album": ""}):
        refused = client.post("/api/v1/images/albums/delete", json=body)
        assert refused.status_code == 422, (body, refused.json)


def test_a_load_is_undone_without_what_it_found_there_or_what_came_back_since(app: Flask, client: FlaskClient) -> None:
    kept, mine, again, gone = noise_images(4, seed=91)
    assert client.post("/api/v1/images", data={"image": (io.BytesIO(kept), "kept.jpg")}).status_code == 201
    folder = import_folder(app, "wrong")
    for name, data in (("kept-copy.jpg", kept), ("mine.jpg", mine), ("again.jpg", again), ("gone.jpg", gone)):
        (folder / name).write_bytes(data)
    load = wait_for_job(client, client.post("/api/v1/jobs", json={"folder": str(folder)}).json["url"])
    assert (load["added"], load["duplicates"]) == (3, 1)
    by_name = {i["filename"]: i["id"] for i in client.get("/api/v1/images").json}
    # again.jpg is deleted, then uploaded again by someone: it is theirs now. gone.jpg is simply deleted.
    assert client.delete(f"/api/v1/images/{by_name['again.jpg']}").status_code == 204
    assert client.delete(f"/api/v1/images/{by_name['gone.jpg']}").status_code == 204
    assert client.post("/api/v1/images", data={"image": (io.BytesIO(again), "again.jpg")}).status_code == 201

    started = client.post(f"/api/v1/jobs/{load['id']}/undo")
    assert started.status_code == 202, started.json
    undo = wait_for_job(client, started.json["url"])
    assert (undo["status"], undo["processed"], undo["total"]) == ("done", 3, 3)
    assert (undo["source"], undo["undone_by"]) == (f"job {load['id']}", None)
    assert client.get(load["url"]).json["undone_by"] == undo["id"]
    assert {i["filename"] for i in client.get("/api/v1/images").json} == {"kept.jpg", "again.jpg"}
    assert trashed(client) == {"mine.jpg", "gone.jpg", "again.jpg"}  # again.jpg: its first copy, deleted by hand
    again_undone = client.post(f"/api/v1/jobs/{load['id']}/undo")
    assert again_undone.status_code == 409 and f"undone already, by job {undo['id']}" in again_undone.json["message"]
    page = client.get(f"/jobs/{load['id']}").get_data(as_text=True)
    assert f'href="/jobs/{load["id"]}/undo"' not in page and f'Undone by <a href="/jobs/{undo["id"]}">' in page
    assert f'It undoes <a href="/jobs/{load["id"]}">' in client.get(f"/jobs/{undo['id']}").get_data(as_text=True)

    # Undoing the undo restores what it deleted, and only that.
    restoring = client.post(f"/api/v1/jobs/{undo['id']}/undo")
    assert restoring.status_code == 202, restoring.json
    restore = wait_for_job(client, restoring.json["url"])
    assert (restore["kind"], restore["status"], restore["processed"]) == ("restore", "done", 1)
    assert client.get(undo["url"]).json["undone_by"] == restore["id"]
    assert client.get(load["url"]).json["undone_by"] == undo["id"]  # the latest undo, whatever became of it
    assert {i["filename"] for i in client.get("/api/v1/images").json} == {"kept.jpg", "again.jpg", "mine.jpg"}
    assert trashed(client) == {"gone.jpg", "again.jpg"}  # deleted by hand, not by the job
    twice = client.post(f"/api/v1/jobs/{undo['id']}/undo")
    assert twice.status_code == 409 and f"undone already, by job {restore['id']}" in twice.json["message"]
    page = client.get(f"/jobs/{load['id']}").get_data(as_text=True)  # its images are back: it can be undone again
    assert f'href="/jobs/{load["id"]}/undo"' in page and "the deletion job" in page and "itself undone since" in page
    refused = client.post(f"/api/v1/jobs/{restore['id']}/undo")
    assert refused.status_code == 409 and "a load of images or a deletion" in refused.json["message"]

    second = wait_for_job(client, client.post("/api/v1/jobs", json={"folder": str(folder)}).json["url"])
    assert second["added"] == 1  # gone.jpg, out of the library since
    nothing = wait_for_job(client, client.post("/api/v1/jobs", json={"folder": str(folder)}).json["url"])
    refused = client.post(f"/api/v1/jobs/{nothing['id']}/undo")
    assert refused.status_code == 409 and "added no images" in refused.json["message"]
    assert client.post(f"/api/v1/jobs/{second['id']}/undo").status_code == 202
    assert client.post("/api/v1/jobs/0123456789abcdef0123456789abcdef/undo").status_code == 404


def test_a_deletion_cut_short_goes_on_when_resumed(
    app: Flask, client: FlaskClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    load_tree(app, client)
    rt = app.extensions[EXTENSION]
    monkeypatch.setattr(deletions, "BATCH", 1)
    job = rt.jobs.create("delete", "album animals", rt.queue.owner)  # not sent: run here, stopped after one batch
    asked = iter([False, True])
    rt.deletions.run(job.id, lambda: next(asked))
    assert rt.jobs.get(job.id).status == JobStatus.INTERRUPTED
    assert len(ids_in(client, "animals")) == 2 and len(trashed(client)) == 1
    resumed = client.post(f"/api/v1/jobs/{job.id}/resume")
    assert resumed.status_code == 202, resumed.json
    finished = wait_for_job(client, resumed.json["url"])
    assert (finished["status"], finished["processed"], finished["total"]) == ("done", 3, 3)  # counted on
    assert ids_in(client, "animals") == set() and len(trashed(client)) == 3

    monkeypatch.setattr(deletions, "RESTORE_BATCH", 1)  # and undone the same way
    restore = rt.jobs.create("restore", f"job {job.id}", rt.queue.owner)
    asked = iter([False, True])
    rt.deletions.run_restore(restore.id, lambda: next(asked))
    assert rt.jobs.get(restore.id).status == JobStatus.INTERRUPTED and len(ids_in(client, "animals")) == 1
    refused = client.post(f"/api/v1/jobs/{job.id}/undo")
    assert refused.status_code == 409 and f"stopped (interrupted, job {restore.id}): resume" in refused.json["message"]
    assert "Its undo stopped (interrupted): resume" in client.get(f"/jobs/{job.id}").get_data(as_text=True)
    resumed = client.post(f"/api/v1/jobs/{restore.id}/resume")
    finished = wait_for_job(client, resumed.json["url"])
    assert (finished["status"], finished["processed"], finished["total"]) == ("done", 3, 3)
    assert len(ids_in(client, "animals")) == 3 and trashed(client) == set()

    running = rt.jobs.create("delete", "album animalsx", rt.queue.owner)
    refused = client.post("/api/v1/images/albums/delete", json={"album": "animalsx"})
    assert refused.status_code == 409 and running.id in refused.json["message"]  # one deletion at a time


def test_a_load_undo_cut_short_goes_on_past_what_it_looked_at(
    app: Flask, client: FlaskClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    load_tree(app, client)
    rt = app.extensions[EXTENSION]
    [load] = [job for job in client.get("/api/v1/jobs").json if job["kind"] == "folder"]
    monkeypatch.setattr(deletions, "BATCH", 2)
    undo = rt.jobs.create("delete", f"job {load['id']}", rt.queue.owner)  # not sent: run here, stopped after a batch
    for looked_at in (2, 4):
        rt.deletions.run(undo.id, iter([False, True]).__next__)
        stopped = rt.jobs.get(undo.id)
        assert (stopped.status, stopped.processed, stopped.total) == (JobStatus.INTERRUPTED, looked_at, 6)
        assert client.get("/api/v1/stats").json["count"] == 6 - looked_at
        rt.jobs.requeue(undo.id, rt.queue.owner)
    rt.deletions.run(undo.id)
    finished = rt.jobs.get(undo.id)
    assert (finished.status, finished.processed, finished.total) == (JobStatus.DONE, 6, 6)
    assert client.get("/api/v1/stats").json["count"] == 0 and len(trashed(client)) == 6


def test_a_load_undone_is_not_resumed(app: Flask, client: FlaskClient) -> None:
    rt = app.extensions[EXTENSION]
    load = rt.jobs.create("folder", str(import_folder(app, "cut")), rt.queue.owner)
    rt.jobs.move(load.id, JobStatus.CANCELLED)  # cut short, and what it added is undone
    undo = rt.jobs.create("delete", f"job {load.id}", rt.queue.owner)
    refused = client.post(f"/api/v1/jobs/{load.id}/resume")
    assert refused.status_code == 409 and f"this load was undone (job {undo.id})" in refused.json["message"]
    page = client.get(f"/jobs/{load.id}").get_data(as_text=True)
    assert f'action="/jobs/{load.id}/resume"' not in page and f'Being undone by <a href="/jobs/{undo.id}">' in page


def test_an_image_listed_without_its_vector_is_passed_over_not_met_forever(app: Flask, client: FlaskClient) -> None:
    load_tree(app, client)
    rt = app.extensions[EXTENSION]
    rt.library.catalog.add([("f" * 64, 1, "animals", None)])  # what a crash between the two writes leaves
    job = rt.jobs.create("delete", "album animals", rt.queue.owner)
    worker = threading.Thread(target=rt.deletions.run, args=(job.id,), daemon=True)
    worker.start()
    worker.join(60)
    assert not worker.is_alive()
    done = rt.jobs.get(job.id)
    assert (done.status, done.processed, done.total) == (JobStatus.DONE, 4, 4)
    assert ids_in(client, "animals") == set() and len(trashed(client)) == 3
    restored = client.post("/api/v1/trash/restore", json={"ids": [i["id"] for i in client.get("/api/v1/trash").json]})
    assert restored.status_code == 200 and len(ids_in(client, "animals")) == 3  # by hand: the deletion has no undo
    refused = client.post(f"/api/v1/jobs/{job.id}/undo")
    assert refused.status_code == 409 and "in the trash any more" in refused.json["message"]
    assert f'href="/jobs/{job.id}/undo"' not in client.get(f"/jobs/{job.id}").get_data(as_text=True)


def test_a_restore_passes_an_image_whose_original_the_trash_lost(app: Flask, client: FlaskClient) -> None:
    load_tree(app, client)
    rt = app.extensions[EXTENSION]
    deletion = rt.jobs.create("delete", "album animals", rt.queue.owner)
    rt.deletions.run(deletion.id)
    lost = next(i["id"] for i in client.get("/api/v1/trash").json if i["filename"] == "owl.jpg")
    (original,) = (Path(app.config["STORAGE_DIR"]) / "trash" / "originals").glob(f"*/{lost}.*")
    original.unlink()
    restore = rt.jobs.create("restore", f"job {deletion.id}", rt.queue.owner)
    worker = threading.Thread(target=rt.deletions.run_restore, args=(restore.id,), daemon=True)
    worker.start()
    worker.join(60)
    assert not worker.is_alive() and rt.jobs.get(restore.id).status == JobStatus.DONE
    assert ids_in(client, "animals") == {"cat.jpg", "tit.jpg"} and trashed(client) == {"owl.jpg"}


def test_admins_delete_an_album_and_undo_a_load_from_the_pages_after_typing_the_count(
    app: Flask, client: FlaskClient
) -> None:
    load_tree(app, client)
    library = client.get("/library", query_string={"album": "animals"}).get_data(as_text=True)
    assert 'href="/library/delete-album?album=animals"' in library
    form = client.get("/library/delete-album", query_string={"album": "animals"}).get_data(as_text=True)
    assert "Delete the album animals?" in form and "type the number of images: <strong>3</strong>" in form
    token = csrf_token(client, "/library")
    wrong = client.post("/library/delete-album", data={"album": "animals", "confirm": "2", "csrf_token": token})
    assert wrong.status_code == 409 and "has 3 images" in wrong.get_data(as_text=True)
    assert len(ids_in(client, "animals")) == 3
    started = client.post("/library/delete-album", data={"album": "animals", "confirm": "3", "csrf_token": token})
    assert started.status_code == 303
    page = client.get(started.headers["Location"]).get_data(as_text=True)
    assert "Deletion" in page and "the album animals and its sub-albums" in page
    deletion = started.headers["Location"].rsplit("/", 1)[1]
    wait_for_job(client, f"/api/v1/jobs/{deletion}")
    assert ids_in(client, "animals") == set()
    assert "Undo this deletion…" in client.get(f"/jobs/{deletion}").get_data(as_text=True)
    listed = client.get("/jobs").get_data(as_text=True)  # a deletion adds nothing: no counts of its own
    assert listed.count('data-label="Added">—</td>') == 1 and 'data-label="Added">6</td>' in listed
    form = client.get(f"/jobs/{deletion}/undo").get_data(as_text=True)
    assert "Undo this deletion?" in form and "<strong>3</strong>" in form
    restoring = client.post(f"/jobs/{deletion}/undo", data={"confirm": "3", "csrf_token": token})
    assert restoring.status_code == 303
    wait_for_job(client, "/api/v1/jobs/" + restoring.headers["Location"].rsplit("/", 1)[1])
    assert ids_in(client, "animals") == {"cat.jpg", "owl.jpg", "tit.jpg"} and trashed(client) == set()

    [load] = [job for job in client.get("/api/v1/jobs").json if job["kind"] == "folder"]
    assert f'href="/jobs/{load["id"]}/undo"' in client.get(f"/jobs/{load['id']}").get_data(as_text=True)
    form = client.get(f"/jobs/{load['id']}/undo").get_data(as_text=True)
    assert "Undo this load?" in form and "<strong>6</strong>" in form
    undone = client.post(f"/jobs/{load['id']}/undo", data={"confirm": "6", "csrf_token": token})
    assert undone.status_code == 303
    wait_for_job(client, "/api/v1/jobs/" + undone.headers["Location"].rsplit("/", 1)[1])
    assert client.get("/api/v1/stats").json["count"] == 0
    assert len(trashed(client)) == 6


@pytest.mark.parametrize("backend", ["server"], indirect=True)  # one Milvus Lite file has one process
def test_two_processes_deleting_overlapping_selections_delete_each_image_once(app: Flask, client: FlaskClient) -> None:
    """Another process (its own library and lock, on the same catalogue, Milvus server and storage)
    deletes part of a selection after this one read its records and before it takes them out of the
    catalogue: the catalogue decides, so each image is deleted, and put in the trash, once."""
    ids = []
    for i, data in enumerate(noise_images(6, seed=61)):
        response = client.post("/api/v1/images", data={"image": (io.BytesIO(data), f"{i}.jpg")})
        assert response.status_code == 201, response.json
        ids.append(response.json["id"])
    names = ("TESTING", "DATA_DIR", "MODEL_DIR", "SECRET_KEY", "DATABASE_URL", "MILVUS_URI", "COLLECTION")
    other_app = create_app({name: app.config[name] for name in names})  # another process, another machine
    mine, other = app.extensions[EXTENSION].library, other_app.extensions[EXTENSION].library
    overlap, theirs = ids[2:4], []
    unlist = mine.catalog.unlist

    def after_the_other(sha256s: list[str], **kwargs: object) -> object:  # the records read, not yet unlisted
        theirs.extend(other.delete_many([*overlap, ids[5]], by="bob"))
        return unlist(sha256s, **kwargs)

    mine.catalog.unlist = after_the_other
    try:
        deleted = mine.delete_many(ids[:4], by="ada")
    finally:
        mine.catalog.unlist = unlist
        other_app.extensions[EXTENSION].close()
    assert [r.sha256 for r in deleted] == ids[:2]  # the other took the overlap
    assert [r.sha256 for r in theirs] == [*overlap, ids[5]]
    listed = client.get("/api/v1/trash", query_string={"page_size": 100}).json
    by = sorted((item["id"], item["deleted_by"]) for item in listed)
    assert by == sorted([(i, "ada") for i in ids[:2]] + [(i, "bob") for i in [*overlap, ids[5]]])
    assert client.get("/api/v1/stats").json["count"] == 1
    assert [image["id"] for image in client.get("/api/v1/images").json] == [ids[4]]
