"""Albums: a loaded file's folder is its album; search, "more like this" and the library list narrow
to an album and its sub-albums (real model, Milvus Lite), with names that need escaping."""

from __future__ import annotations

import io
import zipfile
import zlib
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.conftest import noise_images, wait_for_job
from tests.test_api import BOTH_STORES, upload
from tests.test_jobs import import_folder
from webapp.errors import InvalidInput
from webapp.services.albums import album_of_item, lineage, literal, milvus_filter, parse_album, within

# Folder names a person may really have, including what a filter expression must escape.
ODD = 'say "cheese" \\ 100%_off'


def load_tree(app: Flask, client: FlaskClient) -> dict[str, str]:
    """Load a folder tree; return each file's album by its content id."""
    images = noise_images(6, seed=51)
    layout = [
        "top.jpg",
        "animals/cat.jpg",
        "animals/birds/owl.jpg",
        "animals/birds/tit.jpg",
        f"{ODD}/x.jpg",
        "animalsx/y.jpg",
    ]
    folder = import_folder(app, "tree")
    for rel, data in zip(layout, images, strict=True):
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_bytes(data)
    job = client.post("/api/v1/jobs", json={"folder": str(folder)})
    assert wait_for_job(client, job.json["url"])["added"] == 6
    listed = client.get("/api/v1/images", query_string={"page_size": 100}).json
    return {image["filename"]: image["album"] for image in listed}


def ids_in(client: FlaskClient, album: str) -> set[str]:
    response = client.get("/api/v1/images", query_string={"album": album, "page_size": 100})
    assert response.status_code == 200, response.json
    return {image["filename"] for image in response.json}


def test_folders_become_albums_and_lists_narrow_to_them(app: Flask, client: FlaskClient) -> None:
    albums = load_tree(app, client)
    assert albums == {
        "top.jpg": "",
        "cat.jpg": "animals",
        "owl.jpg": "animals/birds",
        "tit.jpg": "animals/birds",
        "x.jpg": ODD,
        "y.jpg": "animalsx",
    }
    assert ids_in(client, "animals") == {"cat.jpg", "owl.jpg", "tit.jpg"}  # sub-albums, not "animalsx"
    assert ids_in(client, "/animals/birds/") == {"owl.jpg", "tit.jpg"}
    assert ids_in(client, ODD) == {"x.jpg"}
    assert ids_in(client, "") == set(albums)
    listed = client.get("/api/v1/images?album=animals").headers["X-Pagination"]
    assert '"total": 3' in listed
    names = {a["name"]: a["count"] for a in client.get("/api/v1/images/albums").json}
    assert names == {"animals": 3, "animals/birds": 2, "animalsx": 1, ODD: 1}


def test_search_and_more_like_this_narrow_to_an_album(app: Flask, client: FlaskClient) -> None:
    load_tree(app, client)
    images = noise_images(6, seed=51)
    for album, expected in (("animals", {"cat.jpg", "owl.jpg", "tit.jpg"}), (ODD, {"x.jpg"})):
        found = upload(client, "/api/v1/search", images[0], top_k="10", album=album)
        assert found.status_code == 200, found.json
        assert {hit["filename"] for hit in found.json["results"]} == expected
        assert all(hit["album"].startswith(album) for hit in found.json["results"])
    owl = next(i for i in client.get("/api/v1/images?album=animals/birds").json if i["filename"] == "owl.jpg")
    similar = client.get(f"/api/v1/images/{owl['id']}/similar", query_string={"album": "animals/birds"}).json
    assert [hit["filename"] for hit in similar["results"]] == ["tit.jpg"]


def test_an_upload_and_a_job_may_name_the_album(client: FlaskClient) -> None:
    one, two, three = noise_images(3, seed=52)
    added = upload(client, "/api/v1/images", one, album="trips/2024")
    assert added.status_code == 201 and added.json["album"] == "trips/2024"
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("day1/a.jpg", two)
        zf.writestr("b.jpg", three)
    archive.seek(0)
    job = client.post(
        "/api/v1/jobs", data={"archive": (archive, "t.zip"), "album": "trips"}, content_type="multipart/form-data"
    )
    assert job.status_code == 202 and job.json["album"] == "trips"
    wait_for_job(client, job.json["url"])
    assert ids_in(client, "trips") == {"photo.jpg", "a.jpg", "b.jpg"}
    assert ids_in(client, "trips/day1") == {"a.jpg"}


class LegacyName(zipfile.ZipInfo):
    """An entry whose name is written as the bytes given, with bit 11 (UTF-8) clear."""

    def __init__(self, raw: bytes, extra: bytes = b"") -> None:
        super().__init__(raw.decode("cp437"))  # how a reader that follows the format sees it
        self.raw = raw
        self.extra = extra

    def _encodeFilenameFlags(self) -> tuple[bytes, int]:  # zipfile's own hook for the name's bytes
        return self.raw, self.flag_bits & ~0x800


