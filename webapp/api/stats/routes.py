"""The stats resource."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from flask import current_app
from flask.views import MethodView

from webapp.api.common import Blueprint
from webapp.api.stats.schemas import StatsSchema
from webapp.auth import requires
from webapp.runtime import library
from webapp.services.roles import Role

blp = Blueprint("stats", __name__, url_prefix="/stats", description="Library statistics.")


@blp.route("")
class Stats(MethodView):
    """Library statistics."""

    @blp.response(200, StatsSchema)
    @requires(Role.VIEWER)
    def get(self) -> dict[str, Any]:
        """Return the image count and how images are embedded and indexed."""
        return {**asdict(library().describe()), "collection": current_app.config["COLLECTION"]}
