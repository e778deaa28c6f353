"""Search queries embedded in helper processes: the same vectors, errors as errors, helpers replaced."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from flask import Flask
from PIL import Image
from prometheus_client import REGISTRY

from tests.conftest import INT8, ROOT, csrf_token, jpeg, near_duplicate
from webapp import create_app
from webapp.config import search_processes
from webapp.errors import InvalidImage, InvalidInput, ModelMissing
from webapp.runtime import EXTENSION
from webapp.services import overlap, query_helpers
from webapp.services.embedding import Embedder
from webapp.services.imaging import Box, QueryImage
from webapp.services.overlap import Overlaps
from webapp.services.query_helpers import QueryHelpers


def _nowhere(data: bytes, box: Box | None) -> tuple[QueryImage, np.ndarray]:
    raise AssertionError("a query was embedded in the test's process")


def _start(model_dir: Path, processes: int) -> QueryHelpers:
    return QueryHelpers(str(model_dir), INT8, 64_000_000, processes=processes, here=_nowhere)


@pytest.fixture(scope="module")
def helpers(model_dir: Path) -> Iterator[QueryHelpers]:
    started = _start(model_dir, 2)
    yield started
    started.close()


def test_a_helper_gives_the_vector_and_the_query_image_the_app_would(
    helpers: QueryHelpers, model_dir: Path, photos: dict[str, bytes]
) -> None:
    here = Embedder(model_dir, INT8)
    for data, box in ((photos["rocket"], None), (photos["coffee"], Box(10, 20, 200, 150))):
        decoded, expected = here.embed(data, box)
        query, vector = helpers.embed_in_helper(data, box)
        assert query == QueryImage.of(decoded)
        assert float(np.dot(vector, expected)) > 0.9999


def test_concurrent_queries_each_get_their_own_answer(helpers: QueryHelpers, photos: dict[str, bytes]) -> None:
    names = ["rocket", "coffee", "chelsea", "astronaut", "moon", "camera"]
    alone = {name: helpers.embed_in_helper(photos[name])[1] for name in names}
    found: dict[str, np.ndarray] = {}

    def search(name: str) -> None:
        found[name] = helpers.embed_in_helper(photos[name])[1]

    threads = [threading.Thread(target=search, args=(name,)) for name in names * 2]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(float(np.dot(found[name], alone[name])) > 0.9999 for name in names)


def test_an_unreadable_image_raises_the_domain_error_from_the_helper(helpers: QueryHelpers) -> None:
    with pytest.raises(InvalidImage, match="not an image"):
        helpers.embed_in_helper(b"plain text, not an image")
    with pytest.raises(InvalidInput, match="region"):
        helpers.embed_in_helper(jpeg(Image.new("RGB", (64, 64), "red")), Box(0, 0, 4, 4))


def test_a_killed_helper_is_replaced_and_the_query_still_answered(model_dir: Path, photos: dict[str, bytes]) -> None:
    restarts = _sample("webapp_query_helper_restarts_total")
    helpers = _start(model_dir, 1)
    try:
        first = helpers.processes[0]
        _, expected = helpers.embed_in_helper(photos["rocket"])
        os.kill(first.pid, signal.SIGKILL)
        first.wait(10)
        _, vector = helpers.embed_in_helper(photos["rocket"])  # the dead one fails, a new one answers
        assert float(np.dot(vector, expected)) > 0.9999
        assert len(helpers.processes) == 1 and helpers.processes[0].pid != first.pid
        assert _sample("webapp_query_helper_restarts_total") == restarts + 1
    finally:
        helpers.close()
    assert first.poll() is not None and all(p.poll() is not None for p in helpers.processes)


def test_a_helper_writes_no_metric_files_where_gunicorns_workers_do(
    model_dir: Path, photos: dict[str, bytes], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))  # as gunicorn.conf.py sets it
    helpers = _start(model_dir, 1)
    try:
        helpers.embed_in_helper(photos["rocket"])
    finally:
        helpers.close()
    assert list(tmp_path.iterdir()) == []


def test_a_helper_loads_neither_flask_nor_sqlalchemy() -> None:
    # What a helper process imports: its own module, then the embedder's. Flask and SQLAlchemy
    # would cost each helper about 24 MB of memory it never uses.
    code = (
        "import sys, webapp.services.query_helper_process, webapp.services.embedding; "
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'flask', 'sqlalchemy', 'werkzeug', 'jinja2'}))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


SCRIPT = """
import sys
sys.path.insert(0, {root!r})
from webapp.services.query_helpers import QueryHelpers

def nowhere(data, box):
    raise AssertionError("embedded in the script's process")

