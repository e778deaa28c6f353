"""The Milvus bootcamp reverse-image-search API, on this app's services, without the demo's defects.

Its React client and scripts call these root paths and read bare JSON values (a string, a number,
a list of [path, distance] pairs); errors here are JSON with a 4xx status like the rest of the API.
"""

from __future__ import annotations

import re
from typing import Any

from flask import Response, current_app, jsonify, send_file, url_for
from flask.views import MethodView
from werkzeug.datastructures import FileStorage

from webapp import audit
from webapp.api.common import Blueprint
from webapp.api.compat import origins
from webapp.api.compat.schemas import (
    BOOTCAMP_TABLE,
    COUNT,
    PAIRS,
    PROGRESS,
    TEXT,
    BootcampLoadSchema,
    BootcampSearchSchema,
    BootcampUploadSchema,
    DataArgsSchema,
    DropArgsSchema,
    SearchArgsSchema,
    TableArgsSchema,
    UploadArgsSchema,
)
from webapp.auth import requires
from webapp.errors import Conflict, InvalidInput, NotFound
from webapp.extensions import rate_limited
from webapp.runtime import library, runtime
from webapp.services.images import mime_of
from webapp.services.jobs import ACTIVE, Job
from webapp.services.library import DEFAULT_TOP_K
from webapp.services.roles import Role

IMAGE_ID = re.compile(r"[0-9a-f]{64}")
LOADED = "Successfully loaded data!"  # the bootcamp's text, kept for scripts that compare it

blp = Blueprint(
    "bootcamp",
    __name__,
    description="Milvus bootcamp compatibility: the reverse-image-search demo's endpoints, for its React "
    "client and scripts. Success is 200 with a bare JSON value; errors are JSON with a 4xx status.",
)
origins.init_blueprint(blp)


def check_table(*names: str | None) -> None:
    """Accept no table name, or one that means this app's one library; refuse any other."""
    known = {current_app.config["COLLECTION"], BOOTCAMP_TABLE}
    for name in names:
        if name and name not in known:
            raise NotFound(f"no table named {name!r}: this app has one library (table {' or '.join(sorted(known))})")


def progress_text(job: Job | None) -> str:
    """Say how far a job got, as the bootcamp does; total is -1 while its folder is being listed.

    A job that ended (done, failed, cancelled, interrupted) reads ``current == total``, since the
    demo's client polls until then; the X-Job-Status header and the REST API say how it ended.
    """
    if job is None:
        return "current: 0, total: 0"
    if job.status not in ACTIVE:
        return f"current: {job.processed}, total: {job.processed}"
    return f"current: {job.processed}, total: {job.total if job.total is not None else -1}"


@blp.route("/img/load")
class Load(MethodView):
    """Loading a server folder."""

    decorators = [rate_limited]

    @blp.arguments(TableArgsSchema(), location="query")
    @blp.arguments(BootcampLoadSchema(), location="json")
    @blp.response(
        200,
        TEXT,
        description="The load was queued and runs in the background (the text is the bootcamp's). Follow "
        "Location, or poll GET /progress.",
        headers={"Location": {"description": "The job in the REST API.", "schema": {"type": "string"}}},
    )
    @blp.alt_response(403, description="The folder is not under an allowed import root.")
    @blp.alt_response(404, description="Unknown table name.")
    @requires(Role.EDITOR)
    def post(self, query: dict[str, str], body: dict[str, Any]) -> Response:
        """Start loading every image under a server folder, in the background; answer at once."""
        check_table(query.get("table_name"), body.get("table"))
        job = runtime().ingestion.start_folder(body["file"], by=audit.actor())
        audit.note(audit.started(job))
        response = jsonify(LOADED)
        response.headers["Location"] = url_for("jobs.JobById", job_id=job.id)
        return response


@blp.route("/progress")
class Progress(MethodView):
    """Progress of the newest load."""

    @blp.response(
        200, PROGRESS, description="Files processed and to process by the newest load (a scan or reindex is not one)."
    )
    @requires(Role.VIEWER)
    def get(self) -> Response:
        """Return the newest load's progress as "current: N, total: M" (0 and 0 when there is none)."""
        jobs, _ = runtime().ingestion.recent(0, 1, loads_only=True)
        response = jsonify(progress_text(jobs[0] if jobs else None))
        if jobs:
            response.headers["X-Job-Status"] = jobs[0].status
            response.headers["Location"] = url_for("jobs.JobById", job_id=jobs[0].id)
        return response