def unicode_path(name: str, stands_for: bytes) -> bytes:
    """Info-ZIP's Unicode Path extra field (0x7075): version 1, the CRC-32 of the name it stands for, the name."""
    field = b"\x01" + zlib.crc32(stands_for).to_bytes(4, "little") + name.encode()
    return (0x7075).to_bytes(2, "little") + len(field).to_bytes(2, "little") + field


def test_a_zip_whose_names_are_utf8_without_saying_so_names_its_albums_as_its_maker_did(client: FlaskClient) -> None:
    """macOS's Archive Utility and Info-ZIP's zip on Linux write UTF-8 names without setting bit 11,
    which by the format means code page 437: "Öland" was read as "├ûland", and so named its album."""
    images = noise_images(5, seed=58)
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr(LegacyName("Urlaub Öland/strand.jpg".encode()), images[0])  # macOS, Info-ZIP on Linux
        zf.writestr(LegacyName("MÜNCHEN/kirche.jpg".encode("cp437")), images[1])  # code page 437, as the format says
        legacy = b"_r_/ferry.jpg"  # a name in a legacy code page, with the real one beside it
        zf.writestr(LegacyName(legacy, unicode_path("Ærø/ferry.jpg", legacy)), images[2])
        zf.writestr(LegacyName(b"kept/old.jpg", unicode_path("renamed/old.jpg", b"other.jpg")), images[3])  # stale
        zf.writestr("Café/flagged.jpg", images[4])  # bit 11 set, as Python and Windows 11 write
    archive.seek(0)
    job = client.post("/api/v1/jobs", data={"archive": (archive, "t.zip")}, content_type="multipart/form-data")
    assert job.status_code == 202, job.json
    assert wait_for_job(client, job.json["url"])["added"] == 5
    assert ids_in(client, "Urlaub Öland") == {"strand.jpg"}
    assert ids_in(client, "MÜNCHEN") == {"kirche.jpg"}
    assert ids_in(client, "Ærø") == {"ferry.jpg"}
    assert ids_in(client, "kept") == {"old.jpg"}
    assert ids_in(client, "Café") == {"flagged.jpg"}


@BOTH_STORES
def test_an_album_named_on_a_mac_is_found_by_its_name_as_typed(app: Flask, client: FlaskClient) -> None:
    """A folder copied from a Mac may be named with é as e and a combining accent (NFD); a keyboard
    types é as one character (NFC). The two look alike, so either narrows to the album."""
    mac, typed = "Cafe\u0301/Cre\u0300me", "Caf\u00e9/Cr\u00e8me"
    inside, other, outside = noise_images(3, seed=54)
    assert upload(client, "/api/v1/images", inside, "in.jpg", album=mac).status_code == 201
    assert upload(client, "/api/v1/images", other, "other.jpg", album=mac).status_code == 201
    assert upload(client, "/api/v1/images", outside, "out.jpg", album="Cafes").status_code == 201
    for name in (typed, "Caf\u00e9", mac):
        assert ids_in(client, name) == {"in.jpg", "other.jpg"}, name
        found = upload(client, "/api/v1/search", inside, top_k="10", album=name).json["results"]
        assert {hit["filename"] for hit in found} == {"in.jpg", "other.jpg"}, name
    first = client.get("/api/v1/images", query_string={"album": mac}).json[0]
    similar = client.get(f"/api/v1/images/{first['id']}/similar", query_string={"album": typed}).json["results"]
    assert [hit["filename"] for hit in similar] == [{"in.jpg": "other.jpg", "other.jpg": "in.jpg"}[first["filename"]]]
    assert "2 images in the album" in client.get("/library", query_string={"album": typed}).get_data(as_text=True)


def test_an_album_in_two_spellings_is_listed_once_as_typed(client: FlaskClient) -> None:
    """Images loaded from a Mac's folder (NFD) and uploaded into the album typed on a keyboard (NFC)
    are one album: listed once, as typed, counting both, and a page linked in either spelling
    shows it chosen in its menu."""
    mac, typed = "Cafe\u0301/Cre\u0300me", "Caf\u00e9/Cr\u00e8me"
    first, second, third = noise_images(3, seed=56)
    assert upload(client, "/api/v1/images", first, "mac.jpg", album=mac).status_code == 201
    assert upload(client, "/api/v1/images", second, "typed.jpg", album=typed).status_code == 201
    assert upload(client, "/api/v1/images", third, "top.jpg", album="Cafe\u0301").status_code == 201
    listed = client.get("/api/v1/images/albums").json
    assert [(album["name"], album["count"]) for album in listed] == [("Caf\u00e9", 3), (typed, 2)]
    assert ids_in(client, listed[1]["name"]) == {"mac.jpg", "typed.jpg"}
    for spelling in (mac, typed):
        page = client.get("/library", query_string={"album": spelling}).get_data(as_text=True)
        assert page.count(f"{typed} (2)") == 1 and f'value="{typed}" selected' in page, spelling
        assert "2 images in the album" in page


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("a\x00b", "control characters"),
        ("a/../b", ". or .."),
        ("x" * 600, "too long"),
        ("/".join("a" * 17), "too long"),
    ],
)
@pytest.mark.parametrize("where", ["list", "search", "similar", "upload", "job"])
def test_bad_album_names_are_422(client: FlaskClient, value: str, says: str, where: str) -> None:
    image = noise_images(1, seed=53)[0]
    response: Any
    if where == "list":
        response = client.get("/api/v1/images", query_string={"album": value})
    elif where == "search":
        response = upload(client, "/api/v1/search", image, album=value)
    elif where == "similar":
        response = client.get(f"/api/v1/images/{'0' * 64}/similar", query_string={"album": value})
    elif where == "job":
        response = client.post(
            "/api/v1/jobs",
            data={"files": (io.BytesIO(image), "a.jpg"), "album": value},
            content_type="multipart/form-data",
        )
    else:
        response = upload(client, "/api/v1/images", image, album=value)
    assert response.status_code == 422, response.json
    assert says in str(response.json["errors"]), response.json
    assert client.get("/api/v1/stats").json["count"] == 0


