"""The search resource: find the indexed images most similar to an uploaded one."""

from __future__ import annotations

from typing import Any

from flask import current_app
from flask.views import MethodView

from webapp.api.common import Blueprint, JudgedHit, judged_hits
from webapp.api.search.schemas import SearchArgsSchema, SearchResponseSchema
from webapp.auth import requires
from webapp.extensions import rate_limited
from webapp.runtime import library
from webapp.services.checks import same_in_search
from webapp.services.records import Hit
from webapp.services.roles import Role

SERVER_TIMING = {
    "Server-Timing": {
        "description": "The server's time in ms: embed (decode and embed the query), search, total; "
        "for instance embed;dur=6.12, search;dur=0.91, total;dur=7.10.",
        "schema": {"type": "string"},
    }
}
blp = Blueprint("search", __name__, url_prefix="/search", description="Search by image.")


@blp.route("")
class Search(MethodView):
    """Similarity search."""

    decorators = [rate_limited]

    @blp.arguments(SearchArgsSchema(), location="multipart")
    @blp.response(200, SearchResponseSchema, headers=SERVER_TIMING)
    @blp.alt_response(413, description="The upload or the image is too large.")
    @blp.alt_response(409, description="An album filter on a library created before albums.")
    @requires(Role.VIEWER)
    def post(self, args: dict[str, Any]) -> tuple[dict[str, Any], int, dict[str, str]]:
        """Return the images most similar to the uploaded one, best first."""
        lib, judged = library(), args["same_picture"]
        result = lib.search(args["image"].read(), args["top_k"], args["album"], args["box"], pixels=judged)
        hits: list[Hit] | list[JudgedHit] = result.hits
        if judged:
            hits = judged_hits(
                result.hits, same_in_search(lib, result, args["box"], current_app.config["DUPLICATE_THRESHOLD"])
            )
        body = {
            "results": hits,
            "top_k": args["top_k"],
            "took_ms": result.took_ms,
            "region": None if args["box"] is None else vars(args["box"]),
        }
        return body, 200, {"Server-Timing": result.server_timing()}
