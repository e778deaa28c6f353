"""Schemas of the search resource."""

from typing import Any

import marshmallow as ma

from webapp.api.common import Album, ImageUpload, TopK, same_picture_field
from webapp.api.images.schemas import ImageEntrySchema
from webapp.services.imaging import Box

REGION = ("x", "y", "width", "height")


class SearchArgsSchema(ma.Schema):
    """A multipart search request: the query image, how many results, and optionally an album and a region.

    The region (x, y, width, height, all four or none) searches with that part of the query image
    only; it must lie inside the image (422 otherwise).
    """

    image = ImageUpload(required=True, metadata={"description": "The query image."})
    top_k = TopK()
    album = Album(description="Search only this album (and its sub-albums).")
    x = ma.fields.Integer(
        validate=ma.validate.Range(min=0), metadata={"description": "Region: left edge in pixels of the upright image."}
    )
    y = ma.fields.Integer(validate=ma.validate.Range(min=0), metadata={"description": "Region: top edge in pixels."})
    width = ma.fields.Integer(
        validate=ma.validate.Range(min=Box.MIN_SIDE), metadata={"description": "Region: width in pixels."}
    )
    height = ma.fields.Integer(
        validate=ma.validate.Range(min=Box.MIN_SIDE), metadata={"description": "Region: height in pixels."}
    )
    same_picture = same_picture_field(
        "With a region, the region is judged. About 2 ms more, and the query is decoded in the request's process."
    )

    @ma.pre_load
    def _blank_region(self, data: Any, **kwargs: Any) -> Any:
        """Take empty region fields (a form, Swagger UI) as not given."""
        blank = {name for name in REGION if data.get(name) == ""}
        return {key: data.get(key) for key in data if key not in blank} if blank else data

    @ma.validates_schema
    def _whole_region(self, data: dict[str, Any], **kwargs: Any) -> None:
        given = [name for name in REGION if name in data]
        if given and len(given) != len(REGION):
            missing = ", ".join(name for name in REGION if name not in data)
            raise ma.ValidationError(f"give x, y, width and height together (missing: {missing})", "region")

    @ma.post_load
    def _box(self, data: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        data["box"] = Box(*(data.pop(name) for name in REGION)) if "x" in data else None
        return data


class SearchHitSchema(ImageEntrySchema):
    """One result: an indexed image and its similarity to the query."""

    score = ma.fields.Float(metadata={"description": "Cosine similarity to the query (1 = identical)."})
    same_picture = ma.fields.Boolean(
        metadata={"description": "Whether it is the same picture as the query; only when `same_picture` was asked."}
    )


class SearchResponseSchema(ma.Schema):
    """Ranked results, best first."""

    results = ma.fields.List(ma.fields.Nested(SearchHitSchema), metadata={"description": "Best first."})
    top_k = ma.fields.Integer(metadata={"description": "How many results were asked for."})
    took_ms = ma.fields.Float(metadata={"description": "Server time to decode, embed and search, in ms."})
    region = ma.fields.Dict(
        allow_none=True,
        metadata={"description": "The region searched (x, y, width, height), or null: the whole image."},
    )
