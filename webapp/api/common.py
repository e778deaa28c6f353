"""What the API blueprints share: a multipart-aware Blueprint, upload fields, URL and time fields."""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import marshmallow as ma
from flask import Request, url_for
from flask_smorest import Blueprint as SmorestBlueprint
from flask_smorest.fields import Upload
from webargs.flaskparser import FlaskParser
from webargs.multidictproxy import MultiDictProxy
from werkzeug.datastructures import CombinedMultiDict, FileStorage

from webapp.errors import WebappError
from webapp.services.albums import parse_album
from webapp.services.library import DEFAULT_TOP_K, MAX_TOP_K
from webapp.services.records import Hit, Record
from webapp.urls import image_url


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
        if not kwargs.get("required"):
            kwargs.setdefault("load_default", "")
        super().__init__(metadata={"description": description}, **kwargs)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        try:
            return parse_album(super()._deserialize(value, attr, data, **kwargs))
        except WebappError as exc:
            raise ma.ValidationError(exc.message) from exc


class TopK(ma.fields.Integer):
    """How many results to return: 1 to the library's limit, 10 unless given (``load_default`` to change)."""

    def __init__(self, description: str = f"How many results to return (1-{MAX_TOP_K}).", **kwargs: Any) -> None:
        kwargs.setdefault("load_default", DEFAULT_TOP_K)
        limit = ma.validate.Range(min=1, max=MAX_TOP_K, error="Must be between {min} and {max}.")
        super().__init__(validate=limit, metadata={"description": description}, **kwargs)


class AlbumArgsSchema(ma.Schema):
    """Narrow a list to an album."""

    album = Album()


class ImageUpload(Upload):
    """An uploaded image file (a multipart file part, not a text field)."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> FileStorage:
        if not isinstance(value, FileStorage):
            raise ma.ValidationError("Must be a file upload (multipart/form-data file part).")
        return value


class ImageUploads(ma.fields.List):
    """Image files (the multipart field repeated), refused as a whole if any value is not a file.

    A list is otherwise checked item by item, with an error for each: a 6 MB JSON list of three
    million numbers took a worker 15 s and 1.5 GB, and answered 206 MB of errors.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(ImageUpload(), **kwargs)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> list[Any]:
        if not isinstance(value, list) or not all(isinstance(item, FileStorage) for item in value):
            raise ma.ValidationError("Must be file uploads (multipart/form-data file parts).")
        return list(super()._deserialize(value, attr, data, **kwargs))


ImageIdError = "Must be an image id (64 hex characters)."


class ImageId(ma.fields.String):
    """An image's id in a body: 64 lowercase hex characters."""

    def __init__(self, **kwargs: Any) -> None:
        # The length too: "$" also matches before a final newline, which the pattern alone let through.
        shape = [
            ma.validate.Regexp(r"^[0-9a-f]{64}$", error=ImageIdError),
            ma.validate.Length(equal=64, error=ImageIdError),
        ]
        super().__init__(validate=shape, **kwargs)


class BoundedList(ma.fields.List):
    """A list refused as a whole past ``max_items``, before any item is checked (see ImageUploads)."""

    def __init__(self, inner: ma.fields.Field, max_items: int, min_items: int | None = None, **kwargs: Any) -> None:
        super().__init__(inner, validate=ma.validate.Length(min=min_items, max=max_items), **kwargs)
        self.max_items = max_items

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> list[Any]:
        if isinstance(value, list | tuple) and len(value) > self.max_items:
            raise ma.ValidationError(f"Longer than maximum length {self.max_items}.")
        return list(super()._deserialize(value, attr, data, **kwargs))


class Timestamp(ma.fields.DateTime):
    """A Unix time (seconds), shown as an ISO 8601 date and time in UTC."""

    def _serialize(self, value: Any, attr: str | None, obj: Any, **kwargs: Any) -> str | float | None:
        moment = None if value is None else datetime.fromtimestamp(value, tz=UTC)
        return super()._serialize(moment, attr, obj, **kwargs)


class Moment(ma.fields.DateTime):
    """An ISO 8601 date, or date and time (in UTC unless it says otherwise), loaded as Unix seconds.

    With ``through_day``, a date alone means the end of that day (``until=2026-12-04`` takes in the
    whole 4th), so a range of dates includes both ends.
    """

    def __init__(self, through_day: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.through_day = through_day

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> float:  # type: ignore[override]
        moment = super()._deserialize(value, attr, data, **kwargs)
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        try:
            if self.through_day and re.fullmatch(r"\d{4}-\d{2}-\d{2}", str(value).strip()):
                moment += timedelta(days=1)
            return moment.timestamp()
        except (OverflowError, ValueError) as exc:
            raise ma.ValidationError("Not a date this log could hold.") from exc


class ImageUrl(ma.fields.String):
    """The URL of the dumped image's ``file``, ``thumbnail`` or ``page``."""

    def __init__(self, kind: str, **kwargs: Any) -> None:
        super().__init__(attribute="sha256", dump_only=True, **kwargs)
        self.kind = kind

    def _serialize(self, value: Any, attr: str | None, obj: Any, **kwargs: Any) -> str:
        return image_url(self.kind, value)


class UrlFor(ma.fields.String):
    """The URL of ``endpoint`` for the dumped object: its ``argument`` is the object's ``attribute``."""

    def __init__(self, endpoint: str, argument: str, attribute: str = "id", **kwargs: Any) -> None:
        super().__init__(attribute=attribute, dump_only=True, **kwargs)
        self.endpoint, self.argument = endpoint, argument

    def _serialize(self, value: Any, attr: str | None, obj: Any, **kwargs: Any) -> str:
        return url_for(self.endpoint, **{self.argument: value})


@dataclass(frozen=True)
class JudgedHit:
    """A result told the same picture as the query or not (``same_picture`` asked)."""

    record: Record
    score: float
    same_picture: bool


def judged_hits(hits: Sequence[Hit], same: Collection[str]) -> list[JudgedHit]:
    """Return results told the same picture (their ids in ``same``) or not."""
    return [JudgedHit(hit.record, hit.score, hit.record.sha256 in same) for hit in hits]


def same_picture_field(more: str) -> ma.fields.Boolean:
    """Return the argument asking to tell of each result whether it is the same picture (``more``:
    the rest of its description)."""
    return ma.fields.Boolean(
        load_default=False,
        metadata={
            "description": "Also tell of each result whether it is the same picture as the query: a copy resized, "
            f"saved again, cropped a little or turned, by the rule a near-duplicate scan groups by. {more}"
        },
    )
