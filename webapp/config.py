"""Configuration: these defaults, then ``WEBAPP_*`` environment variables, then a test's mapping."""

from __future__ import annotations

import difflib
import os
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PREFIX = "WEBAPP"


class Defaults:
    """Settings that let the app start with no configuration at all (see README)."""

    ENV = "development"  # "production" refuses to start without a real SECRET_KEY
    SECRET_KEY: str | None = None  # generated once into DATA_DIR when unset (development only)
    DATA_DIR = "var"  # what is local to one machine; relative paths are relative to the project folder
    # Originals, thumbnails and the files uploaded for jobs; may be a network mount every machine
    # shares. Empty: DATA_DIR/images.
    STORAGE_DIR = ""
    DATABASE_URL = ""  # empty: the SQLite file DATA_DIR/webapp.sqlite; or postgresql+psycopg://user@host/db
    # Empty: jobs run in a thread of the web process (embedded default). redis://host:6379/0: they go
    # to Celery workers (`flask --app wsgi worker`) on any machine; needs a Milvus server.
    BROKER_URL = ""
    JOB_CHUNK_SIZE = 256  # items per unit of work: workers share one job a chunk at a time
    TASK_VISIBILITY_TIMEOUT = 300  # seconds before a chunk whose worker died goes to another worker
    WORKER_METRICS_PORT = 9808  # `flask worker` serves its Prometheus metrics here (0: off)
    MILVUS_URI = ""  # empty: the Milvus Lite file DATA_DIR/milvus.db; or http://host:19530
    MILVUS_TOKEN = ""
    MILVUS_TIMEOUT = 5.0  # seconds per Milvus call; past it the request answers 503
    MILVUS_CONSISTENCY = "Strong"  # reads (duplicate checks, an image's page); Bounded: faster, a few seconds stale
    # Searches: Session sees this process's own writes at once and other processes' a moment later,
    # without waiting for the server's next time tick (200 ms on a stock Milvus); Strong waits.
    MILVUS_SEARCH_CONSISTENCY = "Session"
    # Milvus Lite searches unflushed rows by brute force: flush once this many rows wait, or once
    # the oldest unflushed write is this many seconds old (a Milvus server seals segments itself).
    # 512 rather than 64: a row waiting costs each search about 4 us (services/lite_search.py), and
    # Lite merges every four segments of a size bucket into one and indexes it again. 64-row
    # segments (0.3 MB) went through every bucket: Lite's background work took 0.8 s of CPU for a
    # 1,500-image load searched meanwhile, 0.1 s with 512-row ones (2.7 MB) (docs/performance-history.md).
    MILVUS_FLUSH_ROWS = 512
    MILVUS_FLUSH_SECONDS = 10.0
    COLLECTION = "images"
    # How often each process looks whether a reindex switched the library to another collection.
    LIBRARY_FOLLOW_SECONDS = 5.0
    MODEL = ""  # empty: the model the library was made with; for a new library, webapp.models.DEFAULT
    MODEL_DIR = ""  # empty: DATA_DIR/models
    ONNX_THREADS = 0  # 0: one per core
    # Processes that decode and embed search queries, out of the web process's interpreter lock
    # (services/query_helpers.py). "auto", with one web worker on two or more cores: one per core and
    # one more (it keeps the cores fed while another's answer crosses), at most 4; else none
    # (several workers already spread the Python over processes).
    SEARCH_PROCESSES: int | str = "auto"
    EMBED_BATCH_SIZE = 4  # images per model call: as fast as 16 here, and keeps searches snappy during a load
    # Two images at least this alike (cosine similarity of their embeddings) are near-duplicates: the
    # best F1 of `flask --app wsgi evaluate DIR --duplicates` on the bundled photos (README, Near-duplicates).
    DUPLICATE_THRESHOLD = 0.96
    HNSW_M = 16
    HNSW_EF_CONSTRUCTION = 200
    SEARCH_EF = 128
    MAX_CONTENT_LENGTH = 32 * 1024 * 1024  # bytes per request; larger uploads get 413
    # Under Gunicorn, a request body that sends nothing for this many seconds, or less than this many
    # bytes per second on average after that, ends with 408: a stalled client cannot hold a thread.
    BODY_IDLE_SECONDS = 10.0
    BODY_MIN_BYTES_PER_SECOND = 16 * 1024
    MAX_IMAGE_PIXELS = 64_000_000  # decompression-bomb guard
    THUMBNAIL_SIZE = 320
    # A page lists up to this many albums in a menu; a library with more gets a field that suggests
    # names as you type (a menu of 5,585 albums made the home page 652 KB).
    ALBUM_CHOICES = 200
    RATE_LIMIT = ""  # e.g. "60/minute": per client, over searches and uploads together; empty: off
    IMPORT_ROOTS: list[str] | str = []  # folders the API may ingest from; empty: DATA_DIR/import
    MAX_FILE_BYTES = 32 * 1024 * 1024  # per file in a job (uploaded, in an archive, or in a folder)
    MAX_JOB_UPLOAD_BYTES = 4 * 1024 * 1024 * 1024  # one job's upload (many files, or one archive)
    MAX_JOB_FILES = 5000  # files in one multi-file upload
    UPLOAD_RETENTION_HOURS = 168.0  # a job that stopped unfinished keeps its uploaded files this long
    MAX_ARCHIVE_ENTRIES = 100_000  # entries in one zip archive
    MAX_ARCHIVE_EXPANDED_BYTES = 16 * 1024 * 1024 * 1024  # what one zip archive may expand to
    # Origins (scheme://host:port) of web pages allowed to call the bootcamp-compatible endpoints,
    # e.g. the bootcamp's React client; "*": any. Empty: only this app's own pages.
    BOOTCAMP_CLIENT_ORIGINS: list[str] | str = []
    # Host names (and addresses) the app answers to, comma-separated; a request for any other Host
    # gets 400, so a DNS-rebinding page cannot reach it. Empty: the loopback names and the host of
    # WEBAPP_BIND (unless that is 0.0.0.0 or ::). ".example.com" takes every subdomain; "*": any.
    TRUSTED_HOSTS: list[str] | str = []

    # Access control: "on" (accounts, roles and API tokens), "off" (anyone who can reach the app may
    # do anything), or empty: off in development bound to loopback only, on everywhere else.
    AUTH = ""
    AUTH_OFF_CONFIRMED = False  # production refuses AUTH=off unless this is true too
    ANONYMOUS_SEARCH = False  # with AUTH on: requests without credentials may search and read (never write)
    SESSION_HOURS = 12.0  # a session ends this long after signing in (or at sign out)
    SESSION_COOKIE_SECURE: bool | None = None  # None: Secure in production (HTTPS), not in development
    SESSION_COOKIE_SAMESITE = "Lax"
    SESSION_COOKIE_HTTPONLY = True

    # How many proxies in front of the app set X-Forwarded-For and X-Forwarded-Proto (0: none, so
    # those headers are ignored): the client address that failed logins count against, and HTTPS.
    PROXIES = 0
    # Days the activity log keeps who changed what (services/activity.py); 0: every entry, for ever.
    ACTIVITY_DAYS = 365.0
    # Days a deleted image stays in the trash, restorable, before it goes for good (services/trash.py);
    # 0: no trash, deletions are final.
    TRASH_DAYS = 30.0

    API_TITLE = "Reverse image search"
    API_VERSION = "v1"
    OPENAPI_VERSION = "3.0.3"
    OPENAPI_URL_PREFIX = "/api"
    OPENAPI_JSON_PATH = "v1/openapi.json"
    OPENAPI_SWAGGER_UI_PATH = "docs"
    OPENAPI_SWAGGER_UI_URL = "/api/docs/assets/"  # served from the swagger-ui-bundle package
    API_SPEC_OPTIONS = {
        "info": {
            "description": "Search a library of images by visual similarity, and manage it. "
            "Errors are JSON: {code, status, message, errors}."
        }
    }


