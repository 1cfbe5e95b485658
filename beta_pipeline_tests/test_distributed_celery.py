"""Walk-forward training fanned out on Celery workers (issue 14), against one in-process run.

Two homes get the same small warehouse (embedded source, 2014-01 .. 2017-01). In the first,
a throwaway PostgreSQL server holds the Dagster instance, a throwaway Redis is the Celery
broker and result backend, and two ``dagster-celery`` workers (one task at a time each) run
the steps: four walk-forward partitions (2 cut-offs x 2 models, tiny budget) are launched at
once as four ``dagster job execute`` runs with ``BETA_PIPELINE_EXECUTOR=celery``, and the
single writer (``neuralbeta_runs``) then loads their bundles in-process. The
second home trains the same partitions with the in-process executor. The test requires

- every step ran in a Celery worker, not in its run's process: the run's engine event names
  the worker (``w1@host`` / ``w2@host``), the step's events carry the pid of a process of
  that worker (its Celery pool), and the worker's own log holds the run; both workers ran
  steps;
- identical ``neuralbeta.runs`` (but ids, timings, paths), ``neuralbeta.history`` and the
  daily NeuralBeta betas of Dec 2016 - Jan 2017 (served by the two cut-offs) in both homes.

Skipped only when ``redis-server`` or PostgreSQL's binaries are missing (Debian packages
``redis-server``, ``postgresql``; ``scripts/system_packages.sh`` installs them in CI).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest
import yaml

from beta_pipeline.defs import executors
from beta_pipeline.defs.neuralbeta.walkforward import walkforward_partitions
from beta_pipeline.settings import INSTANCE_STORAGE_ENV, POSTGRES_URL_ENV
from beta_pipeline_tests.support import pg_server
from beta_pipeline_tests.support.celery_workers import celery_workers, execute_partitions
from beta_pipeline_tests.support.defs import QUIET, build, failure_text, query, run
from beta_pipeline_tests.support.redis_server import find_redis_server, redis_server
from beta_pipeline_tests.support.storage import instance_at
from beta_pipeline_tests.support.tags import partition_range_tags

FIRST, LAST = "2014-01-02", "2017-01-31"
CUTOFFS = ("2015", "2016")
SPECS = ("univariate.gru_nbi", "univariate.gru_nb")
PARTITIONS = tuple(
    str(dg.MultiPartitionKey({"cutoff": c, "model": m})) for c in CUTOFFS for m in SPECS
)
TRAINING = {"budget": "tiny", "threads": 1, "max_steps": 30, "accelerator": "cpu", "seed": 0}
TRAIN_JOB, WRITER_JOB = "neuralbeta_walkforward_job", "neuralbeta_runs_job"
#: The served betas compared between the homes (cut-off 2015 serves 2016, 2016 serves 2017).
BETAS_FIRST, BETAS_LAST = "2016-12-01", "2017-01-31"
#: Columns of neuralbeta.runs that differ between two runs of the same training.
VOLATILE = ["run_id", "checkpoint", "seconds", "cpu_seconds", "created_at"]


# --- executor selection (no services) ---------------------------------------------------------


def test_training_executor_follows_the_environment() -> None:
    assert executors.training_executor({}) is None
    assert executors.training_executor({"BETA_PIPELINE_EXECUTOR": " Default "}) is None
    assert executors.training_executor({"BETA_PIPELINE_EXECUTOR": "in-process"}).name == (
        "in_process"
    )
    multi = executors.training_executor({"BETA_PIPELINE_EXECUTOR": "multiprocess"})
    assert multi is dg.multiprocess_executor
    capped = executors.training_executor(
        {"BETA_PIPELINE_EXECUTOR": "multiprocess", "BETA_PIPELINE_MAX_CONCURRENT": "3"}
    )
    assert capped.name == "multiprocess" and capped is not dg.multiprocess_executor
    celery = executors.training_executor({"BETA_PIPELINE_EXECUTOR": "celery"})
    assert celery.name == "celery"
    with pytest.raises(ValueError, match="expected one of"):
        executors.training_executor({"BETA_PIPELINE_EXECUTOR": "k8s"})
    with pytest.raises(ValueError, match="positive integer"):
        executors.training_executor(
            {"BETA_PIPELINE_EXECUTOR": "multiprocess", "BETA_PIPELINE_MAX_CONCURRENT": "0"}
        )


def test_celery_urls_default_and_stay_out_of_the_config() -> None:
    default = executors.DEFAULT_BROKER
    assert executors.celery_config({}) == {"broker": default, "backend": default}
    assert executors.resolved_celery_urls({}) == (default, default)
    secret = "redis://:pw@redis.example:6379/1"
    env = {executors.BROKER_ENV: secret}
    # a URL from the environment is referred to, never copied (it may hold a password)
    broker_ref = {"env": executors.BROKER_ENV}
    assert executors.celery_config(env) == {"broker": broker_ref, "backend": broker_ref}
    assert executors.resolved_celery_urls(env) == (secret, secret)
    env[executors.BACKEND_ENV] = "redis://redis.example:6379/2"
    assert executors.celery_config(env)["backend"] == {"env": executors.BACKEND_ENV}
    assert executors.resolved_celery_urls(env)[1] == "redis://redis.example:6379/2"


WIRING = """
import json, sys
from beta_pipeline.definitions import defs
job = defs.resolve_job_def("neuralbeta_walkforward_job")
print(json.dumps({"executor": job.executor_def.name, "torch": "torch" in sys.modules}))
"""


@pytest.mark.parametrize(
    ("choice", "name"),
    [("", "multi_or_in_process_executor"), ("celery", "celery")],
)
def test_walkforward_job_takes_the_executor_of_its_environment(choice: str, name: str) -> None:
    env = {k: v for k, v in os.environ.items() if k != executors.EXECUTOR_ENV}
    env[executors.EXECUTOR_ENV] = choice
    out = subprocess.run(
        [sys.executable, "-c", WIRING], env=env, capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got == {"executor": name, "torch": False}  # celery or not, definitions stay light


# --- the distributed run ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def pg_bin_dir() -> Path:
    """PostgreSQL's binaries; skips (before anything is built) without them or Redis."""
    missing = []
    if find_redis_server() is None:
        missing.append("redis-server (apt-get install redis-server)")
    bin_dir = pg_server.find_bin_dir()
    if bin_dir is None:
        missing.append("PostgreSQL's initdb/pg_ctl (apt-get install postgresql)")
    if missing:
        pytest.skip("needs " + " and ".join(missing) + "; scripts/system_packages.sh")
    assert bin_dir is not None
    return bin_dir


