"""What the benchmarks share: servers on free loopback ports, closed-loop clients, percentiles, memory."""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import requests

from tests.servers import free_port  # below the kernel's range for outgoing connections' ports
from webapp.services.query_helper_process import PROGRAM

# How a helper's command line reads: this code's, or an older checkout's (multiprocessing's spawn).
HELPER_COMMANDS = (PROGRAM.encode(), b"multiprocessing.spawn")

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def quantiles(samples: Sequence[float]) -> dict[str, float]:
    """Return p50/p95/p99 of millisecond samples (NaN when there are none)."""
    if not samples:
        return {"p50": float("nan"), "p95": float("nan"), "p99": float("nan")}
    q = np.percentile(samples, [50, 95, 99])
    return {"p50": float(q[0]), "p95": float(q[1]), "p99": float(q[2])}


class Server:
    """A web server process (Gunicorn or Uvicorn) on a free loopback port, waited for until it answers."""

    def __init__(
        self, kind: str, data_dir: Path, model_dir: Path, log: Path, root: Path | str = ROOT, **extra: str
    ) -> None:
        """Start it from ``root``'s code (another checkout runs with this virtualenv) with ``extra`` settings."""
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("WEBAPP_")}
        env.update(WEBAPP_DATA_DIR=str(data_dir), WEBAPP_MODEL_DIR=str(model_dir), WEBAPP_BIND=f"127.0.0.1:{port}")
        env.update(extra)
        if kind == "flask":
            argv = [str(BIN / "gunicorn"), "-c", "gunicorn.conf.py", "--access-logfile", "/dev/null"]
        else:  # the FastAPI twin, one Uvicorn worker
            argv = [str(BIN / "uvicorn"), "bench.twin:app", "--port", str(port), "--no-access-log"]
            argv += ["--log-level", "warning", "--workers", env.get("WEBAPP_WORKERS", "1")]
        with open(log, "wb") as out:
            self.proc = subprocess.Popen(argv, cwd=root, env=env, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if requests.get(f"{self.url}/api/v1/stats", timeout=5).ok:
                    return
            except requests.RequestException:
                time.sleep(0.2)
        self.stop()
        raise SystemExit(f"{kind} server did not start; see {log}")

    def pids(self) -> list[int]:
        """Return the server's pid and its descendants' (the workers, and a worker's Milvus Lite process)."""
        found, todo = [], [self.proc.pid]
        while todo:
            pid = todo.pop(0)
            found.append(pid)
            try:
                for task in Path(f"/proc/{pid}/task").iterdir():
                    todo += map(int, (task / "children").read_text().split())
            except FileNotFoundError:  # it has just exited
                continue
        return found

    def helper_pids(self) -> list[int]:
        """Return the pids of the workers' query helpers (services/query_helpers.py)."""
        found = []
        for pid in self.pids():
            try:
                command = Path(f"/proc/{pid}/cmdline").read_bytes()
                if any(marker in command for marker in HELPER_COMMANDS):
                    found.append(pid)
            except FileNotFoundError:  # it has just exited
                continue
        return found

    def cpu_seconds(self, pids: list[int] | None = None) -> float:
        """Return the CPU time (user and system) the server's processes (or ``pids``) have used so far, in seconds."""
        total = 0
        for pid in self.pids() if pids is None else pids:
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except FileNotFoundError:  # it has just exited
                continue
            total += int(fields[11]) + int(fields[12])  # utime and stime, in clock ticks
        return total / os.sysconf("SC_CLK_TCK")

    def peak_memory_mb(self) -> float:
        """Return the summed peak resident memory (VmHWM) of the server's processes, in MB."""
        total = 0
        for pid in self.pids():
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    total += int(line.split()[1])
        return total / 1024

    def stop(self) -> None:
        """Stop gracefully, as a supervisor would."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()


@dataclass
class LoadResult:
    """What a closed-loop load run measured."""

    clients: int
    seconds: float
    requests: int
    errors: int
    throughput: float
    p50: float
    p95: float
    p99: float

    def as_dict(self) -> dict[str, Any]:
        """Return the result as JSON-ready data."""
        return asdict(self)


Send = Callable[[http.client.HTTPConnection, int], int]


def sustained(work: Callable[[int], object], threads: int, seconds: float) -> float:
    """Return calls per second of ``work(i)`` by ``threads`` threads calling it one after another for ``seconds``.

    The raw pipeline is measured this way, for as long as the app is under load: a burst of 200
    images on two threads measured it 3-17% slower than 15 s of it (one-off alternating runs).
    """
    deadline = time.perf_counter() + seconds
    done = [0] * threads

    def loop(n: int) -> None:
        i = n
        while time.perf_counter() < deadline:
            work(i)
            done[n] += 1
            i += threads

    elapsed = in_threads(loop, threads)
    return sum(done) / elapsed


def in_threads(target: Callable[[int], None], count: int) -> float:
    """Run ``target(n)`` in ``count`` threads (n = 0, 1, ...) until all return; return the seconds it took."""
    threads = [threading.Thread(target=target, args=(n,)) for n in range(count)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return time.perf_counter() - start


def closed_loop(send: Send, host: str, clients: int, seconds: float) -> LoadResult:
    """Run ``clients`` threads, each with its own keep-alive connection to ``host``, each sending
    its next request as soon as the last one answered. ``send`` returns the HTTP status."""
    latencies: list[float] = []
    errors = [0]
    lock = threading.Lock()
    deadline = time.perf_counter() + seconds

    def client(n: int) -> None:
        conn = http.client.HTTPConnection(host, timeout=120)
        i = n
        while time.perf_counter() < deadline:
            t0 = time.perf_counter()
            try:
                ok = send(conn, i) < 400
            except (OSError, http.client.HTTPException):
                ok = False
                conn.close()
                conn = http.client.HTTPConnection(host, timeout=120)
            ms = (time.perf_counter() - t0) * 1000
            with lock:
                if ok:
                    latencies.append(ms)
                else:
                    errors[0] += 1
            i += clients
        conn.close()

    elapsed = in_threads(client, clients)
    q = quantiles(latencies)
    return LoadResult(clients, elapsed, len(latencies), errors[0], len(latencies) / elapsed, **q)


def search_sender(
    images: Sequence[bytes],
    top_k: int = 10,
    took: list[float] | None = None,
    steps: list[dict[str, float]] | None = None,
) -> Send:
    """Return a function that posts the i-th query image (cycling) to the search API.

    The multipart bodies are encoded once, up front: the load generator shares the server's
    cores, so it should spend as little CPU per request as it can. With ``took``, each answer's
    ``took_ms`` (the server's time to decode, embed and search) is appended to it; with
    ``steps``, its Server-Timing header's durations by name (embed, search, total).
    """
    boundary = "benchboundary7f3a9c"
    bodies = [
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="top_k"\r\n\r\n{top_k}\r\n'
            f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="q.jpg"\r\n'
            "Content-Type: image/jpeg\r\n\r\n"
        ).encode()
        + image
        + f"\r\n--{boundary}--\r\n".encode()
        for image in images
    ]
    headers = {"Content-Type": f"multipart/form-data; boundary={boundary}"}

    def send(conn: http.client.HTTPConnection, i: int) -> int:
        conn.request("POST", "/api/v1/search", body=bodies[i % len(bodies)], headers=headers)
        response = conn.getresponse()
        body = response.read()
        if took is not None and response.status == 200 and "took_ms" in (answer := json.loads(body)):
            took.append(float(answer["took_ms"]))
        if steps is not None and response.status == 200:
            steps.append(server_timing(response.getheader("Server-Timing", "")))
        return response.status

    return send


def server_timing(header: str) -> dict[str, float]:
    """Parse a Server-Timing header ("embed;dur=6.1, search;dur=0.9, ...") into durations by name."""
    steps = {}
    for entry in filter(None, (part.strip() for part in header.split(","))):
        name, _, duration = entry.partition(";dur=")
        steps[name] = float(duration)
    return steps


def sequential_searches(send: Send, host: str, requests_: int, warmup: int = 8) -> list[float]:
    """Time ``requests_`` searches one after another on one connection, after ``warmup``; return ms."""
    conn = http.client.HTTPConnection(host, timeout=120)
    latency = []
    for i in range(warmup + requests_):
        t0 = time.perf_counter()
        if send(conn, i) != 200:
            raise SystemExit(f"the server at {host} failed a search; see its log")
        if i >= warmup:
            latency.append((time.perf_counter() - t0) * 1000)
    conn.close()
    return latency
