"""Milvus Lite in a process of its own, so that its Python gRPC server stops sharing the app's GIL.

milvus-lite 3.2.2 is Python: opened from a file path, it serves pymilvus from gRPC threads inside
the calling process, and every search's work (about 3 ms of CPU, README) competes with the web
threads for one interpreter lock. Under Gunicorn (``MILVUS_LITE_PROCESS``, which gunicorn.conf.py
turns on) the app starts the same server as a child process instead, on a loopback port, and
talks to it exactly as it would to a Milvus server; the stores still treat it as Lite (flushes,
one writer). The child holds the file's lock; it stops when its last store closes, when the app's
process ends (its stdin closes), or on SIGTERM, closing the file cleanly. If it dies, the next
call restarts it on the same port and pymilvus reconnects (a store loads its collection again).

Run as ``python -m webapp.services.lite DATA_DIR [--port N] [--nice N]``: prints ``port N`` once
it listens, or ``locked: ...`` / ``error: ...`` and exits.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

from webapp.config import ROOT
from webapp.errors import StoreUnavailable

log = logging.getLogger(__name__)
START_TIMEOUT = 60.0  # seconds for the child to import milvus-lite, open the file and listen
STOP_TIMEOUT = 15.0  # seconds for it to drain calls and close the file before it is killed


class LiteProcess:
    """One child process serving one Milvus Lite file on a loopback port."""

    def __init__(self, path: str) -> None:
        self.path = str(Path(path).resolve())
        self.port = 0
        self.users = 0
        self._proc: subprocess.Popen[str] | None = None
        self._lock = threading.Lock()
        self._start()

    @property
    def url(self) -> str:
        """Return the address pymilvus connects to."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        """Return the child's pid while it runs."""
        return self._proc.pid if self._proc and self._proc.poll() is None else None

    def _start(self) -> None:
        """Start the child (on the same port as before, after a crash) and wait until it listens."""
        argv = [sys.executable, "-m", "webapp.services.lite", self.path, "--port", str(self.port)]
        # A child inherits the nice value of the thread that starts it (a bulk load's, maybe): ask
        # for the process's own, which searches run at.
        argv += ["--nice", str(os.getpriority(os.PRIO_PROCESS, os.getpid()))] if hasattr(os, "getpriority") else []
        # Its own session: a Ctrl-C at the terminal stops the app, which then closes the child after its
        # last flush, rather than the child first.
        proc = subprocess.Popen(
            argv, cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, start_new_session=True
        )
        timer = threading.Timer(START_TIMEOUT, proc.kill)
        timer.start()
        try:
            line = proc.stdout.readline().strip() if proc.stdout else ""
        finally:
            timer.cancel()
        if not line.startswith("port "):
            proc.kill()
            proc.wait()
            if line.startswith("locked: "):
                raise StoreUnavailable(
                    f"the Milvus Lite file {self.path} is in use by another process (a running server?): "
                    "Milvus Lite allows one process per file"
                )
            raise StoreUnavailable(f"could not start Milvus Lite for {self.path}: {line or 'it exited'}")
        self.port = int(line.split()[1])
        self._proc = proc
        threading.Thread(target=self._watch, args=(proc,), name="milvus-lite-watch", daemon=True).start()

    def _watch(self, proc: subprocess.Popen[str]) -> None:
        """Restart the child if it dies while stores still use it."""
        code = proc.wait()
        with self._lock:
            if self._proc is not proc or not self.users:
                return  # stopped on purpose
            log.error("Milvus Lite (pid %s, %s) exited with %s; restarting it", proc.pid, self.path, code)
            try:
                self._start()
            except StoreUnavailable as exc:  # calls fail with 503 until the app restarts
                log.error("%s", exc.message)

    def stop(self) -> None:
        """Let the child close the file (stdin closed), and kill it if it does not in time."""
        with self._lock:
            proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.stdin:
            proc.stdin.close()
        try:
            proc.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            log.error("Milvus Lite (pid %s) did not stop in %s s; killed", proc.pid, STOP_TIMEOUT)
            proc.kill()
            proc.wait()
        if proc.stdout:
            proc.stdout.close()


_processes: dict[str, LiteProcess] = {}
_registry = threading.Lock()


def acquire(path: str) -> LiteProcess:
    """Return the running child for the file at ``path``, starting one if none runs in this process."""
    key = str(Path(path).resolve())
    with _registry:
        process = _processes.get(key)
        if process is None:
            process = _processes[key] = LiteProcess(key)
        process.users += 1
        return process


def release(process: LiteProcess) -> None:
    """Stop the child once the last store on its file has closed."""
    with _registry:
        process.users -= 1
        if process.users > 0:
            return
        _processes.pop(process.path, None)
    process.stop()


def _serve(data_dir: str, port: int) -> int:
    """Serve ``data_dir`` until stdin closes or SIGTERM arrives; then close the file and return."""
    from milvus_lite.adapter.grpc.server import start_server_in_thread
    from milvus_lite.exceptions import DataDirLockedError

    try:
        server, db, bound = start_server_in_thread(data_dir, host="127.0.0.1", port=port)
    except DataDirLockedError as exc:
        print(f"locked: {exc}", flush=True)
        return 3
    except Exception as exc:  # the parent shows it
        print(f"error: {exc}".replace("\n", " "), flush=True)
        return 2
    if not bound:
        print(f"error: cannot listen on 127.0.0.1:{port}", flush=True)
        db.close()
        return 2
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())

    def until_stdin_closes() -> None:  # the parent closes it, or dies however it dies
        sys.stdin.read()
        done.set()

    threading.Thread(target=until_stdin_closes, daemon=True).start()
    print(f"port {bound}", flush=True)
    done.wait()
    server.stop(grace=5).wait()
    db.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    """The child's entry point."""
    parser = argparse.ArgumentParser(description="Serve one Milvus Lite file on a loopback port.")
    parser.add_argument("data_dir")
    parser.add_argument("--port", type=int, default=0, help="0: any free port")
    parser.add_argument("--nice", type=int, default=None, help="run at this nice value if allowed")
    args = parser.parse_args(argv)
    if args.nice is not None and os.nice(0) > args.nice:
        try:
            os.setpriority(os.PRIO_PROCESS, 0, args.nice)
        except OSError:
            pass  # unprivileged: stays at the inherited (lower) priority
    return _serve(args.data_dir, args.port)


if __name__ == "__main__":
    raise SystemExit(main())