def load(config: dict[str, Any] | None) -> dict[str, Any]:
    """Return the settings: defaults, then environment, then ``config``, with paths resolved."""
    from flask import Config

    settings = Config(str(ROOT))
    settings.from_object(Defaults)
    settings.from_prefixed_env(PREFIX)
    settings.update(config or {})
    data_dir = ROOT / Path(settings["DATA_DIR"])
    settings["DATA_DIR"] = str(data_dir)
    settings["MODEL_DIR"] = str(ROOT / Path(settings["MODEL_DIR"] or data_dir / "models"))
    settings["MILVUS_URI"] = milvus_uri(settings["MILVUS_URI"], data_dir)
    settings["STORAGE_DIR"] = str(ROOT / Path(settings["STORAGE_DIR"] or data_dir / "images"))
    if settings["BROKER_URL"] and not is_server_uri(settings["MILVUS_URI"]):
        raise RuntimeError(
            f"{PREFIX}_BROKER_URL sends ingestion to worker processes, but the Milvus Lite file "
            f"{settings['MILVUS_URI']} allows one process: set {PREFIX}_MILVUS_URI to a Milvus server "
            "(http://host:19530), or unset the broker to run jobs inside the web process"
        )
    roots = settings["IMPORT_ROOTS"]
    roots = roots.split(os.pathsep) if isinstance(roots, str) else roots
    settings["IMPORT_ROOTS"] = [str(ROOT / Path(r)) for r in roots if r] or [str(data_dir / "import")]
    origins = settings["BOOTCAMP_CLIENT_ORIGINS"]
    settings["BOOTCAMP_CLIENT_ORIGINS"] = origins.replace(",", " ").split() if isinstance(origins, str) else origins
    settings["TRUSTED_HOSTS"] = trusted_hosts(settings["TRUSTED_HOSTS"], str(settings.get("BIND", "")))
    settings["SEARCH_PROCESSES"] = search_processes(settings["SEARCH_PROCESSES"], settings.get("WORKERS", 1))
    settings["RATELIMIT_ENABLED"] = bool(settings["RATE_LIMIT"])
    # Werkzeug counts every multipart part; a multi-file job has one per file.
    settings["MAX_FORM_PARTS"] = max(int(settings.get("MAX_FORM_PARTS") or 1000), settings["MAX_JOB_FILES"] + 10)
    settings["SECRET_KEY_GENERATED"] = not settings["SECRET_KEY"]
    settings["SECRET_KEY"] = settings["SECRET_KEY"] or _local_secret(settings["ENV"], data_dir)
    settings["AUTH_ENABLED"] = auth_enabled(settings)
    settings["ANONYMOUS_SEARCH"] = _true(settings["ANONYMOUS_SEARCH"])
    if settings["SESSION_COOKIE_SECURE"] is None:
        settings["SESSION_COOKIE_SECURE"] = settings["ENV"] == "production"
    settings["PERMANENT_SESSION_LIFETIME"] = int(float(settings["SESSION_HOURS"]) * 3600)
    settings["TRASH_DAYS"] = max(float(settings["TRASH_DAYS"]), 0.0)
    settings["SESSION_REFRESH_EACH_REQUEST"] = False  # sessions end SESSION_HOURS after signing in
    return dict(settings)


