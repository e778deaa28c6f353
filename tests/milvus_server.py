"""A real Milvus standalone for the tests, from PyPI (`milvus==2.3.5`, in its own venv .venv-milvus).

The `milvus-server` wrapper lays out the data folder and writes the configuration; the tests then
run the `milvus` binary themselves, because the wrapper stops it with SIGTERM and a SIGKILL one
second later (an unclean stop that leaves stale sessions in etcd) and moves to other ports when a
port is still in TIME_WAIT, which breaks a restart.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
import urllib.request
import uuid
from collections import deque
from pathlib import Path

from pymilvus import MilvusClient
from pymilvus.exceptions import MilvusException

from webapp.config import ROOT
from webapp.services.milvus_schema import ensure

PYTHON = ROOT / ".venv-milvus" / "bin" / "python"
PORT = 19530
HEALTH = "http://127.0.0.1:9091/healthz"

# Runs in .venv-milvus: write configs/milvus.yaml with the default ports (not "resolved": the
# wrapper's probe moves to other ports while one is in TIME_WAIT) and unpack the binary.
PREPARE = """
import sys
from milvus import MilvusServer, _initialize_data_files
server = MilvusServer(wait_for_started=False)
server.set_base_dir(sys.argv[1])
# A short time tick keeps Strong reads (read-your-writes across workers) quick; a short session
# TTL lets a restarted server forget the sessions of the one that was killed.
server.config.set("proxy.timeTickInterval", int(sys.argv[2]))
server.config.set("common.session.ttl", 10)
# Every other port of this build lies below Linux's ephemeral range (32768-60999), the root
# coordinator's 53100 inside it: a client socket of the tests (Chromium, keep-alive pools) may
# hold it, and the server then panics at start ("bind: address already in use").
server.config.set("root_coord_port", 23100)
server.config.resolve_storage()
server.config.write_config()
_initialize_data_files(sys.argv[1])
print(server.get_milvus_executable_path())
"""


class MilvusServer:
    """Start, stop and restart one Milvus standalone on loopback with a given data folder."""

    def __init__(self, data_dir: Path, time_tick_ms: int = 50) -> None:
        self.data_dir = data_dir
        # Milvus's default is 200. Each loaded collection ticks too: idle with nine loaded, the
        # server kept 50% of a core busy at 20 ms, 24% at 50 ms and 9% at 200 ms (make
        # bench-milvus-idle). The server's 77 tests took as long at 50 ms as at 20 (397 against
        # 392 s) on 100 s less CPU (308 against 408).
        self.time_tick_ms = time_tick_ms
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = data_dir / "milvus.log"
        self.uri = f"http://127.0.0.1:{PORT}"
        self.binary: Path | None = None

    def start(self, timeout: float = 180, attempts: int = 3) -> None:
        """Start the server and wait until it answers; retry when it dies while starting.

        This build sometimes dies at start-up ("etcdserver: leader changed" in its embedded etcd,
        then a panic); a second launch on the same data folder comes up normally.
        """
        for attempt in range(1, attempts + 1):
            try:
                self._start_once(timeout)
                return
            except RuntimeError:
                if attempt == attempts:
                    raise

    def _start_once(self, timeout: float) -> None:
        if not PYTHON.exists():
            raise RuntimeError(f"{PYTHON} is missing: `make test` installs milvus==2.3.5 into .venv-milvus")
        if self.healthy():
            raise RuntimeError("a Milvus server already answers on 127.0.0.1:9091; stop it first")
        if self.binary is None:
            prepare = [str(PYTHON), "-c", PREPARE, str(self.data_dir), str(self.time_tick_ms)]
            out = subprocess.run(prepare, check=True, capture_output=True)
            self.binary = Path(out.stdout.decode().strip().splitlines()[-1])
        env = {
            **os.environ,
            "DEPLOY_MODE": "STANDALONE",
            "METRICS_PORT": "9091",
            "MILVUS_RUN_DIR": str(self.data_dir / "run"),
            "LD_LIBRARY_PATH": f"{self.binary.parent}:{os.environ.get('LD_LIBRARY_PATH', '')}",
        }
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [str(self.binary), "run", "standalone"],
                cwd=self.data_dir,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while not (self.healthy() and self._answers()):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"Milvus did not start; see {self.log}")
            time.sleep(0.5)

    def _answers(self) -> bool:
        """Tell whether the proxy answers a real call (healthz says OK a little before it does)."""
        try:
            client = MilvusClient(uri=self.uri, timeout=5)
            client.list_collections()
            client.close()
            return True
        except MilvusException:
            return False

    def stop(self, grace: float = 5) -> None:
        """Stop the server by its pid with SIGINT; SIGKILL what is left after ``grace`` seconds.

        This Milvus build never finishes its own shutdown (its nodes keep retrying the root
        coordinator it already stopped): the wrapper kills it after one second, we after five.
        """
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.proc = None

    @staticmethod
    def healthy() -> bool:
        """Tell whether a Milvus answers OK on the health port."""
        try:
            with urllib.request.urlopen(HEALTH, timeout=1) as response:
                return bool(response.read().strip() == b"OK")
        except OSError:
            return False


class PreparedCollections:
    """Empty collections made ready on the server while tests run, a few ahead of the tests that take them.

    Loading a collection takes this server about 2 s however small it is (its query coordinator
    looks at load progress once a second, and a new collection needs two looks), and the app's
    first call waits for it (services/milvus_schema.py, ``ensure``): 75 tests of the server paid
    that one after another. Collections for the next tests are made and loaded by the same
    ``ensure``, several at once (the coordinator's looks serve them all), in threads while tests
    run, so a test's app finds its collection ready: the app's own path, met a little earlier.
    """

    AHEAD = 8  # in the making: with 4, runs of short tests (0.3 s each) still waited for theirs

    def __init__(self, server: MilvusServer, dim: int, hnsw_m: int, ef_construction: int) -> None:
        self.server = server
        self.shape = (dim, hnsw_m, ef_construction)
        self._making: deque[tuple[threading.Thread, list[str]]] = deque()  # oldest first

    def take(self) -> str:
        """Return the name of an empty collection, loaded unless making it failed (then a fresh
        name: the app makes it), and keep AHEAD more in the making."""
        while len(self._making) <= self.AHEAD:
            made: list[str] = []
            thread = threading.Thread(target=self._make, args=(fresh_name(), made), daemon=True)
            thread.start()
            self._making.append((thread, made))
        thread, made = self._making.popleft()
        thread.join(30)
        return made[0] if made and not thread.is_alive() else fresh_name()

    def settle(self, timeout: float = 30) -> None:
        """Wait until every collection in the making is ready or failed, before a test that stops,
        restarts or pauses the server, so that no thread races it."""
        for thread, _ in self._making:
            thread.join(timeout)

    def _make(self, name: str, made: list[str]) -> None:
        try:
            client = MilvusClient(uri=self.server.uri, timeout=30, dedicated=True)
            try:
                ensure(client, name, *self.shape)
            finally:
                client.close()
        except Exception:  # the server stopped or paused meanwhile: the test that takes it gets a fresh name
            return
        made.append(name)


def fresh_name() -> str:
    """Return a collection name no test has used."""
    return f"test_{uuid.uuid4().hex[:12]}"
