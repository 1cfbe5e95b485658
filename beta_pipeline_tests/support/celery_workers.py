"""Throwaway ``dagster-celery`` workers for tests and benchmarks.

:func:`celery_workers` starts N workers the supported way of dagster-celery 0.29
(``dagster-celery worker start -A dagster_celery.app -y <config.yaml>``, which writes the
broker and backend of the YAML into a ``dagster_celery_config`` module under the instance's
folder and runs ``celery -A dagster_celery.app worker`` with it on ``PYTHONPATH``). Each worker
has a fixed name (``w1@<host>``, ``w2@<host>``, ...), one task at a time (``--concurrency=1``,
prefetch 1), imports the code location before its first task and logs to its own file. The
environment passed in must hold what a run needs: ``DAGSTER_HOME`` (an instance every
process shares: PostgreSQL, see ``pg_server.py``), ``BETA_PIPELINE_HOME`` and the storage
variables. Yields once every worker logged ``ready.``; at the end each worker's Celery
process gets SIGTERM (a warm shutdown: the CLI above it reaps it and exits), then every
worker's process group SIGKILL for whatever is left. :func:`execute_partitions` launches runs
at once, one ``dagster job execute`` process per partition. No tests here.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml

#: The Celery app of dagster-celery's workers (tasks execute_plan, execute_job, resume_job).
APP = "dagster_celery.app"


@dataclass(frozen=True)
class Worker:
    """A started worker: its Celery node name, process (group leader) and log file."""

    name: str
    proc: subprocess.Popen
    log: Path

    @property
    def node(self) -> str:
        """``name@host``, as Celery reports it (the ``Celery worker`` of the engine events)."""
        return f"{self.name}@{socket.gethostname()}"

    def pids(self) -> set[int]:
        """Pids of the worker's processes now: the CLI, Celery's main process and its pool
        (every process of the group the worker was started in)."""
        out = set()
        for stat in Path("/proc").glob("[0-9]*/stat"):
            with contextlib.suppress(OSError, ValueError, IndexError):
                fields = stat.read_text().rsplit(")", 1)[1].split()
                if int(fields[2]) == self.proc.pid:  # field 5 of stat: the process group
                    out.add(int(stat.parent.name))
        return out

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


def write_worker_config(path: Path, broker: str, backend: str | None = None) -> Path:
    """The ``--config-yaml`` of ``dagster-celery worker start``: the executor's config block
    (``execution: config: {broker, backend}``), as the runs use it."""
    config = {"execution": {"config": {"broker": broker, "backend": backend or broker}}}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def _bin(name: str) -> str:
    return str(Path(sys.executable).with_name(name))


def worker_argv(
    name: str,
    config_yaml: Path,
    *,
    concurrency: int = 1,
    includes: Sequence[str] = ("beta_pipeline.definitions",),
    loglevel: str = "INFO",
) -> list[str]:
    """The command line of one worker."""
    argv = [_bin("dagster-celery"), "worker", "start", "-A", APP, "-y", str(config_yaml)]
    argv += ["-n", name, "-l", loglevel]
    for module in includes:
        argv += ["-i", module]
    # after "--": celery's own options (prefetch 1 is set by dagster-celery)
    return [*argv, "--", f"--concurrency={concurrency}", "--without-gossip", "--without-mingle"]


def _children(pid: int) -> list[int]:
    """Pids of the direct children of ``pid``."""
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == pid:  # field 4: ppid
                out.append(int(stat.parent.name))
    return out


def _stop(workers: Sequence[Worker], grace: float) -> None:
    # SIGTERM to Celery's main process (the CLI's child): a warm shutdown, after which the
    # CLI, waiting on it, reaps it and exits; then SIGKILL for anything left in the group
    for w in workers:
        for pid in _children(w.proc.pid) or [w.proc.pid]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    for w in workers:
        with contextlib.suppress(subprocess.TimeoutExpired):
            w.proc.wait(timeout=max(deadline - time.monotonic(), 0.1))
    for w in workers:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(w.proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            w.proc.wait(timeout=5)


@contextlib.contextmanager
def celery_workers(
    n: int,
    *,
    broker: str,
    env: Mapping[str, str],
    folder: Path,
    backend: str | None = None,
    concurrency: int = 1,
    ready_timeout: float = 180.0,
    stop_grace: float = 20.0,
) -> Iterator[list[Worker]]:
    """Start ``n`` workers (``w1``..``wN``) on ``broker`` with environment ``env``; their
    config YAML and logs go to ``folder``. Yields the workers once all are ready; stops
    them (and kills leftovers) at the end. A worker that exits or is not ready within
    ``ready_timeout`` seconds raises RuntimeError with its log."""
    folder.mkdir(parents=True, exist_ok=True)
    config = write_worker_config(folder / "celery.yaml", broker, backend)
    run_env = {**env, "PYTHONUNBUFFERED": "1"}
    venv_bin = str(Path(sys.executable).parent)
    run_env["PATH"] = venv_bin + os.pathsep + run_env.get("PATH", os.defpath)  # `celery`
    workers: list[Worker] = []
    try:
        for i in range(1, n + 1):
            name = f"w{i}"
            log = folder / f"{name}.log"
            with log.open("w") as out:
                proc = subprocess.Popen(
                    worker_argv(name, config, concurrency=concurrency),
                    cwd=folder,
                    env=run_env,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            workers.append(Worker(name, proc, log))
        deadline = time.monotonic() + ready_timeout
        pending = list(workers)
        while pending:
            for w in list(pending):
                if " ready." in w.log_text():
                    pending.remove(w)
                elif w.proc.poll() is not None or time.monotonic() > deadline:
                    state = "exited" if w.proc.poll() is not None else "not ready"
                    raise RuntimeError(f"celery worker {w.name} {state}:\n{w.log_text()[-4000:]}")
            time.sleep(0.2)
        yield workers
    finally:
        _stop(workers, stop_grace)


#: The code location the runs (and the workers' tasks) load.
LOCATION = "beta_pipeline.definitions"


@dataclass(frozen=True)
class LaunchedRun:
    """One ``dagster job execute`` process: its partition, exit code, pid and log."""

    partition: str
    returncode: int
    pid: int
    log: Path
    seconds: float


def execute_partitions(
    job: str,
    partitions: Sequence[Mapping[str, str]],
    *,
    env: Mapping[str, str],
    run_config: Path,
    folder: Path,
    timeout: float = 600.0,
) -> list[LaunchedRun]:
    """Run ``job`` once per partition, all at the same time, each as its own
    ``dagster job execute -m beta_pipeline.definitions`` process (the run's orchestrator: with
    ``BETA_PIPELINE_EXECUTOR=celery`` in ``env`` it submits the steps to the workers and
    waits). A partition is given by its run tags, as
    ``PartitionsDefinition.get_tags_for_partition_key`` makes them (a multi-partition key needs
    its per-dimension tags too, or the step sees a plain string key). Logs go to ``folder``;
    processes still running after ``timeout`` seconds are killed (exit code -9)."""
    folder.mkdir(parents=True, exist_ok=True)
    started: list[tuple[str, subprocess.Popen, Path, float]] = []
    for i, tags in enumerate(partitions):
        key = tags["dagster/partition"]
        log = folder / f"run_{i}.log"
        argv = [_bin("dagster"), "job", "execute", "-m", LOCATION, "-j", job]
        argv += ["--tags", json.dumps(dict(tags)), "-c", str(run_config)]
        with log.open("w") as out:
            proc = subprocess.Popen(
                argv, env=dict(env), stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        started.append((key, proc, log, time.monotonic()))
    deadline = time.monotonic() + timeout
    out_runs = []
    for key, proc, log, t0 in started:
        try:
            proc.wait(timeout=max(deadline - time.monotonic(), 0.1))
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        out_runs.append(LaunchedRun(key, proc.returncode, proc.pid, log, time.monotonic() - t0))
    return out_runs
