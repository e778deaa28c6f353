"""URLs of an image's file, thumbnail, preview and page, for the API's schemas and the pages' templates alike."""

from __future__ import annotations

from flask import g, url_for

IMAGE_ENDPOINTS = {
    "file": "images.ImageFile",
    "thumbnail": "images.ImageThumbnail",
    "preview": "images.ImagePreview",
    "page": "pages.image_page",
}
ID_SLOT = "0" * 64  # a valid image id, replaced by the real one in each URL


def image_url(kind: str, sha256: str) -> str:
    """Return the URL of an image's ``file``, ``thumbnail``, ``preview`` or ``page``.

    url_for runs once per kind and request, then the id is put in by string replacement: a page of
    results has hundreds of these URLs.
    """
    templates: dict[str, str] | None = g.get("image_url_templates")
    if templates is None:
        templates = g.image_url_templates = {k: url_for(v, image_id=ID_SLOT) for k, v in IMAGE_ENDPOINTS.items()}
    return templates[kind].replace(ID_SLOT, sha256)
