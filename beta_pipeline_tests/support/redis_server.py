"""A throwaway Redis server for tests (the Celery broker and result backend).

:func:`redis_server` starts Debian's ``redis-server`` on 127.0.0.1 with a free port, its
working folder in a temp folder and no persistence (no RDB snapshots, no AOF), waits until
it answers ``PING``, yields its URL ``redis://127.0.0.1:<port>/0`` and stops it at the end.
No tests here. CI needs the Debian package ``redis-server`` (``scripts/system_packages.sh``).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path


def find_redis_server() -> str | None:
    """Path of ``redis-server`` (PATH, then Debian's /usr/bin), None when not installed."""
    found = shutil.which("redis-server")
    if found:
        return found
    return "/usr/bin/redis-server" if Path("/usr/bin/redis-server").is_file() else None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def ping(port: int, timeout: float = 1.0) -> bool:
    """Whether a Redis server on 127.0.0.1:``port`` answers ``PING`` with ``+PONG``."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


@contextlib.contextmanager
def redis_server(binary: str | None = None, startup_timeout: float = 30.0) -> Iterator[str]:
    """Start a fresh Redis server; yield its URL ``redis://127.0.0.1:<port>/0``.

    Listens on 127.0.0.1 only, no persistence, log in the temp folder (its tail is in the
    error when the server does not come up). Stopped (SIGTERM, SIGKILL after 10 s) and its
    folder removed on exit.
    """
    binary = binary or find_redis_server()
    if binary is None:
        raise FileNotFoundError("redis-server not found (Debian package redis-server)")
    root = Path(tempfile.mkdtemp(prefix="bp-redis-"))
    port = _free_port()
    log = root / "redis.log"
    argv = [
        binary,
        "--bind", "127.0.0.1",
        "--port", str(port),
        "--dir", str(root),
        "--save", "",
        "--appendonly", "no",
        "--daemonize", "no",
        "--protected-mode", "yes",
        "--logfile", str(log),
    ]  # fmt: skip
    proc = subprocess.Popen(
        argv, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, start_new_session=True
    )
    try:
        deadline = time.monotonic() + startup_timeout
        while not ping(port):
            if proc.poll() is not None or time.monotonic() > deadline:
                tail = log.read_text()[-2000:] if log.exists() else ""
                raise RuntimeError(f"redis-server did not start (exit {proc.poll()}):\n{tail}")
            time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        shutil.rmtree(root, ignore_errors=True)
