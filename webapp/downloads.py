"""Downloads made as they are sent: a zip of originals (services/exports.py), for the API and the pages."""

from __future__ import annotations

import re
from urllib.parse import quote

from flask import Response

from webapp.errors import NotFound
from webapp.services.exports import ZipExport


def zip_response(export: ZipExport, name: str, empty: str) -> Response:
    """Send a zip as a download named ``name``; NotFound with ``empty`` if it would hold nothing."""
    if export.empty:
        export.close()
        raise NotFound(empty)
    fallback = re.sub(r"[^A-Za-z0-9._ -]", "_", name)
    disposition = f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(name)}"
    return Response(export, mimetype="application/zip", headers={"Content-Disposition": disposition})