@pytest.fixture(scope="module")
def source_warehouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Prices, market series and daily returns of the embedded source, FIRST..LAST."""
    tmp = tmp_path_factory.mktemp("wf_source")
    path = tmp / "warehouse.duckdb"
    keys = [dg.AssetKey(a) for a in ("raw_prices", "raw_market", "daily_returns")]
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv(INSTANCE_STORAGE_ENV, raising=False)
        mp.setenv("DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS", "1")  # as the CLI
        instance = instance_at(tmp / "dagster_home")  # batched event log: 3 x 775 sessions
        try:
            result = run(build(path, tmp), "daily_job", FIRST, LAST, keys=keys, instance=instance)
        finally:
            instance.dispose()
    assert result.success
    return path


def _new_home(root: Path, warehouse: Path) -> Path:
    (root / "dagster_home").mkdir(parents=True)
    shutil.copyfile(warehouse, root / "warehouse.duckdb")
    return root


def _run_config(path: Path) -> Path:
    path.write_text(
        # console logging at Dagster's default (DEBUG): a worker's log names the runs it served
        yaml.safe_dump({"ops": {"neuralbeta_walkforward_model": {"config": TRAINING}}})
    )
    return path


def _write_runs(root: Path, instance: dg.DagsterInstance) -> None:
    """The single writer, in this process: load the home's bundles, then serve the betas."""
    defs = build(root / "warehouse.duckdb", root)
    result = defs.resolve_job_def(WRITER_JOB).execute_in_process(
        instance=instance, raise_on_error=False, run_config=QUIET
    )
    assert result.success, failure_text(result)
    keys = [dg.AssetKey("neuralbeta_betas"), dg.AssetKey("nbi_weights")]
    betas = defs.resolve_job_def("neuralbeta_daily_job").execute_in_process(
        instance=instance,
        tags=partition_range_tags(BETAS_FIRST, BETAS_LAST),
        asset_selection=keys,
        raise_on_error=False,
        run_config=QUIET,
    )
    assert betas.success, failure_text(betas)


