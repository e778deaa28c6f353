"""The FastAPI + Uvicorn twin of the app's search and bulk-load endpoints, for `make compare` only.

It serves the same paths over the same service layer (webapp.runtime.Runtime: the Towhee/ONNX
embedder, the Milvus store, the ingestion service) with the same settings (WEBAPP_* variables), so that
what differs between the two servers is the web framework and its server, nothing else:

    .venv/bin/uvicorn bench.twin:app --port 8001

FastAPI and Uvicorn are development dependencies; the product does not import this module.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import FastAPI, File, Form, Request, UploadFile
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from webapp import config
from webapp.errors import WebappError
from webapp.runtime import Runtime
from webapp.services.jobs import Job
from webapp.services.records import Record

settings = config.load(None)
runtime = Runtime(settings)


@asynccontextmanager
async def lifespan(_: FastAPI) -> AsyncIterator[None]:
    """Open the model and the store before the first request, as gunicorn.conf.py does."""
    runtime.library  # noqa: B018 - building it is the point
    yield
    runtime.close()


app = FastAPI(title="Reverse image search (FastAPI twin, benchmarks only)", lifespan=lifespan)


@app.exception_handler(WebappError)
async def domain_error(_: Request, exc: WebappError) -> JSONResponse:
    """Answer the service layer's errors as the Flask app does: JSON with the error's status."""
    return JSONResponse({"code": exc.status, "message": exc.message}, status_code=exc.status)


def image_json(record: Record) -> dict[str, Any]:
    """Return a record with the same fields and URLs as the Flask API (no Flask here for url_for)."""
    fields = ("filename", "width", "height", "mime", "source", "album")
    return {
        "id": record.sha256,
        **{k: getattr(record, k) for k in fields},
        "added_at": record.added.isoformat(),
        "url": f"/api/v1/images/{record.sha256}/file",
        "thumbnail_url": f"/api/v1/images/{record.sha256}/thumbnail",
        "page_url": f"/images/{record.sha256}",
    }


def job_json(job: Job) -> dict[str, Any]:
    """Return a job with the fields the Flask API's progress poll returns."""
    fields = ("id", "kind", "source", "status", "total", "processed", "added", "duplicates", "failed")
    return {**{k: getattr(job, k) for k in fields}, "rate": job.rate, "url": f"/api/v1/jobs/{job.id}"}


# Plain `def` endpoints: FastAPI runs them in its thread pool, as Gunicorn's gthread worker runs
# Flask views in its threads; embedding releases the GIL in onnxruntime either way.
@app.post("/api/v1/search")
def search(image: Annotated[UploadFile, File()], top_k: Annotated[int, Form(ge=1, le=100)] = 10) -> dict[str, Any]:
    """Return the images most similar to the uploaded one, best first."""
    result = runtime.library.search(image.file.read(), top_k)
    hits = [{**image_json(hit.record), "score": hit.score} for hit in result.hits]
    return {"results": hits, "top_k": top_k, "took_ms": result.took_ms}


class FolderJob(BaseModel):
    """A bulk load of a server folder."""

    folder: str


@app.post("/api/v1/jobs", status_code=202)
def create_job(body: FolderJob) -> dict[str, Any]:
    """Start loading a server folder in the background."""
    return job_json(runtime.ingestion.start_folder(body.folder))


@app.get("/api/v1/jobs/{job_id}")
def job(job_id: str) -> dict[str, Any]:
    """Return a job's progress."""
    return job_json(runtime.ingestion.get(job_id))


@app.get("/api/v1/stats")
def stats() -> dict[str, Any]:
    """Return the library size."""
    return {"images": runtime.library.vectors.count()}
