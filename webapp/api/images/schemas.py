"""Schemas of the images resource."""

from typing import Any
from urllib.parse import urlencode

import marshmallow as ma
from flask import g, url_for

from webapp.api.common import (
    Album,
    AlbumArgsSchema,
    BoundedList,
    ImageId,
    ImageUpload,
    ImageUrl,
    TopK,
    same_picture_field,
)
from webapp.services.albums import MAX_LENGTH, MAX_MOVED, ORDERS, AlbumEntry

MAX_ALBUMS_LISTED = 1000  # albums one call may ask for with limit (a field's suggestions need a few)


class ImageUploadSchema(ma.Schema):
    """A multipart upload of one image."""

    image = ImageUpload(
        required=True, metadata={"description": "The image file (JPEG, PNG, GIF, WebP, AVIF, HEIC, BMP, TIFF)."}
    )
    album = Album(description="The album to put it in, e.g. animals/birds (none by default).")


class ImageSchema(ma.Schema):
    """An indexed image, dumped from its record."""

    id = ma.fields.String(
        attribute="sha256", metadata={"description": "SHA-256 of the image bytes (64 hex characters)."}
    )
    filename = ma.fields.String(metadata={"description": "Original file name, as uploaded."})
    width = ma.fields.Integer(metadata={"description": "Width in pixels (upright)."})
    height = ma.fields.Integer(metadata={"description": "Height in pixels (upright)."})
    mime = ma.fields.String(metadata={"description": "Content type of the stored original."})
    source = ma.fields.String(metadata={"description": "How the image was added (e.g. upload)."})
    added_at = ma.fields.DateTime(attribute="added", metadata={"description": "When the image was indexed (UTC)."})
    album = ma.fields.String(metadata={"description": "Its album: the folder it was loaded from (empty: none)."})
    url = ImageUrl("file", metadata={"description": "Path of the original file."})
    thumbnail_url = ImageUrl("thumbnail", metadata={"description": "Path of the JPEG thumbnail."})
    page_url = ImageUrl("page", metadata={"description": "Path of the image's HTML page."})

    def get_attribute(self, obj: Any, attr: str, default: Any) -> Any:
        """Read a field of the record (an attribute: no dict keys or dotted paths to try first)."""
        return getattr(obj, attr, default)


RECORD_ATTRIBUTES = frozenset(field.attribute or name for name, field in ImageSchema().fields.items())


class ImageEntrySchema(ImageSchema):
    """An image with facts of its own (a hit's score, a duplicate's similarity).

    It is dumped from an object that holds the image's ``record`` (a Hit, a duplicate group's
    Member): the image's fields are read from the record, the schema's own from the object.
    """

    def get_attribute(self, obj: Any, attr: str, default: Any) -> Any:
        """Read an image field from the object's record, any other from the object."""
        return getattr(obj.record if attr in RECORD_ATTRIBUTES else obj, attr, default)


class AddedImageSchema(ImageEntrySchema):
    """An image after an upload, saying whether those bytes were already indexed."""

    duplicate = ma.fields.Boolean(
        metadata={"description": "True when these bytes were already in the library (nothing added)."}
    )


class ImagesArgsSchema(AlbumArgsSchema):
    """Narrow the list of images to an album, and to the images an account added."""

    added_by = ma.fields.String(
        validate=ma.validate.Length(max=64),
        metadata={"description": "Only the images this account added (an empty string: those that name nobody)."},
    )


class ImageDetailSchema(ImageEntrySchema):
    """An image, with who added it."""

    added_by = ma.fields.String(
        metadata={
            "description": "The account that added it; for a job's images, the account that started the job. "
            "Empty when access control was off, and for images added before 2026-12-04."
        }
    )


class SimilarArgsSchema(ma.Schema):
    """How many similar images to return, and from which album."""

    album = Album(description="Only images in this album (and its sub-albums).")
    top_k = TopK()
    same_picture = same_picture_field("Not a pair a person kept apart on the Duplicates page.")


