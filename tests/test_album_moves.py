"""Moving images between albums (real model; Milvus Lite and the server): one image at once, an
album with its sub-albums in a job; lists, counts, searches and "more like this" follow."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.conftest import INT8, MODEL, csrf_token, noise_images, wait_for_job
from tests.test_albums import ODD, ids_in, load_tree
from tests.test_api import BOTH_STORES, upload
from webapp.errors import Conflict
from webapp.models import DEFAULT
from webapp.runtime import EXTENSION
from webapp.services.album_moves import KIND
from webapp.services.albums import renamed
from webapp.services.jobs import JobStatus, local_owner


def ids(client: FlaskClient) -> dict[str, str]:
    """Return each image's id by its file name."""
    return {i["filename"]: i["id"] for i in client.get("/api/v1/images", query_string={"page_size": 100}).json}


def albums(client: FlaskClient) -> dict[str, int]:
    return {a["name"]: a["count"] for a in client.get("/api/v1/images/albums").json}


def searched(client: FlaskClient, data: bytes, album: str) -> set[str]:
    found = upload(client, "/api/v1/search", data, top_k="10", album=album)
    assert found.status_code == 200, found.json
    return {hit["filename"] for hit in found.json["results"]}


def move_album(client: FlaskClient, album: str, to: str) -> dict[str, Any]:
    started = client.post("/api/v1/images/albums/move", json={"album": album, "to": to})
    assert started.status_code == 202, started.json
    assert started.json["kind"] == KIND and started.json["source"] == album and started.json["album"] == to
    return wait_for_job(client, started.json["url"])


@BOTH_STORES
def test_an_image_moves_to_another_album_and_every_filter_follows(client: FlaskClient) -> None:
    owl, cat = noise_images(2, seed=61)
    owl_id = upload(client, "/api/v1/images", owl, "owl.jpg", album="animals/birds").json["id"]
    upload(client, "/api/v1/images", cat, "cat.jpg", album="animals")
    moved = client.patch(f"/api/v1/images/{owl_id}", json={"album": "/night/owls/"})
    assert moved.status_code == 200, moved.json
    assert moved.json["album"] == "night/owls" and moved.json["filename"] == "owl.jpg"
    assert client.get(f"/api/v1/images/{owl_id}").json["album"] == "night/owls"
    assert ids_in(client, "animals") == {"cat.jpg"} and ids_in(client, "night") == {"owl.jpg"}
    assert searched(client, owl, "night/owls") == {"owl.jpg"}
    assert searched(client, owl, "animals") == {"cat.jpg"}
    similar = client.get(f"/api/v1/images/{owl_id}/similar", query_string={"album": "animals"}).json["results"]
    assert [hit["filename"] for hit in similar] == ["cat.jpg"]
    assert albums(client) == {"animals": 1, "night": 1, "night/owls": 1}
    assert searched(client, owl, "")  # the whole library still finds it, its vector unchanged
    assert upload(client, "/api/v1/search", owl, top_k="1").json["results"][0]["score"] > 0.999
    out = client.patch(f"/api/v1/images/{owl_id}", json={"album": ""})
    assert out.status_code == 200 and out.json["album"] == ""
    assert albums(client) == {"animals": 1} and client.get("/api/v1/stats").json["count"] == 2


