"""``dagster dev`` (webserver + daemon) on the current test's home, for the service tests
(``test_daemon_backfill.py``, ``test_ui_browser.py``)."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

#: The code location that ``dagster dev`` loads.
LOCATION = "beta_pipeline.definitions"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class DagsterDev:
    """A running ``dagster dev``: its port, base URL, log file and process."""

    port: int
    url: str
    log: Path
    proc: subprocess.Popen


def _serving(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/server_info", timeout=5) as response:
            return response.status == 200
    except OSError:
        return False


@contextlib.contextmanager
def dagster_dev(
    cwd: Path, *, automation: bool = False, startup_timeout: float = 180
) -> Iterator[DagsterDev]:
    """Start ``dagster dev -m beta_pipeline.definitions`` on 127.0.0.1 and a free port, in
    ``cwd`` with the environment of the test (``DAGSTER_HOME``, ``BETA_PIPELINE_HOME``), its
    output in ``cwd / "dagster_dev.log"``; yield once the webserver answers, stop the whole
    process group at the end (SIGTERM, SIGKILL after 60 s).

    ``automation=False`` sets ``BETA_PIPELINE_AUTOMATION=off``: the automation would also
    load today's session, outside the embedded data.
    """
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    if not automation:
        env["BETA_PIPELINE_AUTOMATION"] = "off"
    log_path = cwd / "dagster_dev.log"
    dagster = str(Path(sys.executable).with_name("dagster"))
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            [dagster, "dev", "-m", LOCATION, "-h", "127.0.0.1", "-p", str(port)],
            cwd=cwd,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            deadline = time.monotonic() + startup_timeout
            while not _serving(url):
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("dagster dev did not start:\n" + log_path.read_text())
                time.sleep(1)
            yield DagsterDev(port=port, url=url, log=log_path, proc=proc)
        finally:
            os.killpg(proc.pid, 15)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, 9)
