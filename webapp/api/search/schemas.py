"""Schemas of the search resource."""

import marshmallow as ma

from webapp.api.common import Album, ImageUpload
from webapp.api.images.schemas import ImageSchema
from webapp.services.library import DEFAULT_TOP_K, MAX_TOP_K


class SearchArgsSchema(ma.Schema):
    """A multipart search request: the query image and how many results to return."""

    image = ImageUpload(required=True, metadata={"description": "The query image."})
    top_k = ma.fields.Integer(
        load_default=DEFAULT_TOP_K,
        validate=ma.validate.Range(min=1, max=MAX_TOP_K),
        metadata={"description": f"How many results to return (1-{MAX_TOP_K})."},
    )
    album = Album(description="Search only this album (and its sub-albums).")


class SearchHitSchema(ImageSchema):
    """One result: an indexed image and its similarity to the query."""

    score = ma.fields.Float(metadata={"description": "Cosine similarity to the query (1 = identical)."})


class SearchResponseSchema(ma.Schema):
    """Ranked results, best first."""

    results = ma.fields.List(ma.fields.Nested(SearchHitSchema), metadata={"description": "Best first."})
    top_k = ma.fields.Integer(metadata={"description": "How many results were asked for."})
    took_ms = ma.fields.Float(metadata={"description": "Server time to decode, embed and search, in ms."})
