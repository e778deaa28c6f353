"""Real PostgreSQL and Redis servers for the tests, from Debian's packages (make install-servers).

Each runs on a free loopback port with a temporary data folder and is stopped by its pid.
PostgreSQL refuses to run as root, so as root it runs as the ``postgres`` user (runuser).
"""

from __future__ import annotations

import glob
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FLASK = str(Path(sys.executable).with_name("flask"))
ABOVE_MILVUS = 24000


def free_port() -> int:
    """Return a port nobody uses, below the kernel's range for the local ports of outgoing connections.

    Port 0 would give one from that range, and any connection the suite opens could take it before
    the server started on it binds it (a worker's metrics server once met "Address already in use").
    Below the range, only another test's server could. The ports start above the Milvus server's
    fixed ones (23100 the highest, tests/milvus_server.py), which it needs free at each restart.
    """
    ephemeral = Path("/proc/sys/net/ipv4/ip_local_port_range")
    low = int(ephemeral.read_text().split()[0]) if ephemeral.exists() else 32768
    for _ in range(100):
        port = random.randrange(ABOVE_MILVUS, low)
        with socket.socket() as sock:
            try:
                sock.bind(("0.0.0.0", port))
            except OSError:
                continue
        return port
    raise RuntimeError(f"no free port found between {ABOVE_MILVUS} and {low}")