helpers = QueryHelpers({model_dir!r}, {model!r}, 64_000_000, processes=1, here=nowhere)
query, vector = helpers.embed_in_helper(open(sys.argv[1], "rb").read())
helpers.close()
print(query.width, query.height, len(vector))
"""


def test_a_script_without_a_main_guard_can_use_helpers_from_any_folder(
    model_dir: Path, photos: dict[str, bytes], tmp_path: Path
) -> None:
    """A spawned child would run the script again (its top level starting helpers of its own)."""
    script, photo = tmp_path / "search.py", tmp_path / "rocket.jpg"
    script.write_text(SCRIPT.format(root=str(ROOT), model_dir=str(model_dir), model=INT8))
    photo.write_bytes(photos["rocket"])
    done = subprocess.run(
        [sys.executable, str(script), str(photo)], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    width, height = Image.open(io.BytesIO(photos["rocket"])).size
    assert done.stdout.split() == [str(width), str(height), "1280"]


def test_closed_helpers_stop_their_processes_and_refuse_queries(model_dir: Path, photos: dict[str, bytes]) -> None:
    helpers = _start(model_dir, 2)
    processes = helpers.processes
    helpers.close()
    assert all(p.poll() is not None for p in processes)
    with pytest.raises(ModelMissing, match="stopping"):
        helpers.embed(photos["rocket"])


def test_a_missing_model_is_said_at_start(tmp_path: Path) -> None:
    with pytest.raises(ModelMissing, match="does not exist"):
        _start(tmp_path, 1)


class _Fake:
    """Stands for a helper: records the queries it embedded, or dies (EOFError) as a killed one does."""

    def __init__(self, embedded: list[bytes], dies: bool = False) -> None:
        self.dies, self.embedded = dies, embedded
        self.process = SimpleNamespace(pid=0)
        self.called = threading.Event()
        self.release = threading.Event()  # a dying one dies when this is set (at once unless cleared)
        self.release.set()

    def call(self, data: bytes, box: Any) -> tuple[Any, QueryImage, np.ndarray]:
        self.called.set()
        if self.dies:
            self.release.wait(5)
            raise EOFError
        self.embedded.append(data)
        return None, QueryImage("helper", 1, 1, "image/jpeg"), np.zeros(4, np.float32)

    def stop(self) -> None:
        pass


def _fake_helpers(
    monkeypatch: pytest.MonkeyPatch, *fakes: _Fake, replacement: _Fake | None, here: list[bytes] | None = None
) -> QueryHelpers:
    """Return helpers made of ``fakes``; a dead one's ``replacement`` starts (None: cannot start)."""

    def embed_here(data: bytes, box: Box | None) -> tuple[QueryImage, np.ndarray]:
        (here if here is not None else []).append(data)
        return QueryImage("here", 1, 1, "image/jpeg"), np.zeros(4, np.float32)

    helpers = QueryHelpers.__new__(QueryHelpers)
    helpers._here, helpers._free = embed_here, threading.Condition()
    helpers._idle, helpers._all = list(fakes), list(fakes)  # type: ignore[arg-type]
    helpers._overlaps, helpers._closed = Overlaps(), False
    helpers._size, helpers._retry_at = len(fakes), 0.0

    def start() -> _Fake:
        if helpers.replacement is None:  # type: ignore[attr-defined]
            raise OSError(12, "Cannot allocate memory")
        helpers._all.append(helpers.replacement)  # type: ignore[attr-defined]
        return helpers.replacement  # type: ignore[attr-defined]

    helpers.replacement = replacement  # type: ignore[attr-defined]

    monkeypatch.setattr(helpers, "_start", start)
    return helpers


def test_a_query_is_tried_once_more_then_blamed_on_the_image(monkeypatch: pytest.MonkeyPatch) -> None:
    embedded: list[bytes] = []
    helpers = _fake_helpers(monkeypatch, _Fake(embedded, dies=True), replacement=_Fake(embedded))
    assert helpers.embed_in_helper(b"x")[0].sha256 == "helper"  # the dead helper's replacement answered
    assert embedded == [b"x"]
    helpers = _fake_helpers(monkeypatch, _Fake(embedded, dies=True), replacement=_Fake(embedded, dies=True))
    with pytest.raises(InvalidImage, match="stopped the process"):
        helpers.embed_in_helper(b"y")


