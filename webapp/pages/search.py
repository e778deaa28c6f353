"""Search pages: the search form, the ranked results, and adding one image from the home page."""

from __future__ import annotations

import base64
from types import SimpleNamespace

from flask import flash, redirect, render_template, request, url_for
from werkzeug.datastructures import FileStorage
from werkzeug.exceptions import BadRequest
from werkzeug.wrappers import Response

from webapp.api.search.schemas import REGION
from webapp.auth import public, requires
from webapp.extensions import rate_limited
from webapp.pages.blueprint import album_arg, blp
from webapp.runtime import library
from webapp.services.imaging import Box, thumbnail
from webapp.services.library import DEFAULT_TOP_K, MAX_TOP_K
from webapp.services.records import SearchResult
from webapp.services.roles import Role

TOP_K_CHOICES = [5, 10, 20, 50, MAX_TOP_K]


def _upload() -> FileStorage:
    """Return the uploaded ``image`` file of a page form, or answer 400 saying what is missing."""
    upload = request.files.get("image")
    if upload is None or not upload.filename:
        raise BadRequest("Choose an image file first.")
    return upload


def _box() -> Box | None:
    """Return the region the form asks to search (x, y, width, height: all four or none)."""
    values = {name: request.form.get(name, "").strip() for name in REGION}
    if not any(values.values()):
        return None
    if not all(v.isdigit() for v in values.values()):
        raise BadRequest("The region needs x, y, width and height, each a whole number of pixels.")
    return Box(*(int(values[name]) for name in REGION))


def _top_k() -> int:
    value = request.form.get("top_k", str(DEFAULT_TOP_K))
    if not value.isdigit() or not 1 <= int(value) <= MAX_TOP_K:
        raise BadRequest(f"The number of results must be between 1 and {MAX_TOP_K}.")
    return int(value)


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
        albums=lib.albums(),
    )


@blp.post("/search")
@rate_limited
@requires(Role.VIEWER)
def search() -> tuple[str, dict[str, str]]:
    """Search with the uploaded image and show the ranked results."""
    upload = _upload()
    top_k, album, box = _top_k(), album_arg(request.form), _box()
    lib = library()
    result = lib.search(upload.read(), top_k, album, box, pixels=True)
    assert result.image is not None  # asked for
    preview = base64.b64encode(thumbnail(result.image, lib.thumbnail_size)).decode()
    query = SimpleNamespace(
        preview=f"data:image/jpeg;base64,{preview}",
        region=None if box is None else SimpleNamespace(**{k: v * 100 for k, v in _fractions(box, result).items()}),
        filename=upload.filename,
        width=result.query.width,
        height=result.query.height,
    )
    page = render_template(
        "results.html",
        query=query,
        hits=result.hits,
        took_ms=result.took_ms,
        top_k=top_k,
        count=lib.count(),
        top_k_choices=TOP_K_CHOICES,
        default_top_k=top_k,
        albums=lib.albums(),
        album=album,
        box=box,
    )
    return page, {"Server-Timing": result.server_timing()}


def _fractions(box: Box, result: SearchResult) -> dict[str, float]:
    """Return a region as fractions of the query image (to draw it over the preview)."""
    w, h = result.query.width, result.query.height
    return {"x": box.x / w, "y": box.y / h, "width": box.width / w, "height": box.height / h}


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
    record, created = library().add(upload.read(), upload.filename, album=album_arg(request.form))
    if created:
        flash(f"Added {record.filename} to the library.", "success")
    else:
        flash("That image is already in the library.", "info")
    return redirect(url_for("pages.image_page", image_id=record.sha256))