@blp.route("/img/upload")
class Upload(MethodView):
    """Adding one image."""

    decorators = [rate_limited]

    @blp.arguments(UploadArgsSchema(), location="query")
    @blp.arguments(BootcampUploadSchema(), location="multipart")
    @blp.response(200, TEXT, description='"Successfully loaded data: <id>", or "Image already loaded: <id>".')
    @blp.alt_response(404, description="Unknown table name.")
    @blp.alt_response(413, description="The upload or the image is too large.")
    @requires(Role.EDITOR)
    def post(self, query: dict[str, str], form: dict[str, FileStorage]) -> Response:
        """Add one image; the same bytes are never indexed twice."""
        check_table(query.get("table_name"))
        upload = form["image"]
        record, created = library().add(upload.read(), upload.filename, by=audit.actor())
        audit.note(audit.added(record, created))
        return jsonify(f"{'Successfully loaded data' if created else 'Image already loaded'}: {record.sha256}")


@blp.route("/img/search")
class Search(MethodView):
    """Similarity search."""

    decorators = [rate_limited]

    @blp.arguments(SearchArgsSchema(), location="query")
    @blp.arguments(BootcampSearchSchema(), location="multipart")
    @blp.response(200, PAIRS, description="[image id, distance] pairs, nearest first (0 = identical, at most 4).")
    @blp.alt_response(404, description="Unknown table name.")
    @blp.alt_response(413, description="The upload or the image is too large.")
    @requires(Role.VIEWER)
    def post(self, query: dict[str, Any], form: dict[str, Any]) -> Response:
        """Return the topk nearest images as [id, distance] pairs, nearest first."""
        check_table(query.get("table_name"))
        in_form, in_query = form.get("topk"), query.get("topk")
        if in_form is not None and in_query is not None and in_form != in_query:
            raise InvalidInput(
                f"topk is given twice, with different values ({in_form} in the form, {in_query} in the query)"
            )
        top_k: int = in_form or in_query or DEFAULT_TOP_K  # validated: at least 1 when given
        hits = library().search(form["image"].read(), top_k).hits
        # The bootcamp's L2 distance of unit vectors: 2 - 2 cos, so 0 is identical and smaller is nearer.
        return jsonify([[hit.record.sha256, max(0.0, 2.0 - 2.0 * hit.score)] for hit in hits])


@blp.route("/img/count")
class Count(MethodView):
    """The library's size."""

    @blp.arguments(TableArgsSchema(), location="query")
    @blp.response(200, COUNT, description="The number of images in the library.")
    @blp.alt_response(404, description="Unknown table name.")
    @requires(Role.VIEWER)
    def post(self, query: dict[str, str]) -> Response:
        """Return the number of images in the library."""
        check_table(query.get("table_name"))
        return jsonify(library().count())


@blp.route("/img/drop")
class Drop(MethodView):
    """Emptying the library."""

    @blp.arguments(DropArgsSchema(), location="query")
    @blp.response(200, TEXT, description='"ok": every image was removed.')
    @blp.alt_response(404, description="Unknown table name.")
    @blp.alt_response(409, description="confirm did not match the current number of images.")
    @requires(Role.ADMIN)
    def post(self, query: dict[str, Any]) -> Response:
        """Empty the whole library, as the bootcamp client's CLEAR ALL does (optionally confirm=<count>).

        The client sends no confirmation, so none is required here (unlike DELETE /api/v1/images);
        web pages of origins not in BOOTCAMP_CLIENT_ORIGINS are refused before this runs.
        """
        check_table(query.get("table_name"))
        lib = library()
        count = lib.count()
        if "confirm" in query and query["confirm"] != count:
            raise Conflict(f"to delete all {count} images, pass confirm={count}")
        deleted = runtime().ingestion.empty_library()
        audit.note(audit.emptied(deleted))
        return jsonify("ok")


@blp.route("/data")
class Data(MethodView):
    """Image files, by id."""

    @blp.arguments(DataArgsSchema(), location="query")
    @blp.response(200, description="The original image file, with its content type.")
    @blp.alt_response(404, description="No image with that id in the library (file paths are never read).")
    @requires(Role.VIEWER)
    def get(self, query: dict[str, str]) -> Response:
        """Return an image of the library by the id /img/search gave; never a file by its path."""
        image_id = query["image_path"]
        path = library().original(image_id) if IMAGE_ID.fullmatch(image_id) else None
        if path is None:
            raise NotFound("no such image in the library: image_path must be an image id that /img/search returned")
        return send_file(path, mimetype=mime_of(path), max_age=31536000)