@BOTH_STORES
def test_several_images_move_at_once_and_missing_ones_are_listed(client: FlaskClient) -> None:
    one, two, three = noise_images(3, seed=69)
    ids = [
        upload(client, "/api/v1/images", d, f"{n}.jpg", album="inbox").json["id"]
        for n, d in enumerate((one, two, three))
    ]
    absent = "f" * 64
    answer = client.post("/api/v1/images/move", json={"ids": [ids[0], absent, ids[1], ids[0]], "album": "kept/2024"})
    assert answer.status_code == 200, answer.json
    assert sorted(i["id"] for i in answer.json["images"]) == sorted(ids[:2]) and answer.json["missing"] == [absent]
    assert {i["album"] for i in answer.json["images"]} == {"kept/2024"}
    assert ids_in(client, "kept") == {"0.jpg", "1.jpg"} and ids_in(client, "inbox") == {"2.jpg"}
    assert searched(client, two, "kept/2024") == {"0.jpg", "1.jpg"}
    for body, says in (
        ({"ids": [], "album": "x"}, "Length must be between 1 and 500"),
        ({"ids": ["x" * 64], "album": "x"}, "Must be an image id"),
        ({"ids": [absent] * 501, "album": "x"}, "Longer than maximum length 500"),
        ({"ids": ids}, "Missing data"),
    ):
        refused = client.post("/api/v1/images/move", json=body)
        assert refused.status_code == 422 and says in str(refused.json["errors"]), refused.json
    assert albums(client) == {"inbox": 1, "kept": 2, "kept/2024": 2}


def test_moving_an_image_refuses_what_it_cannot_do(client: FlaskClient) -> None:
    (data,) = noise_images(1, seed=62)
    image = upload(client, "/api/v1/images", data, "a.jpg", album="x").json["id"]
    missing = client.patch(f"/api/v1/images/{'0' * 64}", json={"album": "y"})
    assert missing.status_code == 404 and "no image" in missing.json["message"]
    for body, says in (({}, "Missing data"), ({"album": "a/../b"}, ". or .."), ({"album": 5}, "Not a valid string")):
        answer = client.patch(f"/api/v1/images/{image}", json=body)
        assert answer.status_code == 422 and says in str(answer.json["errors"]), answer.json
    assert client.patch(f"/api/v1/images/{image}", data="album=y").status_code == 415
    assert client.get(f"/api/v1/images/{image}").json["album"] == "x"


@BOTH_STORES
def test_an_album_moves_with_its_sub_albums_in_a_job(app: Flask, client: FlaskClient) -> None:
    load_tree(app, client)
    job = move_album(client, "animals", "zoo/pets")
    assert job["status"] == "done" and job["processed"] == job["total"] == 3, job
    assert albums(client) == {"zoo": 3, "zoo/pets": 3, "zoo/pets/birds": 2, "animalsx": 1, ODD: 1}
    assert ids_in(client, "zoo/pets/birds") == {"owl.jpg", "tit.jpg"} and ids_in(client, "animals") == set()
    images = noise_images(6, seed=51)  # load_tree's: cat, owl and tit are the second to fourth
    assert searched(client, images[2], "zoo/pets/birds") == {"owl.jpg", "tit.jpg"}
    assert searched(client, images[2], "zoo") == {"cat.jpg", "owl.jpg", "tit.jpg"}
    assert searched(client, images[2], "animals") == set()
    assert searched(client, images[5], "animalsx") == {"y.jpg"}  # a name that starts alike stays
    job = move_album(client, "zoo/pets/birds", "")  # to the top level: its images leave every album
    assert job["status"] == "done", job
    named = {i["filename"]: i["album"] for i in client.get("/api/v1/images", query_string={"page_size": 100}).json}
    assert named["owl.jpg"] == named["tit.jpg"] == "" and named["cat.jpg"] == "zoo/pets"
    page = client.get(job["url"].replace("/api/v1", ""))
    html = page.get_data(as_text=True)
    assert "Album move" in html and "zoo/pets/birds to the top level" in html and 'total">2<' in html
    assert "Failed files" not in html and "Duplicates</dt>" not in html  # a move neither adds nor fails files


@BOTH_STORES
def test_an_album_named_on_a_mac_moves_by_its_name_as_typed(client: FlaskClient) -> None:
    mac = "Cafe\u0301"
    one, two = noise_images(2, seed=63)
    upload(client, "/api/v1/images", one, "one.jpg", album=mac)
    upload(client, "/api/v1/images", two, "two.jpg", album=f"{mac}/2024")
    assert move_album(client, "Caf\u00e9", "Bistro")["status"] == "done"
    assert albums(client) == {"Bistro": 2, "Bistro/2024": 1}
    assert searched(client, two, "Bistro/2024") == {"two.jpg"}


