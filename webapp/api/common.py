"""What the API blueprints share: a multipart-aware Blueprint, upload fields, record dumping."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import marshmallow as ma
from flask import Request, g, url_for
from flask_smorest import Blueprint as SmorestBlueprint
from flask_smorest.fields import Upload
from webargs.flaskparser import FlaskParser
from webargs.multidictproxy import MultiDictProxy
from werkzeug.datastructures import CombinedMultiDict, FileStorage

from webapp.errors import WebappError
from webapp.services.albums import parse_album
from webapp.services.jobs import Job
from webapp.services.records import Record


class Parser(FlaskParser):
    """webargs' Flask parser, answering JSON nested past Python's recursion limit as invalid (400)."""

    def _raw_load_json(self, req: Request) -> Any:
        try:
            return super()._raw_load_json(req)
        except RecursionError:
            return self._handle_invalid_json_error(json.JSONDecodeError("nested too deeply", "", 0), req)


parser = Parser()


@parser.location_loader("multipart")
def _load_multipart(request: Request, schema: ma.Schema) -> MultiDictProxy:
    """Read form fields and files together, as one multipart body."""
    return MultiDictProxy(CombinedMultiDict([request.form, request.files]), schema)


@parser.location_loader("json_or_multipart")
def _load_json_or_multipart(request: Request, schema: ma.Schema) -> Any:
    """Read a JSON body when the request is JSON, else the multipart fields and files."""
    return parser.load_json(request, schema) if request.is_json else _load_multipart(request, schema)


class Blueprint(SmorestBlueprint):
    """A flask-smorest Blueprint that also reads multipart bodies (fields and files together)."""

    ARGUMENTS_PARSER = parser
    DEFAULT_LOCATION_CONTENT_TYPE_MAPPING = {
        **SmorestBlueprint.DEFAULT_LOCATION_CONTENT_TYPE_MAPPING,
        "multipart": "multipart/form-data",
        "json_or_multipart": "multipart/form-data",  # the JSON form is added to the doc by hand
    }


class Album(ma.fields.String):
    """An album name (``animals/birds``): narrows to it and its sub-albums; empty means the whole library."""

    def __init__(self, **kwargs: Any) -> None:
        description = kwargs.pop("description", "An album, e.g. animals/birds (its sub-albums included).")
        super().__init__(load_default="", metadata={"description": description}, **kwargs)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        try:
            return parse_album(super()._deserialize(value, attr, data, **kwargs))
        except WebappError as exc:
            raise ma.ValidationError(exc.message) from exc


class AlbumArgsSchema(ma.Schema):
    """Narrow a list to an album."""

    album = Album()


class ImageUpload(Upload):
    """An uploaded image file (a multipart file part, not a text field)."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> FileStorage:
        if not isinstance(value, FileStorage):
            raise ma.ValidationError("Must be a file upload (multipart/form-data file part).")
        return value


def job_json(job: Job) -> dict[str, Any]:
    """Return a job as the API shows it."""

    def when(ts: float | None) -> datetime | None:
        return None if ts is None else datetime.fromtimestamp(ts, tz=UTC)

    return {
        **{k: getattr(job, k) for k in ("id", "kind", "source", "status", "total", "processed", "added")},
        **{k: getattr(job, k) for k in ("duplicates", "failed", "rate", "eta_seconds", "error", "album")},
        "created_at": when(job.created_at),
        "started_at": when(job.started_at),
        "finished_at": when(job.finished_at),
        "url": url_for("jobs.JobById", job_id=job.id),
        "page_url": url_for("pages.job_page", job_id=job.id),
    }


IMAGE_URLS = {"url": "images.ImageFile", "thumbnail_url": "images.ImageThumbnail", "page_url": "pages.image_page"}
ID_SLOT = "0" * 64  # a valid image id, replaced by the real one in each URL


def _image_urls(sha256: str) -> dict[str, str]:
    """Return an image's URLs: url_for once per request, then string replacement (a results page has many)."""
    templates: dict[str, str] | None = g.get("image_url_templates")
    if templates is None:
        templates = g.image_url_templates = {k: url_for(v, image_id=ID_SLOT) for k, v in IMAGE_URLS.items()}
    return {key: template.replace(ID_SLOT, sha256) for key, template in templates.items()}


def record_json(record: Record) -> dict[str, Any]:
    """Return an image record's fields as the API shows them, without its URLs."""
    return {
        "id": record.sha256,
        "filename": record.filename,
        "width": record.width,
        "height": record.height,
        "mime": record.mime,
        "source": record.source,
        "added_at": datetime.fromtimestamp(record.added_at / 1000, tz=UTC),
        "album": record.album,
    }


def image_json(record: Record) -> dict[str, Any]:
    """Return an image record as the API shows it, with the URLs of its file and thumbnail."""
    return {**record_json(record), **_image_urls(record.sha256)}
