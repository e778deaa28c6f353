"""The library resource: re-embedding it with another model while it keeps answering."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView

from webapp import audit
from webapp.api.common import Blueprint
from webapp.api.jobs.schemas import JobSchema
from webapp.api.library.schemas import ReindexSchema
from webapp.auth import requires
from webapp.runtime import runtime
from webapp.services.jobs import Job
from webapp.services.roles import Role

blp = Blueprint("library", __name__, url_prefix="/library", description="The library as a whole.")


@blp.route("/reindex")
class Reindex(MethodView):
    """Re-embedding the library."""

    @blp.arguments(ReindexSchema())
    @blp.response(202, JobSchema, description="Started; follow the job. Searches keep answering meanwhile.")
    @blp.alt_response(409, description="The library uses that model already, or a reindex is running.")
    @requires(Role.ADMIN)
    def post(self, args: dict[str, Any]) -> tuple[Job, int]:
        """Re-embed every image with another model into a new collection, then switch the library over."""
        job = runtime().reindex(args["model"], background=True, by=audit.actor())
        audit.note(audit.started(job))
        return job, 202