# WEBAPP_* names read by gunicorn.conf.py or by CLI options, not by the app's settings.
OUTSIDE_SETTINGS = {"BIND", "WORKERS", "THREADS", "TIMEOUT", "API_TOKEN"}


def unknown_variables(environ: Mapping[str, str]) -> list[str]:
    """Return a line for each WEBAPP_* variable that names no setting, with the nearest name if one is near.

    Flask's prefixed environment takes any name, so a misspelt one was ignored without a word: a web
    machine given WEBAPP_DATABASE_URI for WEBAPP_DATABASE_URL kept a SQLite file of its own.
    """
    from flask import Flask

    known = {n for n in vars(Defaults) if n.isupper()} | set(Flask.default_config) | OUTSIDE_SETTINGS
    lines = []
    for variable in sorted(v for v in environ if v.startswith(f"{PREFIX}_")):
        name = variable.removeprefix(f"{PREFIX}_").split("__", 1)[0]  # "A__b" sets key b of setting A
        if name in known:
            continue
        near = difflib.get_close_matches(name, sorted(known), n=1)
        hint = f"; did you mean {PREFIX}_{near[0]}?" if near else " (README, Configuration)"
        lines.append(f"{variable} is not a setting, so it changes nothing{hint}")
    return lines


def machine_key_warning(settings: Mapping[str, Any]) -> str | None:
    """Return a warning if this web machine signs with a key of its own while sharing a database with others.

    With WEBAPP_SECRET_KEY unset, each machine makes its own key in its DATA_DIR: behind a load
    balancer, a session or form made on one machine is refused by the next.
    """
    url = str(settings.get("DATABASE_URL") or "")
    if not settings.get("SECRET_KEY_GENERATED") or not url or url.startswith("sqlite"):
        return None
    return (
        f"{PREFIX}_SECRET_KEY is unset, so this machine signs sessions and CSRF tokens with a key of its own "
        f"({settings['DATA_DIR']}/secret_key); web machines that share this database need the same "
        f"{PREFIX}_SECRET_KEY, or a person signed in on one is signed out by the next (README, Scale out)"
    )


