"""Shared fixtures: the real model, a real Milvus Lite file in a temporary folder, real photos."""

from __future__ import annotations

import fcntl
import io
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from flask import Flask
from flask.testing import FlaskClient
from PIL import Image
from pymilvus import MilvusClient
from skimage import data as skdata
from xdist.scheduler import LoadScopeScheduling

from tests.milvus_server import MilvusServer, PreparedCollections
from tests.servers import PostgresServer, RedisServer
from webapp import create_app
from webapp.config import ROOT, Defaults
from webapp.models import DEFAULT, MODELS
from webapp.runtime import EXTENSION

MODEL = "efficientnet-lite0"
INT8 = "efficientnet-lite0-int8"
# Distinct real photographs bundled with scikit-image (no download needed).
PHOTO_NAMES = [
    "astronaut",
    "brick",
    "camera",
    "cell",
    "chelsea",
    "clock",
    "coffee",
    "coins",
    "grass",
    "gravel",
    "hubble_deep_field",
    "immunohistochemistry",
    "microaneurysms",
    "moon",
    "page",
    "retina",
    "rocket",
    "text",
]
LFW_FACES = [0, 50]  # two different people from the bundled Labeled Faces in the Wild subset
# scikit-image's rocket.jpg as it ships: tagged with the Adobe RGB (1998) colour profile, as a wide-gamut
# photo is (a camera's in Adobe RGB, a phone's in Display P3). The `photos` fixture's copies carry none.
WIDE_GAMUT_PHOTO = Path(skdata.__file__).parent / "rocket.jpg"


def files_under(root: Path, suffix: str = "") -> list[str]:
    """The files under root ending in suffix; a folder removed meanwhile (background clearing) is skipped."""
    return sorted(
        str((Path(folder) / name).relative_to(root))
        for folder, _, names in os.walk(root)
        for name in names
        if name.endswith(suffix)
    )


def heic(img: Image.Image, quality: int = 80, **options: Any) -> bytes:
    """Encode an image as HEIC, as a phone saves its photos (pillow-heif's encoder, in tests only)."""
    import pillow_heif

    out = io.BytesIO()
    pillow_heif.from_pillow(img).save(out, quality=quality, **options)
    return out.getvalue()


def jpeg(img: Image.Image, quality: int = 92) -> bytes:
    """Encode an image as JPEG bytes."""
    out = io.BytesIO()
    img.convert("RGB").save(out, "JPEG", quality=quality)
    return out.getvalue()


def mpo(first: bytes, *others: bytes) -> bytes:
    """Return a Multi-Picture JPEG of these JPEGs' pictures (a camera's photo and its preview, a 3D camera's eyes)."""
    out = io.BytesIO()
    pictures = [Image.open(io.BytesIO(data)) for data in (first, *others)]
    pictures[0].save(out, "MPO", save_all=True, append_images=pictures[1:], quality=92)
    return out.getvalue()


def png(img: Image.Image) -> bytes:
    """Encode an image as PNG bytes."""
    out = io.BytesIO()
    img.save(out, "PNG")
    return out.getvalue()


