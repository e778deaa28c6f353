"""Schemas of the library resource."""

import marshmallow as ma

from webapp.models import MODELS


class ReindexSchema(ma.Schema):
    """Which model to re-embed the library with."""

    model = ma.fields.String(
        required=True,
        validate=ma.validate.OneOf(sorted(MODELS)),
        metadata={"description": "A model built in MODEL_DIR on every machine of the library."},
    )
