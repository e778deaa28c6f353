"""The jobs resource: bulk ingestion in the background, with progress, cancel and resume."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any, TypeVar

from flask import current_app, request
from flask.views import MethodView

from webapp import audit
from webapp.api.common import Blueprint
from webapp.api.jobs.schemas import (
    AddNewSchema,
    CheckedFileSchema,
    DuplicateFileSchema,
    FailureSchema,
    ItemsArgsSchema,
    JobCreateSchema,
    JobDetailSchema,
    JobSchema,
    MatchesArgsSchema,
)
from webapp.auth import requires
from webapp.extensions import rate_limited
from webapp.runtime import runtime
from webapp.services.job_items import CHECKED
from webapp.services.job_states import CHECKS, CheckedFile
from webapp.services.jobs import DuplicateFile, Failure, Job
from webapp.services.roles import Role

FOLDER_JSON = {
    "type": "object",
    "required": ["folder"],
    "properties": {"folder": {"type": "string", "description": "Absolute folder path under an import root."}},
}

T = TypeVar("T")
blp = Blueprint("jobs", __name__, url_prefix="/jobs", description="Bulk ingestion jobs.")


@blp.before_request
def _allow_large_uploads() -> None:
    """Let a job's upload be larger than a single image may be."""
    if request.method == "POST":
        request.max_content_length = current_app.config["MAX_JOB_UPLOAD_BYTES"]


@dataclass(frozen=True)
class JobDetail:
    """A job, the files it could not index (the first 1000), the job started last to undo it, and
    what a check found so far."""

    job: Job
    failures: list[Failure]
    undone_by: str | None = None
    compared: dict[str, int] | None = None
    new_kept_until: float | None = None


def detail(job: Job) -> JobDetail:
    """Return a job with its failures, its undo's id and a check's findings (and how long it keeps
    the files it found new)."""
    rt = runtime()
    undo = rt.deletions.undone_by(job)
    compared = rt.ingestion.compared(job.id) if job.kind in CHECKS else None
    undone_by = undo.id if undo is not None else None
    return JobDetail(job, rt.ingestion.failures(job.id), undone_by, compared, rt.ingestion.kept_until(job))


@blp.route("")
class Jobs(MethodView):
    """All jobs."""

    decorators = [rate_limited]

    @blp.arguments(JobCreateSchema(), location="json_or_multipart")
    @blp.doc(
        requestBody={
            "content": {
                "application/json": {"schema": {"type": "object", "properties": {"folder": {"type": "string"}}}}
            }
        }
    )
    @blp.response(202, JobSchema, description="The job was queued; poll its url for progress.")
    @blp.alt_response(403, description="The folder is not under an allowed import root.")
    @blp.alt_response(413, description="The upload is too large.")
    @requires(Role.EDITOR)
    def post(self, args: dict[str, Any]) -> tuple[Job, int]:
        """Start loading several files, a zip archive or a server folder, in the background (or, with
        ``check``, comparing them with the library)."""
        ingestion, by, check = runtime().ingestion, audit.actor(), args["check"]
        if args.get("folder"):
            job = ingestion.start_folder(args["folder"], album=args["album"], by=by, check=check)
        elif args.get("archive"):
            job = ingestion.start_archive(args["archive"], album=args["album"], by=by, check=check)
        else:
            job = ingestion.start_files(args["files"], album=args["album"], by=by, check=check)
        audit.note(audit.started(job))
        return job, 202

    @blp.response(200, JobSchema(many=True))
    @blp.paginate()
    @requires(Role.VIEWER)
    def get(self, pagination_parameters: Any) -> list[Job]:
        """List jobs, newest first."""
        p = pagination_parameters
        jobs, total = runtime().ingestion.recent((p.page - 1) * p.page_size, p.page_size)
        p.item_count = total
        return jobs


@blp.route("/<job_id:job_id>")
class JobById(MethodView):
    """One job."""

    @blp.response(200, JobDetailSchema)
    @blp.alt_response(404, description="No job with that id.")
    @requires(Role.VIEWER)
    def get(self, job_id: str) -> JobDetail:
        """Return a job's progress, rate, ETA and failed files."""
        return detail(runtime().ingestion.get(job_id))

    @blp.response(200, JobDetailSchema, description="Cancelled, or asked to stop after its current batch.")
    @blp.alt_response(404, description="No job with that id.")
    @blp.alt_response(409, description="The job already ended.")
    @requires(Role.EDITOR)
    def delete(self, job_id: str) -> JobDetail:
        """Cancel a job (what it already indexed stays)."""
        return detail(runtime().ingestion.cancel(job_id))


@blp.route("/<job_id:job_id>/failures")
class JobFailures(MethodView):
    """Every file a job could not index (its detail shows the first 1000)."""

    @blp.arguments(ItemsArgsSchema(), location="query")
    @blp.response(200, FailureSchema(many=True))
    @blp.paginate()
    @blp.alt_response(404, description="No job with that id.")
    @requires(Role.VIEWER)
    def get(self, args: dict[str, Any], job_id: str, pagination_parameters: Any) -> list[Failure]:
        """List the files a job could not index, with their reasons, a page at a time in the job's order."""
        ingestion = runtime().ingestion
        count, read = partial(ingestion.failure_count, job_id), partial(ingestion.failures, job_id)
        return _by_position(pagination_parameters, args, ingestion.get(job_id).failed, count, read)


