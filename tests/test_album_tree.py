"""The album tree: the Albums page and ``GET /api/v1/images/albums?parent=`` list one level of the
library's albums, each with its image count, its sub-albums and its cover (its newest image, its
sub-albums' included), on SQLite and PostgreSQL (real model, Milvus Lite)."""

from __future__ import annotations

import re

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.conftest import noise_images
from tests.test_albums import ODD, load_tree
from tests.test_api import upload
from tests.test_pages import post_file
from webapp.services.albums import level, tree

BOTH_DATABASES = pytest.mark.parametrize("database", ["sqlite", "postgresql"], indirect=True)


def newest(client: FlaskClient, album: str) -> str:
    """Return the id of the newest image in an album or below it, as the library lists it."""
    return client.get("/api/v1/images", query_string={"album": album, "page_size": 1}).json[0]["id"]


def cards(page: str) -> dict[str, tuple[str | None, str]]:
    """Return each album card of an Albums page by name: its cover's id (None: none) and its text."""
    found = {}
    for card in re.findall(r'<li class="card">(.*?)</li>', page, re.S):
        cover = re.search(r"/api/v1/images/([0-9a-f]{64})/thumbnail", card)
        name = re.search(r'<p class="filename" title="([^"]*)">', card)
        assert name, card
        text = " ".join(re.sub(r"<[^>]+>", " ", card).split())
        found[name.group(1)] = (cover.group(1) if cover else None, text)
    return found


@BOTH_DATABASES
def test_the_albums_page_shows_one_level_with_covers(app: Flask, client: FlaskClient) -> None:
    load_tree(app, client)  # top.jpg; animals/cat.jpg; animals/birds/{owl,tit}.jpg; ODD/x.jpg; animalsx/y.jpg
    page = client.get("/albums").get_data(as_text=True)
    top = cards(page)
    assert set(top) == {"animals", "animalsx", ODD.replace('"', "&#34;")}  # not animals/birds: one level
    assert top["animals"] == (newest(client, "animals"), "animals 3 images 1 sub-album of animals")
    assert 'id="album-find"' in page
    assert top["animalsx"][1] == "animalsx 1 image"
    assert "6 images in the library · 3 albums; 1 image is in no album" in " ".join(page.split())

    page = client.get("/albums", query_string={"album": "animals"}).get_data(as_text=True)
    assert cards(page) == {"animals/birds": (newest(client, "animals/birds"), "birds 2 images")}
    flat = " ".join(re.sub(r"<[^>]+>", " ", page).split())
    assert "Albums animals animals 3 images in it and its sub-albums · 1 sub-album; 1 image is in no sub-album" in flat
    assert '<span aria-current="page">animals</span>' in page  # the path: Albums, then this one
    assert 'href="/library?album=animals"' in page and 'href="/add?album=animals"' in page
    page = client.get("/albums", query_string={"album": "animals/birds"}).get_data(as_text=True)
    assert "has no sub-albums" in page and not cards(page)

    # the cover follows the library: the newest image deleted, the next newest covers the album
    gone = newest(client, "animals")
    assert client.delete(f"/api/v1/images/{gone}").status_code == 204
    assert cards(client.get("/albums").get_data(as_text=True))["animals"][0] == newest(client, "animals") != gone


def test_the_albums_page_finds_albums_by_name_at_any_depth(app: Flask, client: FlaskClient) -> None:
    load_tree(app, client)

    def found(**args: str) -> dict[str, tuple[str | None, str]]:
        response = client.get("/albums", query_string=args)
        assert response.status_code == 200, response.status_code
        return cards(response.get_data(as_text=True))

    assert list(found(find="BIRD")) == ["animals/birds"]  # any case, any depth
    assert found(find="BIRD")["animals/birds"][1] == "animals/birds 2 images"  # its path, not "birds"
    assert list(found(find="animal")) == ["animals", "animals/birds", "animalsx"]
    inside = found(album="animals", find="s")  # below animals, by the path below it: "birds", not "animals"
    assert list(inside) == ["animals/birds"] and inside["animals/birds"][1].startswith("birds ")
    assert list(found(album="animals", find="animals")) == []
    page = client.get("/albums", query_string={"find": "zebra"}).get_data(as_text=True)
    assert "No album has a name holding “zebra”." in page
    page = client.get("/albums", query_string={"find": "animal", "per_page": 2, "page": 2}).get_data(as_text=True)
    assert list(cards(page)) == ["animalsx"] and "3 albums whose name holds “animal”" in page
    assert 'href="/albums?page=1&amp;per_page=2&amp;find=animal"' in page  # the pages keep what is found
    assert client.get("/albums", query_string={"find": "x" * 501}).status_code == 400


