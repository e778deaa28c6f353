"""Schemas of the health resource."""

import marshmallow as ma


class LivenessSchema(ma.Schema):
    """The process answers."""

    status = ma.fields.String(metadata={"description": "Always ok when the process can answer."})


class CheckSchema(ma.Schema):
    """One dependency's state."""

    ok = ma.fields.Boolean(metadata={"description": "Whether it works now."})
    message = ma.fields.String(metadata={"description": "What was checked, or why it failed."})
    took_ms = ma.fields.Float(metadata={"description": "How long the check took."})


class ReadinessSchema(ma.Schema):
    """Whether the app can serve searches and uploads, dependency by dependency."""

    status = ma.fields.String(metadata={"description": "ready, or unavailable."})
    model = ma.fields.Nested(CheckSchema, metadata={"description": "The embedding model (ONNX file)."})
    store = ma.fields.Nested(CheckSchema, metadata={"description": "The Milvus vector store."})
    database = ma.fields.Nested(CheckSchema, metadata={"description": "The database of jobs and catalogue."})
    storage = ma.fields.Nested(
        CheckSchema,
        metadata={
            "description": "The image storage (STORAGE_DIR): it holds the newest images' originals and can be written."
        },
    )
    broker = ma.fields.Nested(CheckSchema, metadata={"description": "The task queue's broker (scale-out only)."})