@pytest.fixture(scope="module")
def celery_home(pg_bin_dir: Path, source_warehouse: Path, tmp_path_factory) -> Iterator[dict]:
    """The four partitions trained on two Celery workers, their bundles loaded."""
    root = _new_home(tmp_path_factory.mktemp("wf_celery"), source_warehouse)
    with (
        pg_server.postgres_server(pg_bin_dir) as pg_url,
        redis_server() as redis_url,
        pytest.MonkeyPatch.context() as mp,
    ):
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("BETA_PIPELINE_", "DAGSTER_", "PYTEST_"))
        }
        env |= {
            "BETA_PIPELINE_HOME": str(root),
            "DAGSTER_HOME": str(root / "dagster_home"),
            INSTANCE_STORAGE_ENV: "postgres",
            POSTGRES_URL_ENV: pg_url,
            executors.EXECUTOR_ENV: "celery",
            executors.BROKER_ENV: redis_url,
            "BETA_PIPELINE_AUTOMATION": "off",
        }
        mp.setenv(INSTANCE_STORAGE_ENV, "postgres")
        mp.setenv(POSTGRES_URL_ENV, pg_url)
        # dagster.yaml (PostgreSQL storage) and the instance's tables, before any worker
        # or run process opens it at the same time
        instance = instance_at(root / "dagster_home")
        try:
            with celery_workers(2, broker=redis_url, env=env, folder=root / "workers") as workers:
                launched = execute_partitions(
                    TRAIN_JOB,
                    [walkforward_partitions.get_tags_for_partition_key(k) for k in PARTITIONS],
                    env=env,
                    run_config=_run_config(root / "run_config.yaml"),
                    folder=root / "runs",
                    timeout=400,
                )
                pids = {w.node: w.pids() for w in workers}
            logs = {w.node: w.log_text() for w in workers}
            failed = [r for r in launched if r.returncode != 0]
            assert not failed, "\n\n".join(r.log.read_text()[-3000:] for r in failed)
            _write_runs(root, instance)
            yield {
                "root": root,
                "instance": instance,
                "launched": launched,
                "worker_logs": logs,
                "worker_pids": pids,
            }
        finally:
            instance.dispose()


@pytest.fixture(scope="module")
def in_process_home(source_warehouse: Path, tmp_path_factory) -> Path:
    """The same partitions, one after the other, with the in-process executor."""
    root = _new_home(tmp_path_factory.mktemp("wf_in_process"), source_warehouse)
    defs = build(root / "warehouse.duckdb", root)
    instance = dg.DagsterInstance.ephemeral()
    job = defs.resolve_job_def(TRAIN_JOB)
    for key in PARTITIONS:
        result = job.execute_in_process(
            instance=instance,
            partition_key=key,
            raise_on_error=False,
            run_config={**QUIET, "ops": {"neuralbeta_walkforward_model": {"config": TRAINING}}},
        )
        assert result.success, f"{key}: {failure_text(result)}"
    _write_runs(root, instance)
    return root