@blp.route("/<job_id:job_id>/duplicates")
class JobDuplicates(MethodView):
    """Every file a job did not add because the library held its bytes already."""

    @blp.arguments(ItemsArgsSchema(), location="query")
    @blp.response(200, DuplicateFileSchema(many=True))
    @blp.paginate()
    @blp.alt_response(404, description="No job with that id.")
    @requires(Role.VIEWER)
    def get(self, args: dict[str, Any], job_id: str, pagination_parameters: Any) -> list[DuplicateFile]:
        """List the files a job found already in the library, each with that image, a page at a time in the
        job's order (for a reindex: the images deleted while it ran)."""
        ingestion = runtime().ingestion
        count, read = partial(ingestion.duplicate_count, job_id), partial(ingestion.duplicates, job_id)
        return _by_position(pagination_parameters, args, ingestion.get(job_id).duplicates, count, read)


@blp.route("/<job_id:job_id>/matches")
class JobMatches(MethodView):
    """What a check found of each file."""

    @blp.arguments(MatchesArgsSchema(), location="query")
    @blp.response(200, CheckedFileSchema(many=True))
    @blp.paginate()
    @blp.alt_response(404, description="No job with that id.")
    @requires(Role.VIEWER)
    def get(self, args: dict[str, Any], job_id: str, pagination_parameters: Any) -> list[CheckedFile]:
        """List the files a check compared with the library, each with its verdict and closest images, a
        page at a time in the job's order (only those of one ``verdict``, if given; empty for other jobs)."""
        ingestion = runtime().ingestion
        if ingestion.get(job_id).kind not in CHECKS:
            pagination_parameters.item_count = 0
            return []
        states = [args["verdict"]] if "verdict" in args else CHECKED
        count = partial(ingestion.checked_count, job_id, states=states)
        read = partial(ingestion.checked, job_id, states=states)
        return _by_position(pagination_parameters, args, count(-1), count, read)


@blp.route("/<job_id:job_id>/add-new")
class JobAddNew(MethodView):
    """Loading what a check found new."""

    @blp.arguments(AddNewSchema())
    @blp.response(202, JobSchema, description="The load was queued; follow the job it answers.")
    @blp.alt_response(404, description="No job with that id.")
    @blp.alt_response(
        409,
        description="The job is not a finished check, it found no new file, or (uploaded files, an archive) it "
        "no longer keeps them.",
    )
    @requires(Role.EDITOR)
    def post(self, args: dict[str, str], job_id: str) -> tuple[Job, int]:
        """Load the files a check found new (into ``album``, each file's folder below it): from its server
        folder, or the uploaded files or archive it keeps until its ``new_kept_until``."""
        job = runtime().ingestion.load_new(job_id, args["album"], audit.actor())
        audit.note(audit.adding_new(job, job_id))
        return job, 202


@blp.route("/<job_id:job_id>/kept")
class JobKept(MethodView):
    """The files a check of uploads keeps of those it found new."""

    @blp.response(204, description="They are removed; the check can no longer add them.")
    @blp.alt_response(404, description="No job with that id.")
    @blp.alt_response(409, description="The job keeps no files: not a finished check of uploads, or removed.")
    @requires(Role.EDITOR)
    def delete(self, job_id: str) -> None:
        """Remove the files a check of uploaded files or an archive kept to add (``new_kept_until``) now,
        before its retention is over."""
        audit.note(audit.discarding(job_id, runtime().ingestion.discard_kept(job_id)))


@blp.route("/<job_id:job_id>/undo")
class JobUndo(MethodView):
    """Undoing a load."""

    @blp.response(202, JobSchema, description="The deletion was queued; follow the job it answers.")
    @blp.alt_response(404, description="No job with that id.")
    @blp.alt_response(
        409,
        description="The job is not a load or a deletion, is still under way, left nothing to undo, or "
        "another deletion (restore) runs.",
    )
    @requires(Role.ADMIN)
    def post(self, job_id: str) -> tuple[Job, int]:
        """Undo a load or a deletion, in a job of its own: a load's images go to the trash (those the
        library still holds as it added them); a deletion's images come back from the trash."""
        rt = runtime()
        job = rt.deletions.undo(job_id, rt.queue.send, audit.actor())
        audit.note(audit.started(job))
        return job, 202


@blp.route("/<job_id:job_id>/resume")
class JobResume(MethodView):
    """Resuming a job."""

    @blp.response(202, JobSchema)
    @blp.alt_response(404, description="No job with that id.")
    @blp.alt_response(409, description="The job is not interrupted, failed or cancelled.")
    @requires(Role.EDITOR)
    def post(self, job_id: str) -> tuple[Job, int]:
        """Resume an interrupted, failed or cancelled job, skipping what it already processed."""
        return runtime().ingestion.resume(job_id), 202


def _by_position(
    pages: Any, args: dict[str, Any], total: int, count: Callable[[int], int], read: Callable[[int, int, int], list[T]]
) -> list[T]:
    """Return a page of a job's failed or duplicate files: by number, or past the position ``after``
    (then the total, and the pages, count from there)."""
    after = args.get("after", -1)
    pages.item_count = total if after < 0 else count(after)
    return read(pages.page_size, (pages.page - 1) * pages.page_size, after)
