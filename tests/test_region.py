"""Search by a region of the query image (real model, Milvus Lite): the API's x, y, width, height."""

from __future__ import annotations

import io
from typing import Any

import pytest
from flask.testing import FlaskClient
from PIL import Image

from tests.conftest import csrf_token, heic
from tests.test_api import add_all, upload


def side_by_side(left: bytes, right: bytes, side: int = 320) -> bytes:
    """Return a JPEG of two photos next to each other, each ``side`` pixels square."""
    canvas = Image.new("RGB", (2 * side, side))
    for i, data in enumerate((left, right)):
        canvas.paste(Image.open(io.BytesIO(data)).convert("RGB").resize((side, side)), (i * side, 0))
    out = io.BytesIO()
    canvas.save(out, "JPEG", quality=92)
    return out.getvalue()


def test_a_region_finds_what_is_in_it(client: FlaskClient, photos: dict[str, bytes]) -> None:
    ids = add_all(client, {name: photos[name] for name in ("chelsea", "rocket", "coffee", "moon", "coins")})
    query = side_by_side(photos["chelsea"], photos["rocket"])
    for x, expected in ((0, "chelsea"), (320, "rocket")):
        found = upload(client, "/api/v1/search", query, x=str(x), y="0", width="320", height="320", top_k="1")
        assert found.status_code == 200, found.json
        assert found.json["results"][0]["id"] == ids[expected]
        assert found.json["region"] == {"x": x, "y": 0, "width": 320, "height": 320}
    whole = upload(client, "/api/v1/search", query, top_k="1").json
    assert whole["region"] is None


@pytest.mark.parametrize(
    ("fields", "says"),
    [
        ({"x": "600", "y": "0", "width": "100", "height": "100"}, "not inside the image (640x320"),
        ({"x": "0", "y": "0", "width": "100", "height": "321"}, "not inside the image"),
        ({"x": "0", "y": "0", "width": "100"}, "missing: height"),
        ({"width": "100", "height": "100"}, "missing: x, y"),
        ({"x": "-1", "y": "0", "width": "100", "height": "100"}, "greater than or equal to 0"),
        ({"x": "0", "y": "0", "width": "4", "height": "100"}, "greater than or equal to 8"),
        ({"x": "a", "y": "0", "width": "100", "height": "100"}, "Not a valid integer"),
        ({"x": "0", "y": "0", "width": "99999999999999999999", "height": "100"}, "not inside the image"),
    ],
)
def test_bad_regions_are_422(client: FlaskClient, photos: dict[str, bytes], fields: dict[str, Any], says: str) -> None:
    response = upload(client, "/api/v1/search", side_by_side(photos["chelsea"], photos["rocket"]), **fields)
    assert response.status_code == 422, response.json
    assert says in response.json["message"] + str(response.json.get("errors", "")), response.json


def test_empty_region_fields_mean_the_whole_image(client: FlaskClient, photos: dict[str, bytes]) -> None:
    add_all(client, {"moon": photos["moon"]})
    found = upload(client, "/api/v1/search", photos["moon"], x="", y="", width="", height="", album="")
    assert found.status_code == 200 and found.json["region"] is None, found.json


def test_the_search_form_gets_a_jpeg_of_a_photo_its_browser_cannot_show(
    client: FlaskClient, photos: dict[str, bytes]
) -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # turned once: the box is drawn on the upright photo
    phone = heic(Image.open(io.BytesIO(side_by_side(photos["chelsea"], photos["rocket"]))), exif=exif.tobytes())
    token = csrf_token(client)
    made = client.post("/picture", data={"image": (io.BytesIO(phone), "IMG_0001.HEIC"), "csrf_token": token})
    assert made.status_code == 200 and made.mimetype == "image/jpeg"
    assert (made.headers["X-Image-Width"], made.headers["X-Image-Height"]) == ("320", "640")
    assert made.headers["Cache-Control"] == "no-store"
    assert Image.open(io.BytesIO(made.data)).size == (320, 640)
    refused = client.post("/picture", data={"image": (io.BytesIO(b"not a photo"), "a.heic"), "csrf_token": token})
    assert refused.status_code == 422 and refused.mimetype == "text/html"
    forged = client.post("/picture", data={"image": (io.BytesIO(phone), "IMG_0001.HEIC")})
    assert forged.status_code == 400  # no CSRF token: another site's page cannot have it read photos
    assert client.get("/api/v1/stats").json["count"] == 0