def _wait_for_port(
    port: int, proc: subprocess.Popen[bytes], log: Path, timeout: float = 60, address: str = "127.0.0.1"
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited at start; see {log}:\n{log.read_text()[-2000:]}")
        with socket.socket() as sock:
            if sock.connect_ex((address, port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"the server did not listen on {port} in {timeout} s; see {log}")


def _stop(proc: subprocess.Popen[bytes] | None, sig: signal.Signals, timeout: float = 30) -> None:
    if proc is not None and proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class CutOffHost:
    """A second host on this machine that can be cut off from the network.

    A network namespace joined to this one by a veth pair (``ip netns``, root only). A server
    started in it with ``exec_prefix`` listens on ``address``. ``cut`` takes the link down: what is
    sent to the host is then dropped unanswered, as when a machine is powered off or partitioned
    away; a stopped process would not do, as its kernel still acknowledges what it is sent.
    """

    def __init__(self) -> None:
        pid = os.getpid()  # each of pytest's workers has its own names and subnet
        self.name = f"webapp-{pid}"
        self.link, self.peer = f"wa{pid}h"[:15], f"wa{pid}n"[:15]
        subnet = f"10.231.{pid % 250}"
        self.gateway, self.address = f"{subnet}.1", f"{subnet}.2"  # this machine's side, the host's side

    @staticmethod
    def available() -> bool:
        """Whether this process may make network namespaces (root, with iproute2)."""
        return os.geteuid() == 0 and shutil.which("ip") is not None

    def start(self) -> None:
        self.remove()  # a namespace left by a killed run of the same pid
        for argv in (
            ["ip", "netns", "add", self.name],
            ["ip", "link", "add", self.link, "type", "veth", "peer", "name", self.peer],
            ["ip", "link", "set", self.peer, "netns", self.name],
            ["ip", "addr", "add", f"{self.gateway}/30", "dev", self.link],
            ["ip", "link", "set", self.link, "up"],
            [*self.exec_prefix, "ip", "addr", "add", f"{self.address}/30", "dev", self.peer],
            [*self.exec_prefix, "ip", "link", "set", self.peer, "up"],
            [*self.exec_prefix, "ip", "link", "set", "lo", "up"],
        ):
            subprocess.run(argv, check=True, capture_output=True)

    @property
    def exec_prefix(self) -> list[str]:
        return ["ip", "netns", "exec", self.name]

    def cut(self) -> None:
        """Take the host's end of the link down: this machine keeps its route, and nothing answers.

        (Taking this machine's end down would drop the route, and the sandbox's default route
        leads to a proxy that answers anything.)
        """
        subprocess.run([*self.exec_prefix, "ip", "link", "set", self.peer, "down"], check=True)

    def mend(self) -> None:
        subprocess.run([*self.exec_prefix, "ip", "link", "set", self.peer, "up"], check=True)

    def remove(self) -> None:
        """Delete the namespace (which deletes its end of the pair, and so both)."""
        subprocess.run(["ip", "netns", "del", self.name], capture_output=True)
        subprocess.run(["ip", "link", "del", self.link], capture_output=True)


class PostgresServer:
    """One PostgreSQL cluster in a temporary folder, trust authentication on loopback only.

    The folder is made by mkdtemp under the system's temporary folder, not under pytest's
    (which is private to root), so that the ``postgres`` user can reach it. On a ``CutOffHost``,
    the server runs in that host's namespace and trusts connections from this machine's side.
    """

    def __init__(self, host: CutOffHost | None = None) -> None:
        bins = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"))
        if not bins:
            raise RuntimeError("PostgreSQL is not installed: run `make install-servers`")
        self.bin = Path(bins[-1]).parent
        self.folder = Path(tempfile.mkdtemp(prefix="webapp-postgres-"))
        self.data = self.folder / "pgdata"
        self.sockets = self.folder / "sockets"
        self.log = self.folder / "postgres.log"
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.host = host
        self.address = host.address if host else "127.0.0.1"

    def _as_postgres(self, argv: list[str]) -> list[str]:
        argv = ["runuser", "-u", "postgres", "--", *argv] if os.geteuid() == 0 else argv
        return [*self.host.exec_prefix, *argv] if self.host else argv

    def start(self) -> None:
        """Create the cluster and start the server."""
        self.sockets.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            shutil.chown(self.folder, "postgres")
            shutil.chown(self.sockets, "postgres")
        initdb = [str(self.bin / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync"]
        subprocess.run(self._as_postgres(initdb), check=True, capture_output=True)
        if self.host:
            with open(self.data / "pg_hba.conf", "a") as hba:
                hba.write(f"host all all {self.host.gateway}/32 trust\n")
        self._run()

    def _run(self) -> None:
        """Start the server on this cluster and wait until it accepts connections."""
        argv = [str(self.bin / "postgres"), "-D", str(self.data), "-p", str(self.port), "-k", str(self.sockets)]
        argv += ["-c", f"listen_addresses={self.address}", "-c", "fsync=off", "-c", "max_connections=200"]
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(self._as_postgres(argv), stdout=out, stderr=subprocess.STDOUT)
        _wait_for_port(self.port, self.proc, self.log, address=self.address)
        self._wait_ready()

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            ready = [str(self.bin / "pg_isready"), "-h", self.address, "-p", str(self.port), "-U", "postgres"]
            if subprocess.run(ready, capture_output=True).returncode == 0:
                return
            time.sleep(0.1)
        raise RuntimeError(f"PostgreSQL did not get ready; see {self.log}")

    def create_database(self, name: str) -> str:
        """Create a database and return its SQLAlchemy URL."""
        createdb = [str(self.bin / "createdb"), "-h", self.address, "-p", str(self.port), "-U", "postgres", name]
        subprocess.run(createdb, check=True, capture_output=True)
        return self.url(name)

    def url(self, name: str) -> str:
        """Return the SQLAlchemy URL of a database on this server."""
        return f"postgresql+psycopg://postgres@{self.address}:{self.port}/{name}"

    def pid(self) -> int | None:
        """Return the postmaster's pid (runuser, its parent, does not pass signals on)."""
        try:
            return int((self.data / "postmaster.pid").read_text().split()[0])
        except (FileNotFoundError, IndexError, ValueError):
            return None

    def stop(self) -> None:
        """Stop the server (SIGINT: PostgreSQL's fast shutdown) and wait until it has exited."""
        pid = self.pid()
        if pid is not None:
            try:
                os.kill(pid, signal.SIGINT)
            except ProcessLookupError:
                pass
            deadline = time.monotonic() + 30
            while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
                time.sleep(0.05)
        _stop(self.proc, signal.SIGKILL)

    def remove(self) -> None:
        """Stop the server and delete its folder."""
        self.stop()
        shutil.rmtree(self.folder, ignore_errors=True)

    def restart(self) -> None:
        """Start the server again on the same port and data folder."""
        self._run()


class RedisServer:
    """One Redis on loopback, nothing persisted."""

    def __init__(self, folder: Path) -> None:
        binary = shutil.which("redis-server") or "/usr/bin/redis-server"
        if not Path(binary).exists():
            raise RuntimeError("Redis is not installed: run `make install-servers`")
        self.binary = binary
        self.folder = folder
        self.log = folder / "redis.log"
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start the server and wait until it listens."""
        self.folder.mkdir(parents=True, exist_ok=True)
        argv = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        argv += ["--dir", str(self.folder)]
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
        _wait_for_port(self.port, self.proc, self.log)

    def stop(self) -> None:
        """Stop the server."""
        _stop(self.proc, signal.SIGTERM)


class Worker:
    """`flask --app wsgi worker`, as an ingestion machine runs it."""

    def __init__(self, name: str, env: dict[str, str], log: Path) -> None:
        self.log = log
        self.metrics_url = ""
        with open(log, "wb") as out:
            argv = [FLASK, "--app", "wsgi", "worker", "--hostname", f"{name}@%h"]
            # A session of its own, so kill() reaches its pool's processes as well as Celery's main one.
            self.proc = subprocess.Popen(
                argv, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )

    def wait_ready(self, timeout: float = 90) -> None:
        """Wait until Celery says it is ready to take tasks."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if "ready." in self.log.read_text():
                return
            assert self.proc.poll() is None, self.log.read_text()[-3000:]
            time.sleep(0.2)
        raise AssertionError(f"worker did not start:\n{self.log.read_text()[-3000:]}")

    def kill(self) -> None:
        """SIGKILL to every process of the worker: no warm shutdown, no acknowledgement, as when a machine goes away.

        Killing Celery's main process alone would leave its pool's processes to finish their chunks
        as orphans, so a job could end before Redis hands the dead worker's chunks to another.
        """
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)

    def stop(self) -> None:
        """Warm shutdown (SIGTERM), then SIGKILL if it hangs."""
        _stop(self.proc, signal.SIGTERM, timeout=60)
