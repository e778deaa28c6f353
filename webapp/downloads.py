"""Downloads made as they are sent: a zip of originals (services/exports.py), for the API and the pages."""

from __future__ import annotations

import re
from urllib.parse import quote

from flask import Response

from webapp.errors import NotFound
from webapp.services.exports import ZipExport


def export_names(album: str, added_by: str | None) -> tuple[str, str]:
    """Return the file name of an album's zip (``""``: the library's), of the images ``added_by``
    added if given, and what to say if it would hold nothing."""
    name, what = (album.replace("/", "-"), f"the album {album}") if album else ("library", "the library")
    if added_by is None:
        return f"{name}.zip", f"{what} has no images"
    if not added_by:
        return f"{name}-added-by-nobody.zip", f"{what} has no images that name who added them"
    return f"{name}-added-by-{added_by}.zip", f"{what} has no images that {added_by} added"


def zip_response(export: ZipExport, name: str, empty: str) -> Response:
    """Send a zip as a download named ``name``; NotFound with ``empty`` if it would hold nothing."""
    if export.empty:
        export.close()
        raise NotFound(empty)
    fallback = re.sub(r"[^A-Za-z0-9._ -]", "_", name)
    disposition = f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(name)}"
    return Response(export, mimetype="application/zip", headers={"Content-Disposition": disposition})