@BOTH_STORES
def test_two_spellings_of_one_album_name_merge_into_the_one_typed(client: FlaskClient) -> None:
    """A folder a Mac named (NFD) and one typed (NFC) are listed as one album, as typed; moving one
    to the other's spelling stores them alike, where any other move into the album itself is refused."""
    mac, typed = "Café", "Café"
    one, two, three = noise_images(3, seed=70)
    upload(client, "/api/v1/images", one, "one.jpg", album=f"{mac}/2024")
    upload(client, "/api/v1/images", two, "two.jpg", album=typed)
    upload(client, "/api/v1/images", three, "three.jpg", album=f"{typed}/2024")
    assert albums(client) == {typed: 3, f"{typed}/2024": 2}
    stored = {image["filename"]: image["album"] for image in client.get("/api/v1/images").json}
    assert stored == {"one.jpg": f"{mac}/2024", "two.jpg": typed, "three.jpg": f"{typed}/2024"}
    refused = client.post("/api/v1/images/albums/move", json={"album": mac, "to": f"{typed}/old"})
    assert refused.status_code == 422 and "into itself" in refused.json["message"]
    assert move_album(client, mac, typed)["status"] == "done"
    assert albums(client) == {typed: 3, f"{typed}/2024": 2}
    stored = {image["filename"]: image["album"] for image in client.get("/api/v1/images").json}
    assert stored == {"one.jpg": f"{typed}/2024", "two.jpg": typed, "three.jpg": f"{typed}/2024"}
    assert searched(client, one, f"{typed}/2024") == {"one.jpg", "three.jpg"}


@pytest.mark.parametrize(
    ("body", "status", "says"),
    [
        ({"album": "animals", "to": "animals/birds/old"}, 422, "cannot be moved into itself"),
        ({"album": "animals", "to": "animals"}, 422, "named animals already"),
        ({"album": "", "to": "x"}, 422, "name the album to move"),
        ({"to": "x"}, 422, "Missing data"),
        ({"album": "nowhere", "to": "x"}, 404, "has no images"),
        ({"album": "animals", "to": "x\ny"}, 422, "control characters"),
    ],
)
def test_an_album_move_refuses_what_it_cannot_do(
    app: Flask, client: FlaskClient, body: dict[str, str], status: int, says: str
) -> None:
    (data,) = noise_images(1, seed=64)
    upload(client, "/api/v1/images", data, "a.jpg", album="animals/birds")
    answer = client.post("/api/v1/images/albums/move", json=body)
    assert answer.status_code == status and says in str(answer.json), answer.json
    assert albums(client) == {"animals": 1, "animals/birds": 1}
    assert app.extensions[EXTENSION].jobs.recent(0, 10)[1] == 0  # no job was made


def test_one_move_at_a_time_and_none_while_a_reindex_builds_nor_a_reindex_while_one_runs(
    app: Flask, client: FlaskClient
) -> None:
    (data,) = noise_images(1, seed=65)
    image = upload(client, "/api/v1/images", data, "a.jpg", album="a").json["id"]
    rt = app.extensions[EXTENSION]
    queued = rt.jobs.create(KIND, "b", local_owner(), album="c")  # another process's move, not yet running
    answer = client.post("/api/v1/images/albums/move", json={"album": "a", "to": "d"})
    assert answer.status_code == 409 and queued.id in answer.json["message"]
    other = MODEL if DEFAULT != MODEL else INT8  # a reindex is refused while an album moves
    reindex = client.post("/api/v1/library/reindex", json={"model": other})
    assert reindex.status_code == 409 and f"an album is being moved (job {queued.id})" in reindex.json["message"]
    rt.jobs.move(queued.id, JobStatus.CANCELLED)
    rt.album_moves._reindexing = lambda: True
    for answer in (
        client.post("/api/v1/images/albums/move", json={"album": "a", "to": "d"}),
        client.patch(f"/api/v1/images/{image}", json={"album": "d"}),
    ):
        assert answer.status_code == 409 and "reindex" in answer.json["message"], answer.json
    assert albums(client) == {"a": 1}


