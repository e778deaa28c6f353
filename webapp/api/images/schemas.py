"""Schemas of the images resource."""

import marshmallow as ma

from webapp.api.common import ImageUpload


class ImageUploadSchema(ma.Schema):
    """A multipart upload of one image."""

    image = ImageUpload(required=True, metadata={"description": "The image file (JPEG, PNG, GIF, WebP, BMP, TIFF)."})


class ImageSchema(ma.Schema):
    """An indexed image."""

    id = ma.fields.String(metadata={"description": "SHA-256 of the image bytes (64 hex characters)."})
    filename = ma.fields.String(metadata={"description": "Original file name, as uploaded."})
    width = ma.fields.Integer(metadata={"description": "Width in pixels (upright)."})
    height = ma.fields.Integer(metadata={"description": "Height in pixels (upright)."})
    mime = ma.fields.String(metadata={"description": "Content type of the stored original."})
    source = ma.fields.String(metadata={"description": "How the image was added (e.g. upload)."})
    added_at = ma.fields.DateTime(metadata={"description": "When the image was indexed (UTC)."})
    url = ma.fields.String(metadata={"description": "Path of the original file."})
    thumbnail_url = ma.fields.String(metadata={"description": "Path of the JPEG thumbnail."})
    page_url = ma.fields.String(metadata={"description": "Path of the image's HTML page."})


class AddedImageSchema(ImageSchema):
    """An image after an upload, saying whether those bytes were already indexed."""

    duplicate = ma.fields.Boolean(
        metadata={"description": "True when these bytes were already in the library (nothing added)."}
    )
