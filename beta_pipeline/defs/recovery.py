"""Recovery of dead runs: a run whose process was killed (``kill -9``, OOM) is marked
FAILED and its ``duckdb_writer`` pool slot freed, so later writes never wait forever.

Two callers: ``beta-pipeline run`` before it starts (its own in-process runs carry host and
pid tags), and the daemon's sensor :data:`dead_run_sensor` every minute (runs launched by
the UI, backfills and the automation through Dagster's local run launcher, found by the pid
of their "Started process" event; that launcher cannot report a dead worker itself, so
Dagster's run monitoring alone would leave them STARTED). The pool calls go through the
event-log storage, version-guarded (:data:`TESTED_DAGSTER`).
"""

from __future__ import annotations

import os
import socket
import warnings
from collections.abc import Callable
from pathlib import Path

import dagster as dg

#: Tags of every run ``beta-pipeline run`` starts: who executes it in-process (a run whose
#: process is gone on this host is dead, see :func:`recover_dead_runs`).
RUN_HOST_TAG = "beta_pipeline/host"
RUN_PID_TAG = "beta_pipeline/pid"
RUN_PID_START_TAG = "beta_pipeline/pid_start"  # the process's start (pid reuse guard)
#: Statuses of runs that may still hold or wait for pool slots.
LIVE_STATUSES = ("NOT_STARTED", "QUEUED", "STARTING", "STARTED", "CANCELING")

#: The Dagster release the concurrency-slot calls below are tested with (tests/test_ops_*).
TESTED_DAGSTER = "1.13.27"