def test_a_level_is_sorted_by_name_by_the_last_added_to_or_by_size(client: FlaskClient) -> None:
    for i, (data, album) in enumerate(zip(noise_images(6, seed=60), ["a", "a/x", "c", "c", "c", "b"], strict=True)):
        assert upload(client, "/api/v1/images", data, f"{i}.jpg", album=album).status_code == 201  # b last
    orders = {"name": ["a", "b", "c"], "newest": ["b", "c", "a"], "largest": ["c", "a", "b"]}
    for order, names in orders.items():
        listed = client.get("/api/v1/images/albums", query_string={"parent": "", "order": order}).json
        assert [album["name"] for album in listed] == names, order
        page = client.get("/albums", query_string={"order": order}).get_data(as_text=True)
        assert list(cards(page)) == names, order
    paged = client.get("/albums", query_string={"order": "largest", "per_page": 2}).get_data(as_text=True)
    assert 'href="/albums?page=2&amp;per_page=2&amp;order=largest"' in paged  # the pages keep the order
    assert '<span aria-current="true">Most images first</span>' in paged
    assert client.get("/albums", query_string={"order": "size"}).status_code == 400
    refused = client.get("/api/v1/images/albums", query_string={"parent": "", "order": "size"})
    assert refused.status_code == 422 and "order" in refused.json["errors"]["query"]


def test_the_albums_page_pages_and_refuses_what_is_not_an_album(client: FlaskClient) -> None:
    for i, data in enumerate(noise_images(3, seed=57)):
        assert upload(client, "/api/v1/images", data, f"{i}.jpg", album=f"a{i}/b").status_code == 201
    first = cards(client.get("/albums?per_page=2").get_data(as_text=True))
    second = client.get("/albums?per_page=2&page=2").get_data(as_text=True)
    assert list(first) == ["a0", "a1"] and list(cards(second)) == ["a2"]
    assert "Page 2 of 2" in second
    assert client.get("/albums?per_page=2&page=3").status_code == 302
    missing = client.get("/albums", query_string={"album": "a0/c"})
    assert missing.status_code == 404 and "The library has no album a0/c." in missing.get_data(as_text=True)
    assert client.get("/albums", query_string={"album": "a/../b"}).status_code == 422
    assert client.get("/albums", query_string={"page": "x"}).status_code == 400


def test_an_empty_library_has_no_albums(client: FlaskClient) -> None:
    page = client.get("/albums").get_data(as_text=True)
    assert "No albums yet." in page and not cards(page)


@BOTH_DATABASES
def test_the_api_lists_one_level_with_covers(app: Flask, client: FlaskClient) -> None:
    load_tree(app, client)
    top = client.get("/api/v1/images/albums", query_string={"parent": ""})
    assert top.status_code == 200, top.json
    assert [(a["name"], a["count"], a["sub_albums"]) for a in top.json] == [
        ("animals", 3, 1),
        ("animalsx", 1, 0),
        (ODD, 1, 0),
    ]
    assert [a["cover"] for a in top.json] == [newest(client, a["name"]) for a in top.json]
    below = client.get("/api/v1/images/albums", query_string={"parent": "/animals/"}).json
    assert [(a["name"], a["cover"], a["images_url"]) for a in below] == [
        ("animals/birds", newest(client, "animals/birds"), "/api/v1/images?album=animals%2Fbirds")
    ]
    assert client.get("/api/v1/images/albums", query_string={"parent": "animals/birds"}).json == []
    narrowed = client.get("/api/v1/images/albums", query_string={"parent": "", "contains": "ANIMAL", "limit": 1})
    assert [a["name"] for a in narrowed.json] == ["animals"]
    everything = client.get("/api/v1/images/albums").json  # every level, without covers
    assert [(a["name"], a["sub_albums"], a["cover"]) for a in everything][:2] == [
        ("animals", 1, None),
        ("animals/birds", 0, None),
    ]
    missing = client.get("/api/v1/images/albums", query_string={"parent": "birds"})
    assert missing.status_code == 404 and missing.json["message"] == "The library has no album birds."
    bad = client.get("/api/v1/images/albums", query_string={"parent": "a\x00b"})
    assert bad.status_code == 422 and "control characters" in str(bad.json["errors"])


