"""Operation, in-process and fast: the generated instance config (relocatable, run monitoring,
local overrides), the pool-slot calls on Dagster's storage, recovery of runs whose
``beta-pipeline run`` process died, and ``beta-pipeline runs``."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest
import yaml

from beta_pipeline import cli
from beta_pipeline.defs import recovery
from beta_pipeline.defs.partitions import DUCKDB_POOL
from beta_pipeline.settings import (
    FREE_SLOTS_AFTER_RUN_END_S,
    GENERATED_HEADER,
    LOCAL_OVERRIDES,
    dagster_yaml,
    ensure_home,
)


@pytest.fixture
def instance(home: Path) -> Iterator[dg.DagsterInstance]:
    """The instance of conftest's fresh home (its generated dagster.yaml)."""
    inst = dg.DagsterInstance.get()
    try:
        yield inst
    finally:
        inst.dispose()


def _dead_pid() -> int:
    """The pid of a process that has exited (and been reaped)."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _add_run(
    instance: dg.DagsterInstance,
    tags: dict[str, str],
    status: dg.DagsterRunStatus = dg.DagsterRunStatus.STARTED,
    claim: bool = True,
) -> str:
    """A run record (as ``beta-pipeline run`` would leave it) holding the writer slot."""
    run_id = str(uuid.uuid4())
    instance.add_run(dg.DagsterRun(job_name="daily_job", run_id=run_id, status=status, tags=tags))
    if claim:
        storage = instance.event_log_storage
        storage.initialize_concurrency_limit_to_default(DUCKDB_POOL)
        claim_status = storage.claim_concurrency_slot(DUCKDB_POOL, run_id, "daily_betas")
        assert claim_status.is_claimed, claim_status
    return run_id


def _holders(instance: dg.DagsterInstance) -> set[str]:
    info = recovery.pool_info(instance)
    return {c.run_id for c in info.claimed_slots} | {p.run_id for p in info.pending_steps}


# --- the generated dagster.yaml ------------------------------------------------------------------


def test_dagster_yaml_keeps_every_path_under_the_dagster_home(tmp_path: Path) -> None:
    text = dagster_yaml(tmp_path / "dh")
    config = yaml.safe_load(text)
    assert text.startswith(GENERATED_HEADER)
    assert config["telemetry"] == {"enabled": False}
    assert config["event_log_storage"]["class"] == "BatchingSqliteEventLogStorage"
    assert config["event_log_storage"]["config"]["base_dir"] == str(
        tmp_path / "dh" / "history" / "runs"
    )
    assert config["concurrency"]["pools"] == {"default_limit": 1}
    assert config["concurrency"]["runs"] == {"max_concurrent_runs": 4}
    monitoring = config["run_monitoring"]
    assert monitoring["enabled"] is True
    assert 0 < monitoring["free_slots_after_run_end_seconds"] <= 300
    assert monitoring["start_timeout_seconds"] > 0 and monitoring["poll_interval_seconds"] > 0
    absolute = [line for line in text.splitlines() if "/" in line.split("#")[0]]
    assert all(str(tmp_path / "dh") in line for line in absolute), absolute


def test_instance_loads_the_generated_config(instance: dg.DagsterInstance, home: Path) -> None:
    assert Path(instance.root_directory) == home / "dagster_home"
    assert instance.run_monitoring_enabled
    settings = instance.run_monitoring_settings
    assert settings["free_slots_after_run_end_seconds"] == FREE_SLOTS_AFTER_RUN_END_S
    assert instance.get_settings("telemetry") == {"enabled": False}
    assert instance.get_settings("concurrency")["pools"] == {"default_limit": 1}
    assert type(instance.event_log_storage).__name__ == "BatchingSqliteEventLogStorage"
    assert instance.event_log_storage.supports_global_concurrency_limits


def test_ensure_home_rewrites_the_config_at_every_start(home: Path) -> None:
    path = home / "dagster_home" / "dagster.yaml"
    original = path.read_text()
    stale = original.replace(str(home), "/somewhere/else")
    path.write_text(stale)
    ensure_home()
    assert path.read_text() == original


def test_local_overrides_replace_blocks_and_a_user_config_is_left_alone(home: Path) -> None:
    dagster_home = home / "dagster_home"
    (dagster_home / LOCAL_OVERRIDES).write_text(
        "run_monitoring:\n  enabled: false\nretention:\n  schedule:\n    purge_after_days: 30\n"
    )
    ensure_home()
    text = (dagster_home / "dagster.yaml").read_text()
    config = yaml.safe_load(text)
    assert text.startswith(GENERATED_HEADER)
    assert config["run_monitoring"] == {"enabled": False}
    assert config["retention"]["schedule"]["purge_after_days"] == 30
    assert config["concurrency"]["pools"]["default_limit"] == 1  # the rest stays generated
    inst = dg.DagsterInstance.get()
    try:
        assert not inst.run_monitoring_enabled
    finally:
        inst.dispose()
    # a dagster.yaml without the generated header is the user's own: never rewritten
    (dagster_home / LOCAL_OVERRIDES).unlink()
    (dagster_home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    ensure_home()
    assert (dagster_home / "dagster.yaml").read_text() == "telemetry:\n  enabled: false\n"


def test_an_old_generated_config_is_replaced_and_kept_once(home: Path) -> None:
    dagster_home = home / "dagster_home"
    old = "# Generated by beta_pipeline (beta_pipeline/settings.py); edit freely\ntelemetry: {}\n"
    (dagster_home / "dagster.yaml").write_text(old)
    ensure_home()
    assert (dagster_home / "dagster.yaml.old").read_text() == old
    assert (dagster_home / "dagster.yaml").read_text() == dagster_yaml(dagster_home)


def test_a_derived_dagster_home_follows_beta_pipeline_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    monkeypatch.setenv("BETA_PIPELINE_HOME", str(tmp_path / "a"))
    ensure_home()
    assert os.environ["DAGSTER_HOME"] == str(tmp_path / "a" / "dagster_home")
    monkeypatch.setenv("BETA_PIPELINE_HOME", str(tmp_path / "b"))
    ensure_home()  # the DAGSTER_HOME set by the first call is ours, not the user's
    assert os.environ["DAGSTER_HOME"] == str(tmp_path / "b" / "dagster_home")
    assert str(tmp_path / "a") not in (tmp_path / "b" / "dagster_home" / "dagster.yaml").read_text()
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "mine"))  # the user's choice wins
    ensure_home()
    assert os.environ["DAGSTER_HOME"] == str(tmp_path / "mine")
    assert (tmp_path / "mine" / "dagster.yaml").is_file()


# --- pool slots and recovery ---------------------------------------------------------------------


def test_dagster_pool_calls_used_by_the_cli(instance: dg.DagsterInstance) -> None:
    """The storage calls behind recovery exist and behave as in dagster 1.13.27."""
    run_id = _add_run(instance, {})
    info = recovery.pool_info(instance)
    assert info.concurrency_key == DUCKDB_POOL and info.limit == 1
    assert [(c.run_id, c.step_key) for c in info.claimed_slots] == [(run_id, "daily_betas")]
    recovery.free_run_slots(instance, run_id)
    assert _holders(instance) == set()
    # a Dagster without the call: a warning naming the tested version, and no recovery
    with pytest.warns(UserWarning, match=f"tested with {recovery.TESTED_DAGSTER}"):
        assert recovery._storage_call(instance, "no_such_call", run_id) is None


def test_recover_dead_runs(instance: dg.DagsterInstance, capsys: pytest.CaptureFixture) -> None:
    host = recovery.cli_run_tags()[recovery.RUN_HOST_TAG]
    dead = _add_run(instance, {recovery.RUN_HOST_TAG: host, recovery.RUN_PID_TAG: str(_dead_pid())})
    alive = _add_run(instance, recovery.cli_run_tags(), claim=False)  # this process: alive
    elsewhere = _add_run(
        instance, {recovery.RUN_HOST_TAG: "another-host", recovery.RUN_PID_TAG: "1"}, claim=False
    )
    untagged = _add_run(instance, {}, dg.DagsterRunStatus.NOT_STARTED, claim=False)
    recovered = recovery.recover_dead_runs(instance, own_run_ids=frozenset({alive}))
    assert recovered == [dead]
    assert instance.get_run_by_id(dead).status == dg.DagsterRunStatus.FAILURE
    for run_id in (alive, elsewhere):
        assert instance.get_run_by_id(run_id).status == dg.DagsterRunStatus.STARTED
    assert instance.get_run_by_id(untagged).status == dg.DagsterRunStatus.NOT_STARTED
    assert _holders(instance) == set()
    out = capsys.readouterr().out
    assert f"recovered run {dead[:8]}" in out and "marked FAILED" in out
    failure = instance.all_logs(dead, of_type=dg.DagsterEventType.RUN_FAILURE)
    assert "is gone" in failure[0].dagster_event.message
    # a run of this pid that this process did not start: the pid was reused
    reused = _add_run(instance, recovery.cli_run_tags(), claim=False)
    assert recovery.recover_dead_runs(instance) == [reused, alive]


def test_slots_of_ended_or_deleted_runs_are_freed(
    instance: dg.DagsterInstance, capsys: pytest.CaptureFixture
) -> None:
    ended = _add_run(instance, {}, dg.DagsterRunStatus.CANCELED)
    assert recovery.recover_dead_runs(instance) == [ended]
    assert "which ended CANCELED" in capsys.readouterr().out
    unknown = str(uuid.uuid4())  # a slot of a run this instance does not know (any more)
    assert instance.event_log_storage.claim_concurrency_slot(DUCKDB_POOL, unknown, "x").is_claimed
    assert recovery.recover_dead_runs(instance) == [unknown]
    assert "which no longer exists" in capsys.readouterr().out
    assert _holders(instance) == set()


# --- beta-pipeline runs --------------------------------------------------------------------------


@dg.asset
def _fails() -> None:
    raise dg.Failure(description="the first line of the error\nand a second one")


@dg.asset
def _works() -> int:
    return 1


def test_runs_lists_recent_runs(
    instance: dg.DagsterInstance, capsys: pytest.CaptureFixture
) -> None:
    assert cli.main(["runs"]) == 0
    assert "no runs" in capsys.readouterr().out
    ok = dg.materialize([_works], instance=instance, tags={"dagster/partition": "2020-01-06"})
    bad = dg.materialize([_fails], instance=instance, raise_on_error=False)
    assert ok.success and not bad.success
    assert cli.main(["runs"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0].split()[:3] == ["run", "job", "status"]
    assert lines[1].startswith(bad.run_id[:8]) and "FAILURE" in lines[1]  # newest first
    assert "_fails: the first line of the error" in lines[1] and "second" not in out
    assert lines[2].startswith(ok.run_id[:8]) and "SUCCESS" in lines[2] and "2020-01-06" in lines[2]
    assert cli.main(["runs", "--status", "FAILED"]) == 0
    out = capsys.readouterr().out
    assert bad.run_id[:8] in out and ok.run_id[:8] not in out
    assert cli.main(["runs", "--limit", "1", "--status", "success,failure"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 2
    with pytest.raises(SystemExit, match="unknown run status"):
        cli.main(["runs", "--status", "BROKEN"])


def _launched(instance: dg.DagsterInstance, pid: int, claim: bool = True) -> str:
    """A STARTED run as Dagster's local run launcher leaves it: no tags of ours, a
    "Started process for run (pid: N)" engine event, and the writer slot claimed."""
    # what the run worker reports (no public API: the fenced private access of support/)
    from beta_pipeline_tests.support.dagster_private import EngineEventData

    run_id = _add_run(instance, {}, claim=claim)
    run = instance.get_run_by_id(run_id)
    instance.report_engine_event(
        f"Started process for run (pid: {pid}).", run, EngineEventData.in_process(pid)
    )
    return run_id


def test_the_daemon_sensor_recovers_dead_launched_runs(instance: dg.DagsterInstance) -> None:
    """Runs launched by the daemon or the UI (local run launcher): a dead worker is marked
    FAILED and its slot freed by the sensor; a live worker is left alone."""
    assert isinstance(instance.run_launcher, dg.DefaultRunLauncher)
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        time.sleep(0.2)
        dead = _launched(instance, _dead_pid())
        alive = _launched(instance, sleeper.pid, claim=False)
        result = recovery.dead_run_sensor(dg.build_sensor_context(instance=instance))
        assert isinstance(result, dg.SkipReason) and dead[:8] in result.skip_message
        assert instance.get_run_by_id(dead).status == dg.DagsterRunStatus.FAILURE
        assert instance.get_run_by_id(alive).status == dg.DagsterRunStatus.STARTED
        holders = {c.run_id for c in recovery.pool_info(instance).claimed_slots}
        assert dead not in holders
        # the worker dies later: the next look recovers it too
        sleeper.kill()
        sleeper.wait()
        recovery.recover_dead_runs(instance, report=lambda _: None)
        assert instance.get_run_by_id(alive).status == dg.DagsterRunStatus.FAILURE
    finally:
        sleeper.kill()


def test_a_reused_pid_is_not_the_runs_worker() -> None:
    """A process started after the run's "Started process" event holds a reused pid."""
    before = time.time()
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        time.sleep(0.5)
        assert recovery._started_after(proc.pid, before - 60)  # started after an old event
        assert not recovery._started_after(proc.pid, time.time() + 60)
    finally:
        proc.kill()


def test_a_killed_but_unreaped_worker_is_dead() -> None:
    """A worker killed with -9 stays a zombie until its parent reaps it: not alive."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        time.sleep(0.3)
        assert recovery._pid_alive(proc.pid, None)
        proc.kill()
        time.sleep(0.3)  # not waited for: a zombie
        assert not recovery._pid_alive(proc.pid, None)
    finally:
        proc.kill()
        proc.wait()
