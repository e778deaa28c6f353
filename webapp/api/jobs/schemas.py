"""Schemas of the jobs resource."""

from typing import Any

import marshmallow as ma
from flask_smorest.fields import Upload

from webapp.api.common import Album, ImageUploads, Timestamp, UrlFor
from webapp.api.images.schemas import ImageSchema


class JobCreateSchema(ma.Schema):
    """A new ingestion job: several files, one zip archive, or a folder on the server (one of them)."""

    files = ImageUploads(metadata={"description": "Image files (multipart; repeat the field for each file)."})
    archive = Upload(metadata={"description": "A .zip archive of images (multipart)."})
    folder = ma.fields.String(
        metadata={"description": "Absolute path of a folder on the server, under an allowed import root."}
    )

    album = Album(description="The album to load into; each file's own folder (in an archive or folder) goes below it.")

    @ma.validates_schema
    def _one_source(self, data: dict[str, object], **kwargs: object) -> None:
        given = [name for name in ("files", "archive", "folder") if data.get(name)]
        if len(given) != 1:
            raise ma.ValidationError("Give exactly one of files, archive or folder.")


class FailureSchema(ma.Schema):
    """A file the job could not index."""

    name = ma.fields.String(metadata={"description": "The file's name (or path inside the source)."})
    reason = ma.fields.String(metadata={"description": "Why it could not be indexed."})
    position = ma.fields.Integer(
        attribute="seq",
        metadata={"description": "The file's place in the job, from 0: pass the last one you have as `after`."},
    )


class DuplicateFileSchema(ma.Schema):
    """A file the job did not add, because the library held its bytes already."""

    name = ma.fields.String(metadata={"description": "The file's name (or path inside the source)."})
    position = ma.fields.Integer(
        attribute="seq",
        metadata={"description": "The file's place in the job, from 0: pass the last one you have as `after`."},
    )
    image_id = ma.fields.String(
        attribute="sha256", metadata={"description": "The id of the image with the same bytes (their SHA-256)."}
    )
    image = ma.fields.Nested(
        ImageSchema,
        attribute="record",
        allow_none=True,
        metadata={"description": "That image as the library holds it now; null if it was deleted since."},
    )


class ItemsArgsSchema(ma.Schema):
    """Where a list of a job's failed or duplicate files starts."""

    after = ma.fields.Integer(
        validate=ma.validate.Range(min=0, max=2**31 - 1, error="Must be between {min} and {max}."),
        metadata={
            "description": "Only the files past this position in the job, the `position` of the last one you "
            "have; pages then count from there. While a job runs its files are done out of order, so pages by "
            "number alone may repeat or skip a file."
        },
    )


class JobSchema(ma.Schema):
    """An ingestion job and its progress."""

    id = ma.fields.String(metadata={"description": "Job id."})
    kind = ma.fields.String(
        metadata={
            "description": "files, archive, folder, cli, reindex (re-embedding the library), "
            "duplicates (a near-duplicate scan), move (an album moved or renamed), delete (an album, or what "
            "a load added, deleted into the trash) or restore (what a deletion deleted, back from the trash)."
        }
    )
    source = ma.fields.String(
        metadata={"description": "What is being loaded (folder path or upload name); for a move, the album moved."}
    )
    album = ma.fields.String(
        metadata={
            "description": "The album it loads into (empty: its files' own folders); for a move, the album's new name "
            "(empty: the top level)."
        }
    )
    status = ma.fields.String(
        metadata={"description": "queued, running, done, failed, cancelled or interrupted (resumable)."}
    )
    total = ma.fields.Integer(allow_none=True, metadata={"description": "Files to process (null while scanning)."})
    processed = ma.fields.Integer(metadata={"description": "Files processed so far."})
    added = ma.fields.Integer(metadata={"description": "Images newly indexed."})
    duplicates = ma.fields.Integer(metadata={"description": "Files whose bytes were already indexed."})
    failed = ma.fields.Integer(metadata={"description": "Files that could not be indexed."})
    rate = ma.fields.Float(allow_none=True, metadata={"description": "Images per second in this run."})
    eta_seconds = ma.fields.Float(allow_none=True, metadata={"description": "Seconds left at this rate."})
    created_at = Timestamp(metadata={"description": "When the job was created (UTC)."})
    started_at = Timestamp(allow_none=True, metadata={"description": "When it first started."})
    finished_at = Timestamp(allow_none=True, metadata={"description": "When it ended."})
    error = ma.fields.String(allow_none=True, metadata={"description": "Why the job failed, if it did."})
    started_by = ma.fields.String(
        metadata={
            "description": "The account that started it (a load's images count as added by it); the login that "
            "ran the command for `flask ingest` and `flask reindex` run in place. Empty with access control off, "
            "and for jobs started before 2026-12-04."
        }
    )
    url = UrlFor("jobs.JobById", "job_id", metadata={"description": "Path of this job in the API."})
    page_url = UrlFor("pages.job_page", "job_id", metadata={"description": "Path of the job's HTML page."})


class JobDetailSchema(JobSchema):
    """A job with the files it could not index and its undo, dumped from a JobDetail."""

    failures = ma.fields.List(
        ma.fields.Nested(FailureSchema), metadata={"description": "Failed files with reasons (first 1000)."}
    )
    undone_by = ma.fields.String(
        allow_none=True,
        metadata={
            "description": "For a load or a deletion: the id of the job started last to undo it (kind delete for a "
            "load, restore for a deletion), whatever became of it (GET it for its status); null if none was. An "
            "undo's own `source` is `job ` and the id of the job it undoes."
        },
    )

    def get_attribute(self, obj: Any, attr: str, default: Any) -> Any:
        """Read the failures and the undo from the detail, every other field from its job."""
        return getattr(obj if attr in ("failures", "undone_by") else obj.job, attr, default)
