"""URL converters."""

from __future__ import annotations

from typing import Any

from werkzeug.routing import BaseConverter


class Sha256Converter(BaseConverter):
    """An image id in a URL: 64 lowercase hex characters (anything else is a 404)."""

    regex = "[0-9a-f]{64}"

    @staticmethod
    def openapi(converter: BaseConverter) -> dict[str, Any]:
        """Describe the id in the OpenAPI spec."""
        return {"type": "string", "pattern": "^[0-9a-f]{64}$", "description": "SHA-256 of the image bytes"}


class JobIdConverter(BaseConverter):
    """A job id in a URL: 32 lowercase hex characters, as every job is named (anything else is a 404).

    Before, any text reached the database: a NUL in it was a 500 on PostgreSQL.
    """

    regex = "[0-9a-f]{32}"

    @staticmethod
    def openapi(converter: BaseConverter) -> dict[str, Any]:
        """Describe the id in the OpenAPI spec."""
        return {"type": "string", "pattern": "^[0-9a-f]{32}$", "description": "the job's id"}