class AlbumsArgsSchema(ma.Schema):
    """Narrow the album list to names holding some text, and how many to return (a field's suggestions)."""

    contains = ma.fields.String(
        load_default="",
        validate=ma.validate.Length(max=MAX_LENGTH),
        metadata={"description": "Only albums whose name holds this text, in any case (e.g. 2019)."},
    )
    limit = ma.fields.Integer(
        load_default=None,
        validate=ma.validate.Range(min=1, max=MAX_ALBUMS_LISTED, error="Must be between {min} and {max}."),
        metadata={"description": f"Return at most this many, by name (1-{MAX_ALBUMS_LISTED}; all by default)."},
    )
    parent = Album(
        load_default=None,
        description='Only the albums directly below this one ("" for the top level), each with its cover: '
        "a level of the album tree, as the Albums page shows it. 404 if the library has no such album.",
    )
    order = ma.fields.String(
        load_default="name",
        validate=ma.validate.OneOf(ORDERS),
        metadata={
            "description": "With parent: by name (default), the album last added to first (newest), or the one "
            "with the most images first (largest)."
        },
    )


def _images_url(entry: AlbumEntry) -> str:
    """Return the API list of an album's images (the list's path looked up once a request: a library
    may have thousands of albums)."""
    if "images_path" not in g:
        g.images_path = url_for("images.Images")
    return f"{g.images_path}?{urlencode({'album': entry.name})}"


class AlbumSchema(ma.Schema):
    """An album and how many images it holds."""

    name = ma.fields.String(metadata={"description": "The album's path, e.g. animals/birds."})
    count = ma.fields.Integer(metadata={"description": "Images in it and its sub-albums."})
    sub_albums = ma.fields.Integer(metadata={"description": "How many albums sit directly below it."})
    cover = ma.fields.String(
        allow_none=True,
        metadata={
            "description": "With parent only: the id of the image chosen as its cover (PUT /albums/cover), else "
            "of its newest image, sub-albums included (its thumbnail is /api/v1/images/<id>/thumbnail); null if "
            "none is listed yet."
        },
    )
    chosen = ma.fields.Boolean(metadata={"description": "True if a person chose its cover (with parent only)."})
    images_url = ma.fields.Function(_images_url, metadata={"description": "The API list of its images."})


class ImageChangeSchema(ma.Schema):
    """What to change of an image: its album."""

    album = Album(required=True, description='The album to put it in, e.g. trips/2024 ("" for none).')


class ImageIdsSchema(ma.Schema):
    """Images chosen at once: a page's selection, or a script's."""

    ids = BoundedList(
        ImageId(),
        max_items=MAX_MOVED,
        min_items=1,
        required=True,
        metadata={"description": f"The ids of the images (1-{MAX_MOVED})."},
    )


class ImagesMoveSchema(ImageIdsSchema):
    """Images to put in an album."""

    album = Album(required=True, description='The album to put them in, e.g. trips/2024 ("" for none).')


class ImagesMovedSchema(ma.Schema):
    """What moving images did."""

    images = ma.fields.List(
        ma.fields.Nested(ImageSchema), metadata={"description": "The images found, in their album now."}
    )
    missing = ma.fields.List(ma.fields.String(), metadata={"description": "Ids of images not in the library."})


class ImagesDeletedSchema(ma.Schema):
    """What deleting images did."""

    deleted = ma.fields.List(
        ma.fields.Nested(ImageSchema), metadata={"description": "The images deleted (into the trash, if it is on)."}
    )
    missing = ma.fields.List(ma.fields.String(), metadata={"description": "Ids of images not in the library."})


class AlbumMoveSchema(ma.Schema):
    """An album to move or rename, with its sub-albums."""

    album = Album(required=True, description="The album to move, e.g. trips/2024 (its sub-albums go with it).")
    to = Album(
        description='Its new name, e.g. travel/2024 ("" for the top level: its images leave it, its sub-albums '
        "become top-level albums). An existing album of that name is merged with it."
    )


class AlbumCoverSchema(ma.Schema):
    """The image an album shows as its cover."""

    album = Album(required=True, description="The album, e.g. trips/2024.")
    image = ImageId(required=True, metadata={"description": "The id of an image in the album or below it."})


class AlbumNameSchema(ma.Schema):
    """An album, by name."""

    album = Album(required=True, description="The album, e.g. trips/2024.")


class AlbumDeleteSchema(ma.Schema):
    """An album to delete, with its sub-albums."""

    album = Album(required=True, description="The album to delete, e.g. trips/2024 (its sub-albums go with it).")


class ClearArgsSchema(ma.Schema):
    """The confirmation needed to empty the whole library."""

    confirm = ma.fields.Integer(
        required=True,
        metadata={"description": "The current number of images in the library, as a deliberate confirmation."},
    )


class ClearedSchema(ma.Schema):
    """What emptying the library removed."""

    deleted = ma.fields.Integer(metadata={"description": "How many images were removed."})