LOOPBACK_NAMES = ["localhost", "127.0.0.1", "::1", "[::1]"]


def trusted_hosts(configured: list[str] | str, bind: str) -> list[str] | None:
    """Return Flask's TRUSTED_HOSTS: the configured names, or loopback and the bound host; None: any."""
    names = configured.replace(",", " ").split() if isinstance(configured, str) else list(configured)
    if "*" in names:
        return None
    if names:
        return names
    host = bind.rsplit(":", 1)[0].strip("[]") if ":" in bind else bind
    return LOOPBACK_NAMES + ([host] if host and host not in ("0.0.0.0", "::") else [])


def search_processes(configured: int | str, workers: int | str) -> int:
    """Return how many query helpers each web worker starts (SEARCH_PROCESSES; "auto": see Defaults)."""
    if configured != "auto":
        return max(int(configured), 0)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return min(cores + 1, 4) if cores >= 2 and int(workers) == 1 else 0


def auth_enabled(settings: dict[str, Any]) -> bool:
    """Decide whether access control is on; refuse an open library in production unless confirmed."""
    auth = str(settings["AUTH"]).strip().lower()
    if auth not in ("", "on", "off"):
        raise RuntimeError(f"{PREFIX}_AUTH must be on or off (or unset), not {settings['AUTH']!r}")
    if not auth:
        bound = str(settings.get("BIND", "")).rsplit(":", 1)[0].strip("[]")
        local = not bound or bound in LOOPBACK_NAMES
        return not (settings["ENV"] == "development" and local)
    if auth == "off" and settings["ENV"] == "production" and not _true(settings["AUTH_OFF_CONFIRMED"]):
        raise RuntimeError(
            f"{PREFIX}_AUTH=off in production lets anyone who reaches the app change or empty the library; "
            f"if something in front of it checks who may do what, also set {PREFIX}_AUTH_OFF_CONFIRMED=true"
        )
    return auth == "on"


def _true(value: Any) -> bool:
    return value is True or str(value).strip().lower() in ("1", "true", "yes", "on")


def is_server_uri(uri: str) -> bool:
    """Tell whether ``uri`` names a Milvus server rather than a Milvus Lite file."""
    return uri.startswith(("http://", "https://", "tcp://", "grpc://", "unix:"))


def milvus_uri(uri: str, data_dir: Path) -> str:
    """Return the Milvus URI: a server URI as given, or an absolute Milvus Lite file path."""
    if not uri:
        return str(data_dir / "milvus.db")
    return uri if is_server_uri(uri) else str(ROOT / Path(uri))


def _local_secret(env: str, data_dir: Path) -> str:
    """Return a random key kept in the data directory; refuse in production."""
    if env == "production":
        raise RuntimeError(
            f"{PREFIX}_SECRET_KEY must be set in production (for example "
            f"`export {PREFIX}_SECRET_KEY=$(python -c 'import secrets; print(secrets.token_hex(32))')`)"
        )
    path = data_dir / "secret_key"
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        tmp = data_dir / f".secret_key.{os.getpid()}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(secrets.token_hex(32))
        # link() fails if another process got there first: then both use the first key.
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
    return path.read_text().strip()
