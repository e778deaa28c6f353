"""Schemas of the jobs resource."""

from typing import Any

import marshmallow as ma
from flask_smorest.fields import Upload

from webapp.api.common import Album, ImageUploads, Timestamp, UrlFor
from webapp.api.images.schemas import ImageSchema
from webapp.services.job_items import CHECKED


class JobCreateSchema(ma.Schema):
    """A new ingestion job: several files, one zip archive, or a folder on the server (one of them)."""

    files = ImageUploads(metadata={"description": "Image files (multipart; repeat the field for each file)."})
    archive = Upload(metadata={"description": "A .zip archive of images (multipart)."})
    folder = ma.fields.String(
        metadata={"description": "Absolute path of a folder on the server, under an allowed import root."}
    )

    album = Album(
        description="The album to load into; each file's own folder (in an archive or folder) goes below it. "
        "For a check: compare with this album and its sub-albums only."
    )
    check = ma.fields.Boolean(
        load_default=False,
        metadata={
            "description": "Add nothing: compare each file with the library instead (is it there, or something "
            "like it?); the job's kind is `check-` and its source's. Its findings: GET the job's `matches`."
        },
    )

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


class MatchSchema(ma.Schema):
    """One of the images of the library closest to a checked file."""

    image_id = ma.fields.String(metadata={"description": "The image's id."})
    score = ma.fields.Float(metadata={"description": "Cosine similarity to the file (1: the same bytes)."})
    same_picture = ma.fields.Boolean(
        metadata={
            "description": "The same picture as the file, as a near-duplicate scan would group them: at "
            "DUPLICATE_THRESHOLD or more alike, or less with the same layout (a copy cropped or re-saved)."
        }
    )
    image = ma.fields.Nested(
        ImageSchema,
        allow_none=True,
        metadata={"description": "The image as the library holds it now; null if deleted since."},
    )


class CheckedFileSchema(ma.Schema):
    """A file a check compared with the library, dumped from a CheckedFile."""

    name = ma.fields.String(metadata={"description": "The file's name (or path inside the source)."})
    position = ma.fields.Integer(
        attribute="seq",
        metadata={"description": "The file's place in the job, from 0: pass the last one you have as `after`."},
    )
    verdict = ma.fields.String(
        attribute="state",
        metadata={
            "description": "in_library (the library holds its bytes), similar (one of its closest images is the "
            "same picture: `same_picture`), new (none is), or failed (not read: see `reason`)."
        },
    )
    reason = ma.fields.String(metadata={"description": "Why it could not be read (failed only)."})
    matches = ma.fields.List(
        ma.fields.Nested(MatchSchema),
        metadata={
            "description": "Its closest images (up to 5), best first; for in_library, the one of its bytes "
            "first, at 1, even outside the album compared with."
        },
    )

    def get_attribute(self, obj: Any, attr: str, default: Any) -> Any:
        """Read the matches with their images, every other field from the file."""
        if attr != "matches":
            return getattr(obj, attr, default)
        records = obj.records or {}
        return [
            {"image_id": sha, "score": score, "same_picture": same, "image": records.get(sha)}
            for sha, score, same in obj.matches
        ]


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
    compared = ma.fields.Dict(
        keys=ma.fields.String(),
        values=ma.fields.Integer(),
        allow_none=True,
        metadata={
            "description": "For a check: how many files it found `in_library`, `similar` and `new` so far (their "
            "list: the job's `matches`); null for other jobs."
        },
    )
    undone_by = ma.fields.String(
        allow_none=True,
        metadata={
            "description": "For a load or a deletion: the id of the job started last to undo it (kind delete for a "
            "load, restore for a deletion), whatever became of it (GET it for its status); null if none was. An "
            "undo's own `source` is `job ` and the id of the job it undoes."
        },
    )

    new_kept_until = Timestamp(
        allow_none=True,
        metadata={
            "description": "For a finished check of uploaded files or an archive: until when it keeps the files it "
            "found `new`, so `add-new` can load them without their upload (WEBAPP_UPLOAD_RETENTION_HOURS after it "
            "ended); null once they are removed, and for other jobs (a check of a server folder reads the folder)."
        },
    )

    def get_attribute(self, obj: Any, attr: str, default: Any) -> Any:
        """Read the failures, the undo and a check's findings from the detail, every other field from its job."""
        own = ("failures", "undone_by", "compared", "new_kept_until")
        return getattr(obj if attr in own else obj.job, attr, default)


class MatchesArgsSchema(ItemsArgsSchema):
    """Where a check's list of files starts, and which verdict it lists."""

    verdict = ma.fields.String(
        validate=ma.validate.OneOf(CHECKED),
        metadata={"description": "Only the files of this verdict: in_library, similar, new or failed."},
    )


class AddNewSchema(ma.Schema):
    """Where to load the files a check found new."""

    album = Album(description="The album to load into; each file's own folder goes below it.")
