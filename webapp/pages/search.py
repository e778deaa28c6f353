"""Search pages: the search form, the ranked results, and adding one image from the home page."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

import marshmallow as ma
from flask import current_app, flash, redirect, render_template, request, url_for
from werkzeug.datastructures import CombinedMultiDict, FileStorage
from werkzeug.exceptions import BadRequest
from werkzeug.wrappers import Response

from webapp import audit
from webapp.api.search.schemas import SearchArgsSchema
from webapp.auth import public, requires
from webapp.extensions import rate_limited
from webapp.pages.blueprint import album_arg, blp
from webapp.runtime import library
from webapp.services.checks import same_in_search
from webapp.services.imaging import Box, thumbnail
from webapp.services.library import DEFAULT_TOP_K, MAX_TOP_K
from webapp.services.records import SearchResult
from webapp.services.roles import Role

TOP_K_CHOICES = [5, 10, 20, 50, MAX_TOP_K]
SEARCH_ARGS = SearchArgsSchema(unknown=ma.EXCLUDE)  # the page's form also carries its CSRF token
FIELD_LABELS = {
    "top_k": "The number of results",
    "album": "The album",
    "region": "The region",
    "x": "The region's x",
    "y": "The region's y",
    "width": "The region's width",
    "height": "The region's height",
}


@dataclass(frozen=True)
class ShownQuery:
    """The query image as the results page shows it: a preview, the region searched, its name and size."""

    preview: str  # a data: URL of its thumbnail
    region: dict[str, float] | None  # x, y, width, height in percent of the image; None: all of it
    filename: str
    width: int
    height: int


def _upload() -> FileStorage:
    """Return the uploaded ``image`` file of a page form, or answer 400 saying what is missing."""
    upload = request.files.get("image")
    if upload is None or not upload.filename:
        raise BadRequest("Choose an image file first.")
    return upload


def _search_args() -> dict[str, Any]:
    """Load the search form through the API's schema (top_k, album, region); 400 saying what is wrong."""
    try:
        return SEARCH_ARGS.load(CombinedMultiDict([request.form, request.files]))
    except ma.ValidationError as exc:
        raise BadRequest(" ".join(_described(exc.messages))) from exc


def _described(messages: Any, field: str = "") -> list[str]:
    """Return marshmallow's error messages as sentences naming the form's fields."""
    if isinstance(messages, dict):
        return [line for name, inner in messages.items() for line in _described(inner, name)]
    label = FIELD_LABELS.get(field, field)
    return [f"{label}: {message}" if label else message for message in messages]


@blp.get("/")
@requires(Role.VIEWER)
def index() -> str:
    """Show the search form and the library size."""
    lib = library()
    return render_template(
        "index.html",
        count=lib.count(),
        top_k_choices=TOP_K_CHOICES,
        default_top_k=DEFAULT_TOP_K,
        albums=lib.albums(kept=True),
    )


@blp.post("/search")
@rate_limited
@requires(Role.VIEWER)
def search() -> tuple[str, dict[str, str]]:
    """Search with the uploaded image and show the ranked results."""
    upload = _upload()
    args = _search_args()
    top_k, album, box = args["top_k"], args["album"], args["box"]
    lib = library()
    result = lib.search(upload.read(), top_k, album, box, pixels=True)
    assert result.image is not None  # asked for
    same = same_in_search(lib, result, box, current_app.config["DUPLICATE_THRESHOLD"])
    preview = base64.b64encode(thumbnail(result.image, lib.thumbnail_size)).decode()
    query = ShownQuery(
        preview=f"data:image/jpeg;base64,{preview}",
        region=None if box is None else _percentages(box, result),
        filename=upload.filename or "",
        width=result.query.width,
        height=result.query.height,
    )
    page = render_template(
        "results.html",
        query=query,
        hits=result.hits,
        same=same,
        took_ms=result.took_ms,
        top_k=top_k,
        count=lib.count(),
        top_k_choices=TOP_K_CHOICES,
        default_top_k=top_k,
        albums=lib.albums(kept=True),
        album=album,
        box=box,
    )
    return page, {"Server-Timing": result.server_timing()}


def _percentages(box: Box, result: SearchResult) -> dict[str, float]:
    """Return a region in percent of the query image (to draw it over the preview)."""
    w, h = result.query.width, result.query.height
    return {"x": 100 * box.x / w, "y": 100 * box.y / h, "width": 100 * box.width / w, "height": 100 * box.height / h}


@blp.post("/picture")
@rate_limited
@requires(Role.VIEWER)
def picture() -> Response:
    """Answer a JPEG of the uploaded photo (at most PREVIEW_SIZE a side) and its size in headers.

    The search form asks for it when the browser cannot show the photo chosen (a HEIC outside
    Safari), so a region can still be drawn on it: the box is in the photo's pixels, which
    X-Image-Width and X-Image-Height give. Nothing is stored.
    """
    jpeg, width, height = library().picture(_upload().read())
    headers = {"X-Image-Width": str(width), "X-Image-Height": str(height), "Cache-Control": "no-store"}
    return Response(jpeg, mimetype="image/jpeg", headers=headers)


@blp.get("/favicon.ico")
@public
def favicon() -> Response:
    """Send browsers that ask for /favicon.ico on their own (image and JSON tabs) to the SVG icon."""
    return redirect(url_for("static", filename="favicon.svg"), 301)


@blp.get("/search")
@requires(Role.VIEWER)
def search_form() -> Response:
    """Send a reloaded or bookmarked results URL back to the search form."""
    return redirect(url_for("pages.index"))


@blp.post("/images")
@rate_limited
@requires(Role.EDITOR)
def add_image() -> Response:
    """Add the uploaded image to the library and show its page."""
    upload = _upload()
    record, created = library().add(upload.read(), upload.filename, album=album_arg(request.form), by=audit.actor())
    audit.note(audit.added(record, created))
    if created:
        flash(f"Added {record.filename} to the library.", "success")
    else:
        flash("That image is already in the library.", "info")
    return redirect(url_for("pages.image_page", image_id=record.sha256))
