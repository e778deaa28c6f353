"""Schemas of the stats resource."""

import marshmallow as ma


class StatsSchema(ma.Schema):
    """The library's size and how it is searched."""

    count = ma.fields.Integer(metadata={"description": "Number of indexed images."})
    model = ma.fields.String(metadata={"description": "Embedding model."})
    dimension = ma.fields.Integer(metadata={"description": "Embedding dimension."})
    metric = ma.fields.String(metadata={"description": "Similarity metric."})
    index_type = ma.fields.String(metadata={"description": "Vector index type."})
    store = ma.fields.String(metadata={"description": "milvus-lite (embedded file) or milvus-server."})
    collection = ma.fields.String(metadata={"description": "Milvus collection name."})
