"""Album covers a person chooses: kept while the image stays in the album, carried over when the
album is moved, on the API, the image page and the Albums page (real model, Milvus Lite; SQLite
and PostgreSQL)."""

from __future__ import annotations

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from tests.conftest import csrf_token, wait_for_job
from tests.test_album_tree import cards
from tests.test_albums import load_tree
from webapp.runtime import EXTENSION
from webapp.services.covers import Covers
from webapp.services.database import album_covers

BOTH_DATABASES = pytest.mark.parametrize("database", ["sqlite", "postgresql"], indirect=True)
COVER = "/api/v1/images/albums/cover"


def ids(client: FlaskClient) -> dict[str, str]:
    return {
        image["filename"]: image["id"] for image in client.get("/api/v1/images", query_string={"page_size": 100}).json
    }


def level(client: FlaskClient, parent: str) -> dict[str, tuple[str, bool]]:
    listed = client.get("/api/v1/images/albums", query_string={"parent": parent}).json
    return {album["name"]: (album["cover"], album["chosen"]) for album in listed}


@BOTH_DATABASES
def test_a_chosen_cover_stays_while_its_image_is_in_the_album(app: Flask, client: FlaskClient) -> None:
    load_tree(app, client)  # top.jpg; animals/cat.jpg; animals/birds/{owl,tit}.jpg; ODD/x.jpg; animalsx/y.jpg
    image = ids(client)
    newest = level(client, "")["animals"][0]
    owl = image["owl.jpg"]
    chose = client.put(COVER, json={"album": "animals", "image": owl})  # from a sub-album
    assert chose.status_code == 200, chose.json
    assert (chose.json["name"], chose.json["cover"], chose.json["chosen"]) == ("animals", owl, True)
    assert level(client, "")["animals"] == (owl, True)
    assert cards(client.get("/albums").get_data(as_text=True))["animals"][0] == owl

    # moved out, it is not the cover; moved back, it is again (the choice is kept)
    assert client.patch(f"/api/v1/images/{owl}", json={"album": "elsewhere"}).status_code == 200
    assert level(client, "")["animals"] == (image["tit.jpg"] if newest == owl else newest, False)
    assert client.patch(f"/api/v1/images/{owl}", json={"album": "animals/birds"}).status_code == 200
    assert level(client, "")["animals"] == (owl, True)

    refused = client.put(COVER, json={"album": "animals", "image": image["y.jpg"]})  # in animalsx
    assert refused.status_code == 422 and "not in the album animals or below it" in refused.json["message"]
    assert client.put(COVER, json={"album": "animals", "image": "0" * 64}).status_code == 422
    assert client.put(COVER, json={"album": "", "image": owl}).status_code == 422
    assert client.put(COVER, json={"album": "zoo", "image": owl}).status_code == 404
    assert client.put(COVER, json={"album": "animals", "image": "x"}).status_code == 422
    assert level(client, "")["animals"] == (owl, True)  # none of these changed it

    back = client.delete(COVER, query_string={"album": "animals"})
    assert back.status_code == 200 and (back.json["cover"], back.json["chosen"]) == (
        level(client, "")["animals"][0],
        False,
    )
    assert client.delete(COVER, query_string={"album": "zoo"}).status_code == 404

    client.put(COVER, json={"album": "animals", "image": owl})
    assert client.delete(f"/api/v1/images/{owl}").status_code == 204  # deleted: the newest again
    assert level(client, "")["animals"][1] is False

    assert client.put(COVER, json={"album": "animals", "image": image["cat.jpg"]}).status_code == 200
    count = client.get("/api/v1/stats").json["count"]
    assert client.delete("/api/v1/images", query_string={"confirm": count}).status_code == 200
    with app.extensions[EXTENSION].database.connect() as conn:  # emptying the library forgets the choices
        assert conn.scalar(select(func.count()).select_from(album_covers)) == 0


def test_a_moved_album_keeps_its_covers(app: Flask, client: FlaskClient) -> None:
    load_tree(app, client)
    image = ids(client)
    assert client.put(COVER, json={"album": "animals", "image": image["cat.jpg"]}).status_code == 200
    assert client.put(COVER, json={"album": "animals/birds", "image": image["tit.jpg"]}).status_code == 200
    job = client.post("/api/v1/images/albums/move", json={"album": "animals", "to": "zoo"})
    assert wait_for_job(client, job.json["url"])["status"] == "done"
    assert level(client, "")["zoo"] == (image["cat.jpg"], True)
    assert level(client, "zoo")["zoo/birds"] == (image["tit.jpg"], True)


def test_covers_carried_over_by_a_move(app: Flask) -> None:
    covers = Covers(app.extensions[EXTENSION].database)
    with covers.db.connect() as conn:
        conn.execute(
            album_covers.insert(),
            [
                {"album": album, "sha256": sha * 64, "set_at": 0.0}
                for album, sha in (("a", "1"), ("a/b", "2"), ("ab", "3"), ("c", "4"), ("c/b", "5"), ("d", "6"))
            ],
        )
    covers.rename("a", "c")  # merged into c, which has covers of its own: they stay
    covers.rename("d", "")  # to the top level: no album is named "" (its sub-albums would keep theirs)
    with covers.db.connect() as conn:
        kept = dict(
            conn.execute(album_covers.select().with_only_columns(album_covers.c.album, album_covers.c.sha256)).all()
        )
    assert kept == {"ab": "3" * 64, "c": "4" * 64, "c/b": "5" * 64}


def test_an_editor_chooses_a_cover_on_the_image_page(app: Flask, client: FlaskClient) -> None:
    load_tree(app, client)
    owl = ids(client)["owl.jpg"]
    page = client.get(f"/images/{owl}").get_data(as_text=True)
    assert '<option value="animals/birds">animals/birds</option><option value="animals">animals</option>' in page
    token = csrf_token(client, f"/images/{owl}")
    done = client.post(f"/images/{owl}/cover", data={"album": "animals", "csrf_token": token})
    assert done.status_code == 303 and done.headers["Location"] == f"/images/{owl}"
    page = client.get(f"/images/{owl}").get_data(as_text=True)
    assert "owl.jpg is the cover of the album animals." in page and "The cover of <a" in page
    assert level(client, "")["animals"] == (owl, True)
    refused = client.post(f"/images/{owl}/cover", data={"album": "animalsx", "csrf_token": token})
    assert refused.status_code == 422 and "not in the album animalsx" in refused.get_data(as_text=True)
    assert client.post(f"/images/{owl}/cover", data={"album": "zoo", "csrf_token": token}).status_code == 404
    back = client.post(f"/images/{owl}/cover", data={"album": "animals", "newest": "1", "csrf_token": token})
    assert back.status_code == 303 and level(client, "")["animals"][1] is False
    assert "The album animals shows its newest image again." in client.get(f"/images/{owl}").get_data(as_text=True)