def _step_events(instance: dg.DagsterInstance, run_id: str) -> list[dg.DagsterEvent]:
    return [e.dagster_event for e in instance.all_logs(run_id) if e.dagster_event is not None]


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_steps_ran_on_two_celery_workers(celery_home) -> None:
    instance: dg.DagsterInstance = celery_home["instance"]
    records = instance.get_run_records(dg.RunsFilter(job_name=TRAIN_JOB))
    by_partition = {r.dagster_run.tags["dagster/partition"]: r for r in records}
    assert sorted(by_partition) == sorted(PARTITIONS)
    orchestrators = {r.partition: r.pid for r in celery_home["launched"]}
    workers, pids, used = celery_home["worker_pids"], set(), set()
    for key, record in by_partition.items():
        assert record.dagster_run.status == dg.DagsterRunStatus.SUCCESS, key
        events = _step_events(instance, record.dagster_run.run_id)
        # per step (the training and its asset check): the worker's engine event names it
        # (the run's process logs it again on receipt), ...
        nodes = {
            e.step_key: str(e.event_specific_data.metadata["Celery worker"].value)
            for e in events
            if e.event_type_value == "ENGINE_EVENT" and "in celery worker" in (e.message or "")
        }
        starts = {e.step_key: e.pid for e in events if e.event_type_value == "STEP_START"}
        assert "neuralbeta_walkforward_model" in starts, (key, sorted(starts))
        assert set(nodes) == set(starts), (key, nodes, starts)
        for step, pid in starts.items():
            # ... the step ran in a process of that worker, not in the run's process, ...
            assert pid != orchestrators[key], (key, step)
            assert pid in workers[nodes[step]], (key, step, pid, workers)
            pids.add(pid)
        # ... and the worker's own log holds the run
        for node in set(nodes.values()):
            assert record.dagster_run.run_id in celery_home["worker_logs"][node], (key, node)
        used.update(nodes.values())
    assert used == set(celery_home["worker_logs"]), used  # both workers ran steps
    assert len(pids) >= 2, pids


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_celery_and_in_process_runs_are_identical(celery_home, in_process_home) -> None:
    def runs(root: Path) -> pd.DataFrame:
        frame = query(
            root / "warehouse.duckdb", "SELECT * FROM neuralbeta.runs ORDER BY cutoff, model"
        )
        return frame.drop(columns=VOLATILE).reset_index(drop=True)

    def history(root: Path) -> pd.DataFrame:
        return query(
            root / "warehouse.duckdb",
            "SELECT r.cutoff, h.* EXCLUDE (run_id) FROM neuralbeta.history h "
            "JOIN neuralbeta.runs r USING (run_id, experiment, model) "
            "ORDER BY r.cutoff, h.model, h.step",
        )

    def betas(root: Path) -> pd.DataFrame:
        frame = query(root / "warehouse.duckdb", "SELECT * FROM neuralbeta.betas")
        keys = [c for c in ("date", "symbol", "experiment", "model", "factor") if c in frame]
        frame = frame.drop(columns=["run_id"], errors="ignore")
        return frame.sort_values(keys).reset_index(drop=True)

    a, b = celery_home["root"], in_process_home
    runs_a = runs(a)
    assert len(runs_a) == len(PARTITIONS)
    assert sorted(
        runs_a["cutoff"].astype(str) + "|" + runs_a["experiment"] + "." + runs_a["model"]
    ) == sorted(PARTITIONS)
    assert (runs_a["study"] == "walkforward").all()
    pd.testing.assert_frame_equal(runs_a, runs(b))
    hist_a = history(a)
    assert len(hist_a) >= len(PARTITIONS)
    pd.testing.assert_frame_equal(hist_a, history(b))
    betas_a = betas(a)
    assert len(betas_a) > 0
    pd.testing.assert_frame_equal(betas_a, betas(b))
