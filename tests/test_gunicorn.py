"""The app as `make run` serves it: Gunicorn with gunicorn.conf.py, a real port, real requests."""

from __future__ import annotations

import gc
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests

from tests.conftest import near_duplicate, noise_images
from tests.servers import free_port
from webapp.config import ROOT, search_processes
from webapp.services.query_helper_process import PROGRAM

GUNICORN = str(Path(sys.executable).with_name("gunicorn"))


def environment(data_dir: Path, model_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WEBAPP_")}
    env.update({"WEBAPP_DATA_DIR": str(data_dir), "WEBAPP_MODEL_DIR": str(model_dir), **extra})
    return env


class Server:
    """A Gunicorn process serving the app on a free loopback port."""

    def __init__(self, data_dir: Path, model_dir: Path, **extra: str) -> None:
        self.url = f"http://127.0.0.1:{free_port()}"
        self.data_dir, self.model_dir = data_dir, model_dir
        env = environment(data_dir, model_dir, WEBAPP_BIND=self.url.removeprefix("http://"), **extra)
        data_dir.mkdir(parents=True, exist_ok=True)
        # Its log goes to a file: a pipe nobody reads would fill up and block the server.
        self.log = data_dir / f"gunicorn-{self.url.rsplit(':', 1)[1]}.log"
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(
                [GUNICORN, "-c", "gunicorn.conf.py"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            try:
                answer = requests.get(f"{self.url}/api/v1/stats", timeout=10)
                if answer.ok or answer.status_code == 401:  # 401: serving, with access control on
                    return
            except requests.RequestException:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError("gunicorn did not start")

    def workers(self) -> list[int]:
        """Return the pids of Gunicorn's worker processes."""
        children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text().split()
        return [int(pid) for pid in children]

    def query_helpers(self) -> list[int]:
        """Return the pids of the workers' query helpers (services/query_helpers.py)."""
        found = []
        for worker in self.workers():
            for task in Path(f"/proc/{worker}/task").iterdir():
                for pid in (task / "children").read_text().split():
                    if PROGRAM.encode() in Path(f"/proc/{pid}/cmdline").read_bytes():
                        found.append(int(pid))
        return found

    def stop(self) -> str:
        """Stop gracefully (SIGTERM, as a supervisor would) and return what it logged.

        A stopping worker keeps a kept-alive connection open for up to 2 s (Gunicorn 27), and
        `requests.get` leaves its connection open until the garbage collector closes it: collect
        first, so that the connections the test no longer holds are closed, not waited for.
        """
        gc.collect()
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=60)
        return self.log.read_text()


@pytest.fixture()
def server(tmp_path: Path, model_dir: Path) -> Iterator[Server]:
    server = Server(tmp_path, model_dir)
    yield server
    if server.proc.poll() is None:
        server.stop()


def test_add_and_search_over_http_and_survive_a_restart(
    server: Server, tmp_path: Path, model_dir: Path, photos: dict[str, bytes]
) -> None:
    names = ["coffee", "chelsea", "rocket", "moon", "astronaut"]
    for name in names:
        added = requests.post(f"{server.url}/api/v1/images", files={"image": (f"{name}.jpg", photos[name])})
        assert added.status_code == 201
    found = requests.post(
        f"{server.url}/api/v1/search",
        files={"image": ("q.jpg", near_duplicate(photos["rocket"]))},
        data={"top_k": "3"},
    ).json()
    assert [hit["filename"] for hit in found["results"]][:1] == ["rocket.jpg"]
    page = requests.get(server.url + "/")
    assert page.ok and "5 images" in page.text
    assert requests.get(f"{server.url}/api/docs").ok
    helpers = server.query_helpers()
    assert len(helpers) == search_processes("auto", 1)  # 3 on two cores
    log = server.stop()
    assert server.proc.returncode == 0, log
    assert not [pid for pid in helpers if Path(f"/proc/{pid}").exists()], "query helpers outlived the server"

    # Files uploaded for a job that never came to be, two hours ago: each worker's housekeeping
    # (started by gunicorn.conf.py) removes them as it starts, nobody asking.
    orphan = tmp_path / "images" / "uploads" / ("e" * 32)
    orphan.mkdir(parents=True)
    (orphan / "000000").write_bytes(b"left behind")
    os.utime(orphan, (time.time() - 7200, time.time() - 7200))
    again = Server(tmp_path, model_dir, WEBAPP_SEARCH_PROCESSES="0")  # its helpers were checked above
    try:
        assert requests.get(f"{again.url}/api/v1/stats").json()["count"] == len(names)
        deadline = time.monotonic() + 30
        while orphan.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not orphan.exists()
    finally:
        again.stop()


def test_several_workers_on_a_lite_file_are_refused_at_start(tmp_path: Path, model_dir: Path) -> None:
    env = environment(tmp_path, model_dir, WEBAPP_WORKERS="3", WEBAPP_BIND=f"127.0.0.1:{free_port()}")
    result = subprocess.run(
        [GUNICORN, "-c", "gunicorn.conf.py"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode != 0
    assert "Refusing to start 3 workers on the Milvus Lite file" in result.stderr
    assert "WEBAPP_MILVUS_URI" in result.stderr
    assert not (tmp_path / "milvus.db").exists()


def wait_until(predicate: Callable[[], bool], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def flask(data_dir: Path, model_dir: Path, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
    """Run a `flask --app wsgi` command as an operator would."""
    return subprocess.run(
        [str(Path(sys.executable).with_name("flask")), "--app", "wsgi", *args],
        cwd=ROOT,
        env=environment(data_dir, model_dir, **extra),
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_a_job_cut_off_by_a_killed_worker_resumes_without_duplicates(tmp_path: Path, model_dir: Path) -> None:
    folder = tmp_path / "import" / "crash"
    folder.mkdir(parents=True)
    for i, data in enumerate(noise_images(300, seed=7)):
        (folder / f"{i:04d}.jpg").write_bytes(data)
    data_dir = tmp_path / "data"
    # No query helpers: nothing here searches, and each worker start (three) would start three.
    roots = {"WEBAPP_IMPORT_ROOTS": str(tmp_path / "import"), "WEBAPP_SEARCH_PROCESSES": "0"}
    server = Server(data_dir, model_dir, **roots)
    job = requests.post(f"{server.url}/api/v1/jobs", json={"folder": str(folder)}).json()
    url = f"{server.url}{job['url']}"
    try:
        wait_until(lambda: requests.get(url).json()["processed"] >= 100)
        (worker,) = server.workers()
        os.kill(worker, signal.SIGKILL)  # no flush, no goodbye
        wait_until(lambda: server.workers() not in ([], [worker]))  # Gunicorn starts a new worker
        state = requests.get(url).json()
        assert state["status"] == "interrupted"
        assert 100 <= state["processed"] < 300
    finally:
        server.stop()

    # With the server stopped (it holds the Lite file), the operator checks and repairs.
    repaired = flask(data_dir, model_dir, "check", "--repair")  # reports, then repairs
    assert repaired.returncode == 0 and "image files" in repaired.stdout, repaired.stdout + repaired.stderr
    assert flask(data_dir, model_dir, "check").stdout.endswith("consistent\n")

    server = Server(data_dir, model_dir, **roots)
    try:
        url = f"{server.url}{job['url']}"
        assert requests.get(url).json()["status"] == "interrupted"
        assert requests.post(f"{url}/resume").status_code == 202
        wait_until(lambda: requests.get(url).json()["status"] == "done")
        final = requests.get(url).json()
        assert final["processed"] == final["total"] == 300
        assert final["added"] + final["duplicates"] == 300 and final["failed"] == 0
        assert requests.get(f"{server.url}/api/v1/stats").json()["count"] == 300
    finally:
        server.stop()
    after = flask(data_dir, model_dir, "check")
    assert after.returncode == 0 and "300 image files, 300 vectors" in after.stdout, after.stdout
    images = data_dir / "images"
    assert len(list((images / "originals").rglob("*.jpg"))) == 300
    # A job leaves JPEGs' thumbnails to their first view; the repair above made those of what it re-embedded.
    assert len(list((images / "thumbnails").rglob("*.jpg"))) < 300


def test_stalled_request_bodies_cannot_hold_every_thread(tmp_path: Path, model_dir: Path) -> None:
    server = Server(tmp_path, model_dir, WEBAPP_THREADS="2", WEBAPP_BODY_IDLE_SECONDS="2", WEBAPP_SEARCH_PROCESSES="0")
    host = server.url.removeprefix("http://")
    stalled = []
    try:
        for _ in range(8):  # headers, the start of a body, then nothing
            sock = socket.create_connection(("127.0.0.1", int(host.rsplit(":", 1)[1])))
            sock.sendall(
                f"POST /api/v1/images HTTP/1.1\r\nHost: {host}\r\nContent-Type: multipart/form-data; boundary=b\r\n"
                "Content-Length: 100000\r\n\r\n--b\r\n".encode()
            )
            stalled.append(sock)
        # Still open, yet the server answers others: each stalled body ends with 408 after 2 s.
        assert requests.get(f"{server.url}/api/v1/health", timeout=60).status_code == 200
        for sock in stalled:
            sock.settimeout(60)
            assert sock.recv(4096).startswith(b"HTTP/1.1 408"), "a stalled body was not ended"
        assert requests.get(f"{server.url}/api/v1/stats", timeout=60).json()["count"] == 0  # nothing stored
    finally:
        for sock in stalled:
            sock.close()
        server.stop()


def test_a_chunked_json_body_is_read_only_up_to_its_bound(tmp_path: Path, model_dir: Path) -> None:
    # A JSON body is parsed whole before it is validated: 30 MB of numbers took a worker 77 s and
    # 5 GB. A body with a length is refused by it; a chunked one is read up to the bound, then refused.
    def chunks(count: int) -> Iterator[bytes]:
        yield b'{"folder": "nope", "z": ['
        for _ in range(count):
            yield b"0," * 50_000
        yield b"0]}"

    headers = {"Content-Type": "application/json"}
    server = Server(tmp_path, model_dir, WEBAPP_SEARCH_PROCESSES="0")  # no query to embed
    try:
        big = requests.post(f"{server.url}/api/v1/jobs", data=chunks(30), headers=headers, timeout=30)
        assert big.status_code == 413 and "at most 1 MiB" in big.json()["message"], big.text
        small = requests.post(f"{server.url}/api/v1/jobs", data=chunks(1), headers=headers, timeout=30)
        assert small.status_code == 422 and small.json()["errors"]["json_or_multipart"]["z"] == ["Unknown field."]
        assert requests.get(f"{server.url}/api/v1/health", timeout=10).status_code == 200
    finally:
        server.stop()