def test_a_stopped_move_resumes_with_what_is_left(app: Flask, client: FlaskClient) -> None:
    load_tree(app, client)
    rt = app.extensions[EXTENSION]
    job = rt.jobs.create(KIND, "animals", rt.queue.owner, album="pets")
    rt.jobs.move(job.id, JobStatus.INTERRUPTED)  # as if its worker had died before it began
    resumed = client.post(f"/api/v1/jobs/{job.id}/resume")
    assert resumed.status_code == 202, resumed.json
    assert wait_for_job(client, resumed.json["url"])["status"] == "done"
    assert ids_in(client, "pets") == {"cat.jpg", "owl.jpg", "tit.jpg"} and ids_in(client, "animals") == set()


def test_an_image_deleted_meanwhile_is_not_brought_back(app: Flask, client: FlaskClient) -> None:
    """Another process deleting an image while it moves: its vector, written again, goes again.
    An image the catalogue does not list (a worker died before listing it) still moves."""
    data = noise_images(3, seed=66)
    shas = [upload(client, "/api/v1/images", d, f"{i}.jpg", album="a").json["id"] for i, d in enumerate(data)]
    lib = app.extensions[EXTENSION].library
    lib.catalog.remove(shas[:2])
    lib.images.delete(shas[0])  # deleted after the move read its vector: its entry and files went
    moved = lib.move(dict.fromkeys(shas, "b"))
    assert sorted(r.sha256 for r in moved) == sorted(shas[1:])
    assert set(lib.vectors.get(shas)) == set(shas[1:])
    assert {r.album for r in lib.vectors.get(shas).values()} == {"b"}
    assert lib.catalog.following("b", None, 10) == [
        (r.added_at, r.sha256, "b") for r in lib.vectors.get([shas[2]]).values()
    ]