def test_album_names_from_paths_and_clients() -> None:
    assert album_of_item("a/b/c.jpg") == "a/b" and album_of_item("c.jpg") == ""
    assert album_of_item("../x/./y\x07z/c.jpg") == "x/yz"  # never refused: cleaned
    assert album_of_item("/".join(["d"] * 30) + "/f.jpg").count("/") == 15
    assert parse_album(" /a//b/ ") == "a/b" and parse_album(None) == ""
    with pytest.raises(InvalidInput):
        parse_album("..")
    assert within("trips", "day1") == "trips/day1" and within("", "x") == "x" and within("t", "") == "t"
    assert lineage("a/b/c") == ["a", "a/b", "a/b/c"] and lineage("") == []
    assert literal('q"x\\') == '"q\\"x\\\\"'
    assert milvus_filter("") == "" and milvus_filter("a") == 'array_contains(albums, "a")'


def test_the_album_list_narrows_to_names_holding_some_text(app: Flask, client: FlaskClient) -> None:
    load_tree(app, client)

    def names(**args: Any) -> list[str]:
        response = client.get("/api/v1/images/albums", query_string=args)
        assert response.status_code == 200, response.json
        return [album["name"] for album in response.json]

    assert names(contains="BIRD") == ["animals/birds"]
    assert names(contains="animals", limit=2) == ["animals", "animals/birds"]
    assert names(contains='"CHEESE" \\') == [ODD]
    assert names(contains="nowhere") == []
    assert upload(client, "/api/v1/images", noise_images(1, seed=53)[0], album="Cafe\u0301/2019").status_code == 201
    # Stored as a Mac wrote it (NFD), found as typed, and listed as typed (NFC)
    assert names(contains="CAF\u00c9") == ["Caf\u00e9", "Caf\u00e9/2019"]
    assert names() == ["Caf\u00e9", "Caf\u00e9/2019", "animals", "animals/birds", "animalsx", ODD]
    for bad in ({"limit": 0}, {"limit": 1001}, {"limit": "x"}, {"contains": "a" * 501}):
        assert client.get("/api/v1/images/albums", query_string=bad).status_code == 422


def test_a_library_with_more_albums_than_a_menu_holds_gets_a_field_that_suggests_them(
    app: Flask, client: FlaskClient
) -> None:
    load_tree(app, client)  # four albums
    menu = '<option value="animals/birds">animals/birds (2)</option>'
    app.config["ALBUM_CHOICES"] = 4
    for path in ("/", "/library", "/duplicates"):
        page = client.get(path).get_data(as_text=True)
        assert menu in page and "data-album-suggest" not in page, path

    app.config["ALBUM_CHOICES"] = 2
    suggest = 'data-album-suggest="/api/v1/images/albums"'
    home = client.get("/").get_data(as_text=True)
    assert menu not in home and "animals/birds" not in home  # neither the menu nor every name
    assert home.count(suggest) == 2  # the search form's album and the add form's
    first = '<option value="animals">3</option><option value="animalsx">1</option></datalist>'
    assert home.count(first) == 2  # the top levels, by name, up to ALBUM_CHOICES
    library = client.get("/library?album=animals/birds").get_data(as_text=True)
    assert suggest in library and 'value="animals/birds"' in library and menu not in library
    assert "2 images in the album animals/birds" in library
    assert suggest in client.get("/duplicates").get_data(as_text=True)
    add = client.get("/add").get_data(as_text=True)
    assert add.count(suggest) == 3 and add.count(first) == 3  # files, an archive, a folder
    app.config["ALBUM_CHOICES"] = 4
    add = client.get("/add").get_data(as_text=True)
    assert suggest not in add and add.count('<option value="animals/birds">2</option>') == 3
