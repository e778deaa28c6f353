"""What the API blueprints share: a multipart-aware Blueprint, upload fields, record dumping."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import marshmallow as ma
from flask import Request, url_for
from flask_smorest import Blueprint as SmorestBlueprint
from flask_smorest.fields import Upload
from webargs.flaskparser import FlaskParser
from webargs.multidictproxy import MultiDictProxy
from werkzeug.datastructures import CombinedMultiDict, FileStorage

from webapp.services.vectors import Record

parser = FlaskParser()


@parser.location_loader("multipart")
def _load_multipart(request: Request, schema: ma.Schema) -> MultiDictProxy:
    """Read form fields and files together, as one multipart body."""
    return MultiDictProxy(CombinedMultiDict([request.form, request.files]), schema)


class Blueprint(SmorestBlueprint):
    """A flask-smorest Blueprint that also accepts ``location="multipart"`` (fields and files)."""

    ARGUMENTS_PARSER = parser
    DEFAULT_LOCATION_CONTENT_TYPE_MAPPING = {
        **SmorestBlueprint.DEFAULT_LOCATION_CONTENT_TYPE_MAPPING,
        "multipart": "multipart/form-data",
    }


class ImageUpload(Upload):
    """An uploaded image file (a multipart file part, not a text field)."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> FileStorage:
        if not isinstance(value, FileStorage):
            raise ma.ValidationError("Must be a file upload (multipart/form-data file part).")
        return value


def image_json(record: Record) -> dict[str, Any]:
    """Return an image record as the API shows it, with the URLs of its file and thumbnail."""
    return {
        "id": record.sha256,
        "filename": record.filename,
        "width": record.width,
        "height": record.height,
        "mime": record.mime,
        "source": record.source,
        "added_at": datetime.fromtimestamp(record.added_at / 1000, tz=UTC),
        "url": url_for("images.ImageFile", image_id=record.sha256),
        "thumbnail_url": url_for("images.ImageThumbnail", image_id=record.sha256),
        "page_url": url_for("pages.image_page", image_id=record.sha256),
    }