def test_with_no_helper_left_queries_are_embedded_here_not_waited_for(monkeypatch: pytest.MonkeyPatch) -> None:
    here: list[bytes] = []
    embedded: list[bytes] = []
    helpers = _fake_helpers(monkeypatch, _Fake(embedded, dies=True), replacement=None, here=here)
    with pytest.raises(ModelMissing, match="no query helper is left"):
        helpers.embed_in_helper(b"x")  # its helper died embedding it: not tried here
    assert helpers.processes == [] and here == []
    assert helpers.embed_in_helper(b"y")[0].sha256 == "here"
    assert here == [b"y"]
    now = time.monotonic()
    helpers.replacement = _Fake(embedded)  # type: ignore[attr-defined]  # a helper could start again...
    monkeypatch.setattr(query_helpers.time, "monotonic", lambda: now + query_helpers.RETRY_SECONDS / 2)
    helpers.embed_in_helper(b"too soon")
    assert here[-1] == b"too soon" and helpers.processes == []
    monkeypatch.setattr(query_helpers.time, "monotonic", lambda: now + query_helpers.RETRY_SECONDS)
    assert helpers.embed_in_helper(b"later")[0].sha256 == "helper"  # ...and is started once it is time
    assert embedded[-1] == b"later" and len(helpers.processes) == 1
    monkeypatch.undo()

    # The last helper dies while another query waits for it: that query is embedded here.
    dying = _Fake(embedded, dies=True)
    dying.release.clear()
    helpers = _fake_helpers(monkeypatch, dying, replacement=None, here=here)
    first = threading.Thread(target=lambda: pytest.raises(ModelMissing, helpers.embed_in_helper, b"first"), daemon=True)
    first.start()
    assert dying.called.wait(5)
    second = threading.Thread(target=helpers.embed_in_helper, args=(b"second",), daemon=True)
    second.start()  # waits for a free helper
    time.sleep(0.1)
    dying.release.set()
    first.join(5)
    second.join(5)
    assert not first.is_alive() and not second.is_alive() and here == [b"y", b"too soon", b"second"]


def test_a_query_alone_is_embedded_here_and_overlapping_ones_in_helpers(monkeypatch: pytest.MonkeyPatch) -> None:
    here: list[bytes] = []
    embedded: list[bytes] = []
    now = [1000.0]
    monkeypatch.setattr(overlap.time, "monotonic", lambda: now[0])
    helpers = _fake_helpers(monkeypatch, _Fake(embedded), _Fake(embedded), replacement=_Fake(embedded), here=here)
    helpers.embed(b"alone")
    with helpers._overlaps.call():  # a query in flight...
        helpers.embed(b"beside it")
    now[0] += overlap.CALM / 2
    helpers.embed(b"soon after")  # ...and for a while after an overlap, in helpers
    now[0] += overlap.CALM
    helpers.embed(b"once calm")
    assert here == [b"alone", b"once calm"] and embedded == [b"beside it", b"soon after"]


def test_auto_means_one_helper_per_core_and_one_more_with_one_worker(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "sched_getaffinity", lambda _: {0, 1})
    assert search_processes("auto", 1) == 3
    assert search_processes("auto", "3") == 0  # several workers spread the Python already
    monkeypatch.setattr(os, "sched_getaffinity", lambda _: set(range(16)))
    assert search_processes("auto", 1) == 4
    monkeypatch.setattr(os, "sched_getaffinity", lambda _: {0})
    assert search_processes("auto", 1) == 0
    assert search_processes("2", 1) == 2 and search_processes(0, 1) == 0


@pytest.fixture()
def helped_app(tmp_path: Path, model_dir: Path) -> Iterator[Flask]:
    settings = {"TESTING": True, "DATA_DIR": str(tmp_path / "data"), "MODEL_DIR": str(model_dir), "SECRET_KEY": "t"}
    app = create_app({**settings, "SEARCH_PROCESSES": 2})
    yield app
    app.extensions[EXTENSION].close()


def test_api_searches_go_through_the_helpers_and_a_page_search_keeps_its_pixels(
    helped_app: Flask, photos: dict[str, bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    client = helped_app.test_client()
    for name in ("rocket", "coffee", "chelsea"):
        assert client.post("/api/v1/images", data={"image": (_io(photos[name]), f"{name}.jpg")}).status_code == 201
    runtime = helped_app.extensions[EXTENSION]
    helpers = runtime.library.embedder.query_helpers()
    assert helpers is not None and len(helpers.processes) == 2
    monkeypatch.setattr(helpers, "_here", _nowhere)  # as if every query overlapped another:
    monkeypatch.setattr(helpers._overlaps, "calm", 1e9)
    helpers._overlaps.overlapped = time.monotonic()
    in_helpers = _sample("webapp_search_queries_total", where="helper")
    found = client.post("/api/v1/search", data={"image": (_io(near_duplicate(photos["rocket"])), "q.jpg")})
    assert found.status_code == 200 and found.json["results"][0]["filename"] == "rocket.jpg"
    region = {"x": "0", "y": "0", "width": "200", "height": "200"}
    boxed = client.post("/api/v1/search", data={"image": (_io(photos["coffee"]), "q.jpg"), **region})
    assert boxed.status_code == 200 and boxed.json["region"]["width"] == 200
    bad = client.post("/api/v1/search", data={"image": (_io(b"not an image"), "q.jpg")})
    assert bad.status_code == 422 and "not an image" in bad.json["message"]
    assert _sample("webapp_search_queries_total", where="helper") == in_helpers + 3
    form = {"csrf_token": csrf_token(client), "image": (_io(photos["chelsea"]), "q.jpg"), "top_k": "3"}
    page = client.post("/search", data=form)
    assert page.status_code == 200 and "data:image/jpeg;base64," in page.get_data(as_text=True)
    processes = helpers.processes
    runtime.close()
    assert all(p.poll() is not None for p in processes)


def _sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def _io(data: bytes) -> io.BytesIO:
    return io.BytesIO(data)
