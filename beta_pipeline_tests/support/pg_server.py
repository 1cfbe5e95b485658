"""A throwaway PostgreSQL server for tests: Debian's binaries, a cluster in a temp folder.

:func:`postgres_server` initdb's a cluster (as the ``postgres`` system user, or ``nobody``,
when running as root: PostgreSQL refuses to run as root), starts it on 127.0.0.1 with a free
port and its unix socket in the temp folder, creates a database and a password-protected
role, yields the server's URL and stops it (``pg_ctl stop -m fast``) at the end.
No tests here. CI needs the Debian package ``postgresql``.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

#: Role, password and database of the test server.
USER = "beta"
PASSWORD = "s3cret-pw"
DATABASE = "dagster"


def find_bin_dir() -> Path | None:
    """The newest ``/usr/lib/postgresql/<version>/bin`` with initdb and pg_ctl (or the folder
    of an ``initdb`` on PATH), None when PostgreSQL is not installed."""

    def version(path: str) -> tuple[int, ...]:
        part = Path(path).parent.parent.name
        return tuple(int(x) for x in part.split(".") if x.isdigit())

    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=version)
    on_path = shutil.which("initdb")
    if on_path:
        candidates.insert(0, on_path)
    for initdb in reversed(candidates):
        folder = Path(initdb).parent
        if (folder / "pg_ctl").is_file() and (folder / "postgres").is_file():
            return folder
    return None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _server_user() -> str | None:
    """The system user to run PostgreSQL as when we are root (None: run as ourselves)."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            pwd.getpwnam(name)
            return name
    raise RuntimeError("running as root and neither user 'postgres' nor 'nobody' exists")


def _runner(user: str | None) -> list[str]:
    if user is None:
        return []
    runuser = shutil.which("runuser")
    if runuser:
        return [runuser, "-u", user, "--"]
    return ["su", user, "-s", "/bin/sh", "-c"]  # pragma: no cover - runuser is in util-linux


def _run(prefix: list[str], cmd: list[str], **kwargs: object) -> None:
    argv = [*prefix, *cmd] if not prefix or prefix[0] != "su" else [*prefix, " ".join(cmd)]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=120, **kwargs)
    if proc.returncode:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr}")


@contextlib.contextmanager
def postgres_server(bin_dir: Path | None = None) -> Iterator[str]:
    """Start a fresh PostgreSQL server; yield its SQLAlchemy URL
    ``postgresql+psycopg2://user:password@127.0.0.1:port/db``.

    Host connections authenticate by password (scram), the socket folder lies in the temp
    folder; ``fsync=off`` (a throwaway cluster). Stopped and removed on exit.
    """
    bin_dir = bin_dir or find_bin_dir()
    if bin_dir is None:
        raise FileNotFoundError("PostgreSQL binaries (initdb, pg_ctl) not found")
    user = _server_user()
    prefix = _runner(user)
    root = Path(tempfile.mkdtemp(prefix="bp-pg-"))  # in /tmp: reachable by the server user
    data, sockets, log = root / "data", root / "sock", root / "server.log"
    sockets.mkdir()
    pwfile = root / "pw"
    pwfile.write_text(PASSWORD + "\n")
    if user is not None:
        entry = pwd.getpwnam(user)
        for path in (root, sockets, pwfile):
            os.chown(path, entry.pw_uid, entry.pw_gid)
    port = _free_port()
    started = False
    try:
        _run(
            prefix,
            [
                str(bin_dir / "initdb"),
                "-D", str(data),
                "-U", USER,
                f"--pwfile={pwfile}",
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                "-E", "UTF8",
                "--no-sync",
            ],
        )
        options = (
            f"-c listen_addresses=127.0.0.1 -p {port} -k {sockets} -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off"
        )
        _run(
            prefix,
            [str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(log), "-o", options,
             "-w", "-t", "60", "start"],
        )
        started = True
        _run(prefix, [str(bin_dir / "createdb"), "-h", str(sockets), "-p", str(port),
                      "-U", USER, DATABASE])
        yield f"postgresql+psycopg2://{USER}:{PASSWORD}@127.0.0.1:{port}/{DATABASE}"
    finally:
        try:
            if started:
                _run(prefix, [str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w",
                              "stop"])
        finally:
            shutil.rmtree(root, ignore_errors=True)