def noise_images(count: int, seed: int = 0, size: int = 48) -> list[bytes]:
    """Return ``count`` distinct small JPEGs (random colour blocks), quick to embed."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(count):
        blocks = rng.integers(0, 256, (4, 4, 3), dtype=np.uint8)
        out.append(jpeg(Image.fromarray(blocks).resize((size, size), Image.Resampling.NEAREST)))
    return out


def near_duplicate(data: bytes) -> bytes:
    """Crop 10% off each side, shrink to 70% and recompress as a low-quality JPEG."""
    img = Image.open(io.BytesIO(data)).convert("RGB")
    w, h = img.size
    img = img.crop((w // 10, h // 10, w - w // 10, h - h // 10))
    img = img.resize((int(img.width * 0.7), int(img.height * 0.7)), Image.Resampling.BILINEAR)
    return jpeg(img, quality=60)


@pytest.fixture(autouse=True)
def _isolated_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep the developer's WEBAPP_* variables out of the tests.

    Apps made in the test process embed search queries in it: query helpers would start for each
    such app (about 2 s). tests/test_query_helpers.py tests the helpers, and so does the Gunicorn
    server of test_gunicorn.py's add-and-search test, with the default, as `make run` does. The
    other Gunicorn servers of the tests start none (WEBAPP_SEARCH_PROCESSES=0, or several workers).
    """
    for name in [n for n in os.environ if n.startswith("WEBAPP_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("WEBAPP_SEARCH_PROCESSES", "0")


@pytest.fixture(scope="session")
def model_dir() -> Path:
    """Return the folder of the exported ONNX model, exporting it once if needed."""
    folder = ROOT / "var" / "models"
    if not (folder / f"{MODEL}.onnx").is_file():
        subprocess.run(
            [sys.executable, str(ROOT / "scripts/export_model.py"), "--out", str(folder / f"{MODEL}.onnx")],
            check=True,
        )
    if not (folder / f"{INT8}.onnx").is_file():
        quantize = [sys.executable, str(ROOT / "scripts/quantize_model.py"), "--fp32", str(folder / f"{MODEL}.onnx")]
        subprocess.run([*quantize, "--out", str(folder / f"{INT8}.onnx")], check=True)
    return folder


@pytest.fixture(scope="session")
def photos() -> dict[str, bytes]:
    """Return the bundled photos as JPEG bytes, by name."""
    out = {name: jpeg(Image.fromarray(getattr(skdata, name)())) for name in PHOTO_NAMES}
    out["motorcycle"] = jpeg(Image.fromarray(skdata.stereo_motorcycle()[0]))
    faces = skdata.lfw_subset()
    for i in LFW_FACES:
        face = Image.fromarray((faces[i] * 255).astype(np.uint8)).resize((200, 200), Image.Resampling.BICUBIC)
        out[f"face{i}"] = jpeg(face)
    return out


@pytest.fixture(scope="session")
def milvus_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MilvusServer]:
    """Start a real Milvus standalone once for the session; stop it by its pid whatever happens.

    Its folder is in memory (/dev/shm) where there is one: the server's embedded etcd syncs every
    write to disk, and on a busy disk its writes once took 6 s while the other pytest-xdist worker
    was starting the browser tests; the server lost its etcd session (10 s) and shut itself down.
    """
    memory = Path("/dev/shm")
    in_memory = memory.is_dir() and os.access(memory, os.W_OK)
    if in_memory:
        sweep_server_folders(memory)
    folder = (
        Path(tempfile.mkdtemp(prefix="webapp-milvus-", dir=memory)) if in_memory else tmp_path_factory.mktemp("milvus")
    )
    with open(folder / IN_USE, "w") as in_use:
        fcntl.flock(in_use, fcntl.LOCK_EX)  # held while this session runs (see sweep_server_folders)
        server = MilvusServer(folder)
        try:
            server.start()
            STARTED.append(server)
            yield server
        finally:
            server.stop()
            if in_memory:  # its log stays with pytest's temporary folders
                if server.log.is_file():
                    shutil.copy(server.log, tmp_path_factory.mktemp("milvus") / server.log.name)
                shutil.rmtree(folder, ignore_errors=True)


# The session's Milvus server once started, and its PreparedCollections once a test took a collection.
STARTED: list[MilvusServer] = []
PREPARED: list[PreparedCollections] = []


@pytest.hookimpl(trylast=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> None:
    """Stop the Milvus server once this process has no test of it left to run.

    Idle, it is not idle: each loaded collection ticks, and the collections made ahead for the
    next tests stay loaded (a quarter of a core with nine at its 50 ms tick, half at 20 ms; see
    MilvusServer), for the rest of a session that runs minutes after its last test of the server.
    Under pytest-xdist the server's tests come to one worker as one block (MilvusServerScheduling),
    so the next item tells; in one process, the items left to run do.
    """
    if not STARTED or STARTED[-1].proc is None:
        return
    if nextitem is not None and on_milvus_server(nextitem.nodeid):
        return
    if not hasattr(item.config, "workerinput") and nextitem is not None:
        later = item.session.items[item.session.items.index(nextitem) :]
        if any(on_milvus_server(other.nodeid) for other in later):
            return
    for prepared in PREPARED:
        prepared.settle()
    STARTED[-1].stop()


def running(server: MilvusServer) -> MilvusServer:
    """Return the server, started again if it was stopped after what looked like its last test."""
    if server.proc is None:
        server.start()
    return server


@pytest.fixture(scope="session")
def prepared_collections(milvus_server: MilvusServer) -> PreparedCollections:
    """Make the server tests' collections ready while the tests before them run (tests/milvus_server.py)."""
    PREPARED.append(
        PreparedCollections(milvus_server, MODELS[DEFAULT].dim, Defaults.HNSW_M, Defaults.HNSW_EF_CONSTRUCTION)
    )
    return PREPARED[-1]


@pytest.fixture(autouse=True)
def _no_collection_in_the_making(request: pytest.FixtureRequest) -> None:
    """A test that takes the server itself may stop, restart or pause it: first let the collection
    being made for the next test get ready."""
    if "milvus_server" in request.node.fixturenames:
        running(request.getfixturevalue("milvus_server"))
        for prepared in PREPARED:
            prepared.settle()


IN_USE = ".in-use"


def sweep_server_folders(memory: Path) -> None:
    """Remove the in-memory folders of Milvus servers whose test session was killed before it could.

    Each held about 520 MB of memory until the machine restarted (four were found after a day of
    interrupted runs). A running session holds a lock on its folder's IN_USE file; any folder
    whose lock can be taken is left over.
    """
    for folder in memory.glob("webapp-milvus-*"):
        try:
            with open(folder / IN_USE, "a") as in_use:
                fcntl.flock(in_use, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            continue  # another session's server
        except OSError:
            pass  # not ours to lock (or gone): remove what we may
        shutil.rmtree(folder, ignore_errors=True)


# These modules run every test that uses the app against SQLite and against PostgreSQL.
# PostgreSQL is paired with Milvus Lite only: the server's own tests run on SQLite, and the
# scale-out tests (tests/test_scaleout.py) run PostgreSQL with the server.
BOTH_DATABASES = {
    "test_jobs.py",
    "test_api.py",
    "test_library_api.py",
    "test_database.py",
    "test_activity.py",
    "test_trash.py",
}


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Parametrize ``database`` over SQLite and PostgreSQL in the modules that ask for both."""
    module = Path(metafunc.definition.fspath).name
    already = any("database" in m.args[0] for m in metafunc.definition.iter_markers("parametrize"))
    if "database" in metafunc.fixturenames and module in BOTH_DATABASES and not already:
        metafunc.parametrize("database", ["sqlite", "postgresql"], indirect=True)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Leave out the PostgreSQL x Milvus server pairs of the modules that run both databases, and
    check that every test of the Milvus server says so in its id (see ``on_milvus_server``)."""
    kept: list[pytest.Item] = []
    dropped: list[pytest.Item] = []
    for item in items:
        params = getattr(item, "callspec", None)
        pair = (params.params.get("database"), params.params.get("backend")) if params else (None, None)
        (dropped if pair == ("postgresql", "server") else kept).append(item)
        uses_server = "milvus_server" in getattr(item, "fixturenames", ()) or pair[1] == "server"
        if uses_server and not on_milvus_server(item.nodeid):
            raise pytest.UsageError(
                f"{item.nodeid} uses the Milvus server, but its id does not say so: give it a "
                f"'server' parameter or put it in one of {sorted(SERVER_MODULES)} (tests/conftest.py)"
            )
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept


# The modules whose tests take the Milvus server as the ``milvus_server`` fixture; elsewhere a test
# reaches it through ``backend``'s "server" parameter.
SERVER_MODULES = {"test_server_mode.py", "test_scaleout.py"}


def on_milvus_server(nodeid: str) -> bool:
    """Tell from a test's id alone whether it may use the Milvus server.

    pytest-xdist's controller sees ids only, not fixtures or marks; pytest_collection_modifyitems
    checks in every run that each test of the server is found here.
    """
    path, _, name = nodeid.partition("::")
    return Path(path).name in SERVER_MODULES or "server" in name.partition("[")[2].rstrip("]").split("-")


class MilvusServerScheduling(LoadScopeScheduling):
    """pytest-xdist's ``loadscope`` (the tests of a module together), except that every test of the
    Milvus server goes to one worker: the server listens on fixed ports (tests/milvus_server.py),
    so two workers cannot each start one.

    xdist's own ``loadgroup`` cannot do this under pytest 9.2: it groups by appending the group's
    name to an item's ``_nodeid``, which pytest no longer reads.
    """

    def _split_scope(self, nodeid: str) -> str:
        return "milvus-server" if on_milvus_server(nodeid) else nodeid.partition("::")[0]


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> LoadScopeScheduling | None:
    """Schedule ``pytest -n N`` (``--dist load``, as make test runs it) by MilvusServerScheduling."""
    return MilvusServerScheduling(config, log) if config.getvalue("dist") == "load" else None


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """Start a real PostgreSQL once for the session; stop it by its pid whatever happens."""
    server = PostgresServer()
    try:
        server.start()
        yield server
    finally:
        server.remove()


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """Start a real Redis once for the session; stop it by its pid whatever happens."""
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture()
def database(request: pytest.FixtureRequest) -> str:
    """Return DATABASE_URL: empty (SQLite in the data folder) or a fresh PostgreSQL database."""
    if getattr(request, "param", "sqlite") == "sqlite":
        return ""
    server: PostgresServer = request.getfixturevalue("postgres")
    return server.create_database(f"test_{uuid.uuid4().hex[:12]}")


@pytest.fixture()
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """Return (MILVUS_URI, COLLECTION): a Lite file by default, or the real server with
    ``@pytest.mark.parametrize("backend", ["lite", "server"], indirect=True)``."""
    if getattr(request, "param", "lite") == "lite":
        yield str(tmp_path / "data" / "milvus.db"), "images"
        return
    server = running(request.getfixturevalue("milvus_server"))
    prepared: PreparedCollections = request.getfixturevalue("prepared_collections")
    collection = prepared.take()
    if "milvus_server" in request.node.fixturenames:  # the test takes it itself: it may stop, restart or pause it
        prepared.settle()
    yield server.uri, collection
    if server.healthy():
        client = MilvusClient(uri=server.uri, timeout=30)
        client.drop_collection(collection)
        client.close()


@pytest.fixture()
def app(tmp_path: Path, model_dir: Path, backend: tuple[str, str], database: str) -> Iterator[Flask]:
    """Create the app on a fresh data folder, against the stores the test asks for."""
    uri, collection = backend
    settings = {"TESTING": True, "DATA_DIR": str(tmp_path / "data"), "MODEL_DIR": str(model_dir), "SECRET_KEY": "t"}
    settings["DATABASE_URL"] = database
    app = create_app({**settings, "MILVUS_URI": uri, "COLLECTION": collection})
    yield app
    app.extensions[EXTENSION].close()


@pytest.fixture()
def client(app: Flask) -> FlaskClient:
    """Return a test client of the app."""
    return app.test_client()


def wait_for_job(client: FlaskClient, url: str, timeout: float = 120) -> dict[str, Any]:
    """Poll a job's API url until it ends; return its final state."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.get(url).json
        if job["status"] not in ("queued", "running"):
            return dict(job or {})
        time.sleep(0.05)
    raise AssertionError(f"job {url} did not end in {timeout} s")


def csrf_token(client: FlaskClient, path: str = "/") -> str:
    """Fetch a page and return the CSRF token its forms carry."""
    html = client.get(path).get_data(as_text=True)
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, "the page has no CSRF token"
    return match.group(1)
