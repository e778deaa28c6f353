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
