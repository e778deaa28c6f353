"""The duplicates resource: scan the library for near-duplicates, list the groups, keep one of each."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView

from webapp import audit
from webapp.api.common import Blueprint
from webapp.api.duplicates.schemas import (
    DuplicateArgsSchema,
    GroupSchema,
    KeepAllSchema,
    KeptAllSchema,
    KeptApartSchema,
    ResolvedSchema,
    ResolveSchema,
    TakenOutSchema,
    TakeOutSchema,
)
from webapp.api.jobs.schemas import JobSchema
from webapp.auth import requires
from webapp.runtime import runtime
from webapp.services.duplicates import Group
from webapp.services.jobs import Job
from webapp.services.roles import Role

blp = Blueprint(
    "duplicates",
    __name__,
    url_prefix="/duplicates",
    description="Near-duplicate images: a scan groups them; keep one image of a group and delete the rest.",
)


@blp.route("")
class Duplicates(MethodView):
    """The groups the last scan found."""

    @blp.arguments(DuplicateArgsSchema(), location="query")
    @blp.response(200, GroupSchema(many=True))
    @blp.paginate()
    @requires(Role.VIEWER)
    def get(self, args: dict[str, str], pagination_parameters: Any) -> list[Group]:
        """List the near-duplicate groups of the last scan: the largest, then the most alike, first."""
        p = pagination_parameters
        groups, p.item_count = runtime().duplicates.groups((p.page - 1) * p.page_size, p.page_size, args["album"])
        return groups


@blp.route("/scan")
class Scan(MethodView):
    """Scanning the library."""

    @blp.response(202, JobSchema, description="The scan was queued; follow the job. Its groups replace the last ones.")
    @blp.alt_response(409, description="A scan is queued or running already.")
    @requires(Role.EDITOR)
    def post(self) -> tuple[Job, int]:
        """Find the near-duplicate groups of the whole library, in the background."""
        rt = runtime()
        job = rt.duplicates.start(lambda job_id: rt.queue.send("duplicates", job_id), audit.actor())
        audit.note(audit.started(job))
        return job, 202


@blp.route("/<int:group_id>")
class DuplicateGroup(MethodView):
    """One group."""

    @blp.response(200, GroupSchema)
    @blp.alt_response(404, description="No such group (a newer scan or a deletion replaced it).")
    @requires(Role.VIEWER)
    def get(self, group_id: int) -> Group:
        """Return a group with every image in it."""
        return runtime().duplicates.group(group_id)


@blp.route("/<int:group_id>/resolve")
class Resolve(MethodView):
    """Keeping one image of a group."""

    @blp.arguments(ResolveSchema())
    @blp.response(200, ResolvedSchema)
    @blp.alt_response(404, description="No such group.")
    @blp.alt_response(409, description="Another request is resolving the group, or it holds an image not in `delete`.")
    @requires(Role.EDITOR)
    def post(self, args: dict[str, str], group_id: int) -> dict[str, Any]:
        """Keep one image of the group and delete every other (out of the library, into the trash)."""
        deleted = runtime().review.resolve(group_id, args["keep"], args.get("delete"), audit.actor())
        audit.note(audit.resolution(args["keep"], deleted))
        return {"kept": args["keep"], "deleted": [r.sha256 for r in deleted]}


@blp.route("/<int:group_id>/keep-all")
class KeepAll(MethodView):
    """Keeping every image of a group."""

    @blp.arguments(KeepAllSchema())
    @blp.response(200, KeptAllSchema)
    @blp.alt_response(404, description="No such group.")
    @blp.alt_response(409, description="Another request is resolving the group, or it holds an image not in `shown`.")
    @requires(Role.EDITOR)
    def post(self, args: dict[str, list[str]], group_id: int) -> dict[str, Any]:
        """Keep every image of the group: they are not duplicates, and no later scan groups any two of them."""
        kept = runtime().review.keep_all(group_id, args.get("shown"))
        audit.note(audit.kept(kept))
        return {"kept": [r.sha256 for r in kept]}


@blp.route("/kept-apart")
class KeptApart(MethodView):
    """The pairs of images kept apart (``keep-all``, ``take-out``)."""

    @blp.response(200, KeptApartSchema)
    @requires(Role.VIEWER)
    def get(self) -> dict[str, int]:
        """Return how many pairs of images no scan groups together."""
        return {"pairs": runtime().review.kept_apart()}

    @blp.response(200, KeptApartSchema, description="How many pairs were forgotten.")
    @requires(Role.EDITOR)
    def delete(self) -> dict[str, int]:
        """Forget every pair kept apart: the next scan groups them again (the undo of every keep-all)."""
        pairs = runtime().review.group_again()
        audit.note(audit.forgotten(pairs))
        return {"pairs": pairs}


@blp.route("/<int:group_id>/take-out")
class TakeOut(MethodView):
    """Taking one image out of a group."""

    @blp.arguments(TakeOutSchema())
    @blp.response(200, TakenOutSchema)
    @blp.alt_response(404, description="No such group.")
    @blp.alt_response(409, description="Another request is resolving the group, or it holds an image not in `shown`.")
    @requires(Role.EDITOR)
    def post(self, args: dict[str, Any], group_id: int) -> dict[str, Any]:
        """Take one image out of the group: it is not a copy of the others, and no later scan groups it with them."""
        left = runtime().review.take_out(group_id, args["image"], args.get("shown"))
        audit.note(f"took out {args['image']}")
        return {"taken_out": args["image"], "group": left}
