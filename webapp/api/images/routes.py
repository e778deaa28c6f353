"""The images resource: add one image, read its record, file and thumbnail."""

from __future__ import annotations

from typing import Any

from flask import Response, send_file
from flask.views import MethodView
from werkzeug.datastructures import FileStorage

from webapp.api.common import Blueprint, image_json
from webapp.api.images.schemas import AddedImageSchema, ImageSchema, ImageUploadSchema
from webapp.errors import NotFound
from webapp.runtime import library
from webapp.services.images import mime_of

blp = Blueprint("images", __name__, url_prefix="/images", description="Add and read indexed images.")


@blp.route("")
class Images(MethodView):
    """The collection of indexed images."""

    @blp.arguments(ImageUploadSchema, location="multipart")
    @blp.response(201, AddedImageSchema, description="The image was added.")
    @blp.alt_response(200, schema=AddedImageSchema, description="Those bytes were already indexed.")
    @blp.alt_response(413, description="The upload or the image is too large.")
    def post(self, args: dict[str, FileStorage]) -> tuple[dict[str, Any], int]:
        """Add one image to the library (idempotent: the same bytes are never indexed twice)."""
        upload = args["image"]
        record, created = library().add(upload.read(), upload.filename)
        return {**image_json(record), "duplicate": not created}, 201 if created else 200


@blp.route("/<sha256:image_id>")
class Image(MethodView):
    """One indexed image."""

    @blp.response(200, ImageSchema)
    @blp.alt_response(404, description="No image with that id.")
    def get(self, image_id: str) -> dict[str, Any]:
        """Return an image's record."""
        return image_json(library().get(image_id))


@blp.route("/<sha256:image_id>/file")
class ImageFile(MethodView):
    """The original file of an image."""

    @blp.response(200, description="The original bytes, with their content type.")
    @blp.alt_response(404, description="No image with that id.")
    def get(self, image_id: str) -> Response:
        """Return the original file, exactly as uploaded."""
        path = library().images.original(image_id)
        if path is None:
            raise NotFound(f"no image with id {image_id} in the library")
        return send_file(path, mimetype=mime_of(path), max_age=31536000)


@blp.route("/<sha256:image_id>/thumbnail")
class ImageThumbnail(MethodView):
    """The thumbnail of an image."""

    @blp.response(200, description="A JPEG thumbnail.")
    @blp.alt_response(404, description="No image with that id.")
    def get(self, image_id: str) -> Response:
        """Return the JPEG thumbnail."""
        path = library().images.thumbnail(image_id)
        if path is None:
            raise NotFound(f"no image with id {image_id} in the library")
        return send_file(path, mimetype="image/jpeg", max_age=31536000)