def _process_start(pid: int) -> str | None:
    """Start time of process ``pid`` (clock ticks since boot, Linux /proc), None elsewhere."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]  # field 22, counted after "pid (comm)"


def cli_run_tags() -> dict[str, str]:
    """The ownership tags of a run executed by this process."""
    tags = {RUN_HOST_TAG: socket.gethostname(), RUN_PID_TAG: str(os.getpid())}
    started = _process_start(os.getpid())
    if started is not None:
        tags[RUN_PID_START_TAG] = started
    return tags


def _pid_alive(pid: int, started: str | None) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # another user's process: alive
    if _zombie(pid):  # killed, not yet reaped by its parent
        return False
    now = _process_start(pid)
    return started is None or now is None or now == started


def _zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] == "Z"


def _launched_pid(instance, run) -> tuple[int, float] | None:
    """(pid, when) of the run worker a run launcher started for ``run``, from Dagster's
    "Started process for run (pid: N)" engine event; None for in-process runs."""
    for record in instance.all_logs(run.run_id, of_type=dg.DagsterEventType.ENGINE_EVENT):
        event = record.dagster_event
        data = event.engine_event_data if event is not None else None
        pid = data.metadata.get("pid") if data is not None and data.metadata else None
        if pid is not None:
            try:
                return int(pid.value), record.timestamp
            except (TypeError, ValueError):
                return None
    return None


def _boot_time() -> float | None:
    try:
        for line in Path("/proc/stat").read_text().splitlines():
            if line.startswith("btime "):
                return float(line.split()[1])
    except OSError:
        return None
    return None


def _started_after(pid: int, moment: float) -> bool:
    """Whether the process now holding ``pid`` started after ``moment`` (a reused pid)."""
    ticks, boot = _process_start(pid), _boot_time()
    if ticks is None or boot is None:
        return False
    return boot + int(ticks) / os.sysconf("SC_CLK_TCK") > moment + 2.0


def owner_gone(
    run, own_run_ids: frozenset[str] = frozenset(), instance=None
) -> bool:
    """True when the process executing ``run`` on this host is gone (killed, crashed).

    In-process runs of ``beta-pipeline run`` carry host and pid tags; runs launched by the
    daemon or the UI through Dagster's local run launcher are found by the pid of their
    "Started process" event (``instance`` needed). Runs of other hosts, or of launchers
    that run elsewhere (k8s, celery, ...), are never judged here."""
    tags = run.tags
    if RUN_PID_TAG in tags:
        if tags.get(RUN_HOST_TAG) != socket.gethostname():
            return False
        try:
            pid = int(tags[RUN_PID_TAG])
        except ValueError:
            return False
        if pid == os.getpid():  # ours only if this process started it (else a reused pid)
            return run.run_id not in own_run_ids
        return not _pid_alive(pid, tags.get(RUN_PID_START_TAG))
    if instance is None or not _local_launcher(instance) or run.status.value != "STARTED":
        return False
    launched = _launched_pid(instance, run)
    if launched is None:
        return False
    pid, when = launched
    if pid == os.getpid():
        return False
    return not _pid_alive(pid, None) or _started_after(pid, when)


def _local_launcher(instance) -> bool:
    return isinstance(instance.run_launcher, dg.DefaultRunLauncher)


def _storage_call(instance, name: str, *args):
    """``instance.event_log_storage.<name>(*args)`` for the pool calls Dagster's own UI uses
    (``get_concurrency_info``, ``free_concurrency_slots_for_run``); None where the storage has
    no global concurrency (or the call is missing in a newer Dagster than TESTED_DAGSTER)."""
    storage = instance.event_log_storage
    if not getattr(storage, "supports_global_concurrency_limits", False):
        return None
    method = getattr(storage, name, None)
    if method is None:
        warnings.warn(
            f"dagster {_dagster_version()} has no EventLogStorage.{name} (tested with "
            f"{TESTED_DAGSTER}): pool slots of killed runs are not freed by beta-pipeline",
            stacklevel=2,
        )
        return None
    return method(*args)


def _dagster_version() -> str:
    return dg.__version__


def pool_info(instance, pool: str | None = None):
    """Claimed slots and pending steps of the writer pool (Dagster's ``ConcurrencyKeyInfo``)."""
    from beta_pipeline.defs.partitions import DUCKDB_POOL

    return _storage_call(instance, "get_concurrency_info", pool or DUCKDB_POOL)


def free_run_slots(instance, run_id: str) -> None:
    """Free every pool slot and pending claim of ``run_id``."""
    _storage_call(instance, "free_concurrency_slots_for_run", run_id)


def _owner(instance, run) -> str:
    tags = run.tags
    if RUN_PID_TAG in tags:
        return f"pid {tags[RUN_PID_TAG]} on {tags.get(RUN_HOST_TAG, '?')}"
    launched = _launched_pid(instance, run)
    return f"run worker pid {launched[0]}" if launched else "its run worker"


def _print(line: str) -> None:
    print(line, flush=True)


def _short(run_id: str) -> str:
    return run_id[:8]


def _run_label(run) -> str:
    tags = run.tags
    owner = ""
    if RUN_PID_TAG in tags:
        owner = f", pid {tags[RUN_PID_TAG]} on {tags.get(RUN_HOST_TAG, '?')}"
    return f"{_short(run.run_id)} ({run.job_name}, {run.status.value}{owner})"


def recover_dead_runs(
    instance,
    own_run_ids: frozenset[str] = frozenset(),
    report: Callable[[str], None] = _print,
) -> list[str]:
    """End the runs whose ``beta-pipeline run`` process died, and free stale pool slots.

    A run of this host in a live status (STARTED, QUEUED, ...) whose tagged process is gone is
    reported FAILED (``instance.report_run_failed``) and its pool slots are freed; slots and
    pending claims of runs that ended (or no longer exist) are freed too. Prints one line per
    run; returns their ids.
    """
    from beta_pipeline.defs.partitions import DUCKDB_POOL

    recovered: list[str] = []
    statuses = [dg.DagsterRunStatus(s) for s in LIVE_STATUSES]
    for run in instance.get_runs(filters=dg.RunsFilter(statuses=statuses)):
        if not owner_gone(run, own_run_ids, instance):
            continue
        label = _run_label(run)
        instance.report_run_failed(
            run,
            message=(
                f"beta-pipeline: the process that executed this run ({_owner(instance, run)}) "
                f"is gone (killed or crashed); marked failed by beta_pipeline's recovery "
                f"(pid {os.getpid()})."
            ),
        )
        free_run_slots(instance, run.run_id)
        recovered.append(run.run_id)
        report(
            f"beta_pipeline: recovered run {label}: its process is gone; marked FAILED, "
            f"{DUCKDB_POOL} slot freed"
        )
    info = pool_info(instance)
    if info is not None:
        holders = {c.run_id for c in info.claimed_slots} | {p.run_id for p in info.pending_steps}
        for run_id in sorted(holders - set(recovered) - set(own_run_ids)):
            run = instance.get_run_by_id(run_id)
            if run is not None and not run.is_finished:
                continue
            free_run_slots(instance, run_id)
            recovered.append(run_id)
            state = "no longer exists" if run is None else f"ended {run.status.value}"
            report(
                f"beta_pipeline: freed the {DUCKDB_POOL} slot of run {_short(run_id)}, "
                f"which {state}"
            )
    return recovered


#: Name of the daemon sensor that recovers dead runs (UI: Automation > Sensors).
DEAD_RUN_SENSOR = "beta_pipeline_dead_runs"


@dg.sensor(
    name=DEAD_RUN_SENSOR,
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Marks runs whose process died FAILED and frees their duckdb_writer slot.",
)
def dead_run_sensor(context: dg.SensorEvaluationContext) -> dg.SkipReason:
    recovered = recover_dead_runs(context.instance, report=context.log.warning)
    return dg.SkipReason(
        f"recovered {len(recovered)} run(s): {', '.join(r[:8] for r in recovered)}"
        if recovered
        else "no dead run"
    )