def test_an_image_another_process_is_deleting_as_it_moves_is_not_brought_back(
    app: Flask, client: FlaskClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its vector deleted after the move read it, its files not yet in the trash: the catalogue
    tells (a deletion unlists first), and the vector the move wrote again goes again."""
    data = noise_images(2, seed=69)
    shas = [upload(client, "/api/v1/images", d, f"{i}.jpg", album="a").json["id"] for i, d in enumerate(data)]
    lib = app.extensions[EXTENSION].library
    upsert = lib.vectors.upsert

    def deleted_meanwhile(items: Any) -> None:  # another process's deletion, up to its files
        lib.catalog.unlist([shas[0]])
        lib.vectors.delete([shas[0]])
        upsert(items)

    monkeypatch.setattr(lib.vectors, "upsert", deleted_meanwhile)
    moved = lib.move(dict.fromkeys(shas, "b"))
    monkeypatch.undo()
    assert [r.sha256 for r in moved] == [shas[1]] and lib.images.original(shas[0]) is not None
    assert set(lib.vectors.get(shas)) == {shas[1]}
    assert searched(client, data[0], "") == {"1.jpg"}


def test_a_move_cut_short_is_finished_by_the_next_try(app: Flask, client: FlaskClient) -> None:
    """The vectors are written first: where the catalogue still names the old album, a resumed move
    finds the image again and writes both."""
    data = noise_images(2, seed=68)
    shas = [upload(client, "/api/v1/images", d, f"{i}.jpg", album="a/x").json["id"] for i, d in enumerate(data)]
    lib = app.extensions[EXTENSION].library
    record = lib.get(shas[0])
    lib.vectors.upsert([(replace(record, album="b/x"), lib.vectors.vector(shas[0]))])  # the catalogue not yet
    assert move_album(client, "a", "b")["status"] == "done"
    assert albums(client) == {"b": 2, "b/x": 2}
    assert {r.album for r in lib.vectors.get(shas).values()} == {"b/x"}


def test_a_failed_write_leaves_the_catalogue_as_it_was(
    app: Flask, client: FlaskClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    (data,) = noise_images(1, seed=67)
    image = upload(client, "/api/v1/images", data, "a.jpg", album="a").json["id"]
    lib = app.extensions[EXTENSION].library

    def down(items: Any) -> None:
        raise Conflict("the store said no")

    monkeypatch.setattr(lib.vectors, "upsert", down)
    answer = client.patch(f"/api/v1/images/{image}", json={"album": "b"})
    assert answer.status_code == 409
    monkeypatch.undo()
    assert albums(client) == {"a": 1} and client.get(f"/api/v1/images/{image}").json["album"] == "a"


def test_the_pages_move_an_image_and_an_album(app: Flask, client: FlaskClient) -> None:
    load_tree(app, client)
    owl = ids(client)["owl.jpg"]
    page = client.get(f"/images/{owl}").get_data(as_text=True)
    assert 'id="move-album"' in page and 'value="animals/birds"' in page
    token = csrf_token(client, f"/images/{owl}")
    moved = client.post(f"/images/{owl}/album", data={"album": "night", "csrf_token": token}, follow_redirects=True)
    assert moved.status_code == 200 and "owl.jpg is in the album night." in moved.get_data(as_text=True)
    bad = client.post(f"/images/{owl}/album", data={"album": "a/../b", "csrf_token": token})
    assert bad.status_code == 422 and "text/html" in bad.content_type
    library = client.get("/library", query_string={"album": "animals"}).get_data(as_text=True)
    assert "Move or rename this album" in library and 'name="to"' in library
    assert "Move or rename this album" not in client.get("/library").get_data(as_text=True)
    started = client.post("/library/move", data={"album": "animals", "to": "pets", "csrf_token": token})
    assert started.status_code == 303 and "/jobs/" in started.headers["Location"]
    job_id = started.headers["Location"].rstrip("/").rsplit("/", 1)[-1]
    assert wait_for_job(client, f"/api/v1/jobs/{job_id}")["status"] == "done"
    assert ids_in(client, "pets") == {"cat.jpg", "tit.jpg"}
    done = client.get(started.headers["Location"]).get_data(as_text=True)
    assert "animals to pets" in done and "/library?album=pets" in done


def test_the_library_page_moves_the_images_selected(app: Flask, client: FlaskClient) -> None:
    load_tree(app, client)
    named = ids(client)
    page = client.get("/library", query_string={"album": "animals"}).get_data(as_text=True)
    assert page.count('name="ids"') == 3 and 'form="move-selected"' in page
    token = csrf_token(client, "/library")
    back = "/library?album=animals"
    form = {"ids": [named["owl.jpg"], named["cat.jpg"]], "album": "night", "back": back, "csrf_token": token}
    moved = client.post("/library/move-images", data=form)
    assert moved.status_code == 303 and moved.headers["Location"] == back
    shown = client.get(back).get_data(as_text=True)
    assert "Moved 2 images to the album night." in shown and "1 image in the album animals" in shown
    assert ids_in(client, "night") == {"owl.jpg", "cat.jpg"}
    elsewhere = client.post("/library/move-images", data={**form, "back": "https://evil.example/x"})
    assert elsewhere.headers["Location"] == "/library"  # only a page of this site
    for data, says in (
        ({"album": "x", "csrf_token": token}, "Select at least one image"),
        ({"ids": "../etc", "album": "x", "csrf_token": token}, "not an image id"),
    ):
        refused = client.post("/library/move-images", data=data)
        assert refused.status_code == 400 and says in refused.get_data(as_text=True)
    assert ids_in(client, "night") == {"owl.jpg", "cat.jpg"}


def test_renamed_names() -> None:
    assert renamed("a/b/c", "a/b", "x") == "x/c"
    assert renamed("a/b", "a/b", "x") == "x"
    assert renamed("a/bc", "a/b", "x") is None
    assert renamed("a/b/c", "a/b", "") == "c"
    assert renamed("Cafe\u0301/d", "Caf\u00e9", "B") == "B/d"
    assert renamed("x", "a", "b") is None
    deep = "/".join("p" * 30 for _ in range(16))
    assert renamed(f"a/{deep}", "a", "b/c").count("/") == 15  # cut to 16 levels, as a loaded folder's