def test_an_album_named_on_a_mac_is_a_level_by_its_name_as_typed(client: FlaskClient) -> None:
    mac, typed = "Cafe\u0301/Cre\u0300me", "Caf\u00e9/Cr\u00e8me"
    data = noise_images(1, seed=58)[0]
    assert upload(client, "/api/v1/images", data, "in.jpg", album=mac).status_code == 201
    for spelling in ("Cafe\u0301", "Caf\u00e9"):
        listed = client.get("/api/v1/images/albums", query_string={"parent": spelling}).json
        assert [(a["name"], a["count"], a["cover"] is not None) for a in listed] == [(typed, 1, True)]
        assert typed.split("/")[1] in client.get("/albums", query_string={"album": spelling}).get_data(as_text=True)


def test_the_library_and_add_pages_lead_to_the_tree(client: FlaskClient) -> None:
    data = noise_images(1, seed=59)[0]
    assert upload(client, "/api/v1/images", data, "in.jpg", album="trips/day1").status_code == 201
    library = client.get("/library", query_string={"album": "trips"}).get_data(as_text=True)
    assert '<a href="/albums?album=trips">1 sub-album</a>' in library
    day = client.get("/library", query_string={"album": "trips/day1"}).get_data(as_text=True)
    assert 'href="/albums?album=' not in day  # no sub-albums: no link
    assert '<a href="/albums">1 album</a>' in client.get("/library").get_data(as_text=True)
    in_album = 'title="trips/day1">in <a href="/library?album=trips/day1">trips/day1</a></p>'
    assert in_album in library  # each card says which album it is in
    found = post_file(client, "/search", data, "q.jpg")
    assert found.status_code == 200 and in_album in found.get_data(as_text=True)  # and so does each result
    image = client.get("/api/v1/images").json[0]["id"]
    page = client.get(f"/images/{image}").get_data(as_text=True)  # each level of its album leads there
    shown = re.search(r'<dd class="image-album">(.*?)</dd>', page, re.S).group(1)
    links = re.findall(r'<a href="([^"]*)"[^>]*>([^<]*)</a>', shown)
    assert links == [("/library?album=trips", "trips"), ("/library?album=trips/day1", "day1")]
    assert re.sub(r"<[^>]+>|\s", "", shown) == "trips/day1"
    add = client.get("/add", query_string={"album": "trips"}).get_data(as_text=True)
    assert add.count('value="trips" placeholder="e.g. trips/2024"') == 3  # files, archive, folder
    assert client.get("/add", query_string={"album": "a/../b"}).status_code == 422


def test_levels_of_an_album_list() -> None:
    albums = [("a", 4), ("a/b", 2), ("a/b/c", 1), ("a/d", 1), ("ab", 1)]
    assert [(e.name, e.count, e.sub_albums, e.title) for e in tree(albums)] == [
        ("a", 4, 2, "a"),
        ("a/b", 2, 1, "b"),
        ("a/b/c", 1, 0, "c"),
        ("a/d", 1, 0, "d"),
        ("ab", 1, 0, "ab"),
    ]
    assert [e.name for e in level(albums, "")] == ["a", "ab"]
    assert [e.name for e in level(albums, "a")] == ["a/b", "a/d"]
    assert level(albums, "a/d") == [] and level(albums, "x") == []
