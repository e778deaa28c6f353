"""Schemas of the Milvus bootcamp compatible endpoints: the bootcamp's field names, validated."""

import os

import marshmallow as ma

from webapp.api.common import ImageUpload, TopK
from webapp.services.library import MAX_TOP_K

BOOTCAMP_TABLE = "milvus_img_search"  # the bootcamp's DEFAULT_TABLE


def path_text(value: str) -> None:
    """Refuse text that no file system path can hold (NUL, unpaired surrogates)."""
    try:
        encoded = os.fsencode(value)
    except UnicodeEncodeError as exc:
        raise ma.ValidationError("Must be a file system path (it has characters no path can hold).") from exc
    if b"\0" in encoded:
        raise ma.ValidationError("Must be a file system path (it has a NUL character).")


# The bootcamp answers with bare JSON values, not objects: these document them in the spec.
TEXT = {"type": "string"}
COUNT = {"type": "integer", "minimum": 0}
PROGRESS = {"type": "string", "pattern": r"^current: \d+, total: -?\d+$", "example": "current: 20, total: 20"}
PAIRS = {
    "type": "array",
    "items": {
        "type": "array",
        "minItems": 2,
        "maxItems": 2,
        "items": {"anyOf": [{"type": "string"}, {"type": "number"}]},
        "description": "[image id, distance]: give the id to GET /data?image_path=<id>.",
    },
    "example": [["596aa1e7cb875eb79f437e310381d26b338a81c2da23439704a73c4651e8c4bb", 0.0093]],
}


class TableArgsSchema(ma.Schema):
    """The bootcamp's table name: this app keeps one library, reachable under its own names only."""

    table_name = ma.fields.String(
        validate=ma.validate.Length(max=255),
        metadata={
            "description": f"Optional. The configured collection name, or {BOOTCAMP_TABLE} (the bootcamp's "
            "default): both mean this app's one library. Any other name is 404."
        },
    )


class BootcampLoadSchema(ma.Schema):
    """A folder on the server to load, as the bootcamp client sends it."""

    file = ma.fields.String(
        required=True,
        data_key="File",
        validate=[ma.validate.Length(min=1, max=4096), path_text],
        metadata={"description": "Absolute path of a folder on the server, under an allowed import root."},
    )
    table = ma.fields.String(
        data_key="Table",
        allow_none=True,
        validate=ma.validate.Length(max=255),
        metadata={"description": "Optional table name; same rule as table_name."},
    )


class UploadArgsSchema(TableArgsSchema):
    """Query arguments of an upload."""

    url = ma.fields.String(
        metadata={"description": "Not supported: this app never fetches URLs (any value is 422). Upload the file."}
    )

    @ma.validates("url")
    def _no_fetching(self, value: str, **kwargs: object) -> None:
        raise ma.ValidationError("Fetching images from a URL is not supported; upload the file as multipart image.")


class BootcampUploadSchema(ma.Schema):
    """A multipart upload of one image."""

    image = ImageUpload(required=True, metadata={"description": "The image file."})


def _topk() -> TopK:
    # No default here: the route takes topk from the form or the query, 10 when neither has it.
    return TopK(f"How many results to return (1-{MAX_TOP_K}, default 10).", load_default=ma.missing)


class SearchArgsSchema(TableArgsSchema):
    """Query arguments of a search (topk may come here or in the form)."""

    topk = _topk()


class BootcampSearchSchema(ma.Schema):
    """A multipart search: the query image and, as the bootcamp client sends it, topk."""

    image = ImageUpload(required=True, metadata={"description": "The query image."})
    topk = _topk()


class DropArgsSchema(TableArgsSchema):
    """An optional confirmation: the bootcamp client sends none, a script may guard itself with one."""

    confirm = ma.fields.Integer(
        metadata={"description": "If given, the current number of images (POST /img/count); else 409."},
    )


class DataArgsSchema(ma.Schema):
    """Which image file to return."""

    image_path = ma.fields.String(
        required=True,
        validate=ma.validate.Length(max=4096),
        metadata={"description": "An image id as /img/search returns it. Never a file path: anything else is 404."},
    )
