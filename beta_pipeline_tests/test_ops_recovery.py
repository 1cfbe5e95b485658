"""Operation through real ``beta-pipeline`` processes: a run killed with SIGKILL is recovered by
the next run (which completes and writes the rows of an uninterrupted run), SIGINT/SIGTERM
stop a run promptly (also while it waits for the writer pool), and a copied home runs on its
own instance."""

from __future__ import annotations

import contextlib
import hashlib
import os
import queue
import signal
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from beta_pipeline.defs.partitions import DUCKDB_POOL
from beta_pipeline.defs.recovery import RUN_PID_TAG, cli_run_tags, pool_info
from beta_pipeline.settings import write_instance_config
from beta_pipeline_tests.support.defs import query
from beta_pipeline_tests.support.paths import REPO_ROOT

# end-to-end CLI runs killed and rerun (minutes)
pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

#: 18 months: daily_betas needs a year of returns before OLS-252 has values
START, END = "2019-01-01", "2020-06-30"
SELECT = "raw_prices,raw_market,daily_returns,daily_betas"
#: what ``beta-pipeline run`` must finish within after the previous run was killed
RECOVERY_LIMIT_S = 180
#: how long a stopped CLI may take to exit after SIGINT/SIGTERM
STOP_LIMIT_S = 20


def _env(home: Path) -> dict[str, str]:
    drop = {
        "DAGSTER_HOME",
        "BETA_PIPELINE_DERIVED_DAGSTER_HOME",
        "BETA_PIPELINE_SOURCE",
        "BETA_PIPELINE_CSV_CONFIG",
    }
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env.update(BETA_PIPELINE_HOME=str(home), PYTHONUNBUFFERED="1")
    return env


class Cli:
    """``beta-pipeline <args>`` (``python -m beta_pipeline.cli``) on ``home``, its output read
    by a thread so that waits can time out."""

    def __init__(self, home: Path, *args: str, script: str | None = None) -> None:
        cmd = (
            [sys.executable, "-c", script]
            if script
            else [sys.executable, "-m", "beta_pipeline.cli"]
        )
        self.proc = subprocess.Popen(
            [*cmd, *args],
            env=_env(home),
            cwd=REPO_ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line)
            self._queue.put(line)
        self._queue.put(None)

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def wait_for(self, *texts: str, timeout: float = 120) -> str:
        """The first output line holding every one of ``texts``."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self._queue.get(timeout=max(deadline - time.monotonic(), 0.01))
            except queue.Empty:
                line = ""
            if line is None or time.monotonic() > deadline:
                self.proc.kill()
                raise AssertionError(f"no line with {texts} in:\n{self.output[-4000:]}")
            if all(t in line for t in texts):
                return line

    def finish(self, timeout: float) -> int:
        try:
            rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(
                f"still running after {timeout}s:\n{self.output[-4000:]}"
            ) from None
        self._reader.join(timeout=10)
        return rc


@contextlib.contextmanager
def instance_of(home: Path) -> Iterator[dg.DagsterInstance]:
    """The Dagster instance of a home (read from its generated dagster.yaml)."""
    inst = dg.DagsterInstance.from_config(str(home / "dagster_home"))
    try:
        yield inst
    finally:
        inst.dispose()


def _rows(home: Path, table: str, keys: str) -> pd.DataFrame:
    return query(home / "warehouse.duckdb", f"SELECT * FROM {table} ORDER BY {keys}")


def _pool(inst: dg.DagsterInstance) -> tuple[list[tuple[str, str]], list[str]]:
    info = pool_info(inst)
    return [(c.run_id, c.step_key) for c in info.claimed_slots], [
        p.run_id for p in info.pending_steps
    ]


def test_killed_run_is_recovered_and_the_rerun_matches_an_uninterrupted_run(
    tmp_path: Path,
) -> None:
    args = ("run", "--select", SELECT, "--start", START, "--end", END)
    home, reference_home = tmp_path / "home", tmp_path / "reference"
    reference = Cli(reference_home, *args)
    victim = Cli(home, *args)
    # inside daily_betas' write transaction: the first model's rows are inserted, not committed
    victim.wait_for("daily_betas: capm on", timeout=150)
    victim.proc.send_signal(signal.SIGKILL)
    killed_at = time.monotonic()
    assert victim.finish(timeout=30) == -signal.SIGKILL
    with instance_of(home) as inst:
        (killed,) = inst.get_runs()
        assert killed.status == dg.DagsterRunStatus.STARTED
        assert killed.tags[RUN_PID_TAG] == str(victim.proc.pid)
        claimed, _ = _pool(inst)
        assert claimed == [(killed.run_id, "daily_betas")]  # the slot a dead run never frees

    rerun = Cli(home, *args)
    assert rerun.finish(timeout=RECOVERY_LIMIT_S) == 0, rerun.output[-4000:]
    recovery_s = time.monotonic() - killed_at
    print(f"kill -9 -> second run done: {recovery_s:.1f}s")
    assert f"recovered run {killed.run_id[:8]}" in rerun.output
    with instance_of(home) as inst:
        assert inst.get_run_by_id(killed.run_id).status == dg.DagsterRunStatus.FAILURE
        second = [r for r in inst.get_runs() if r.run_id != killed.run_id]
        assert [r.status for r in second] == [dg.DagsterRunStatus.SUCCESS]
        assert _pool(inst) == ([], [])

    assert reference.finish(timeout=RECOVERY_LIMIT_S) == 0, reference.output[-4000:]
    for table, keys in (
        ("returns.daily", "symbol, date"),
        ("betas.daily", "model, estimator, factor, symbol, date"),
    ):
        got, want = _rows(home, table, keys), _rows(reference_home, table, keys)
        assert len(want) > 1000, table
        pd.testing.assert_frame_equal(got, want, obj=table)
    betas = _rows(home, "betas.daily", "date")
    assert betas.loc[betas["estimator"] == "ols_252", "beta"].notna().any()


def test_sigint_during_a_step_cancels_the_run_and_frees_its_slot(tmp_path: Path) -> None:
    home = tmp_path / "home"
    cli = Cli(
        home,
        "run",
        "--select",
        "raw_prices,raw_market,daily_returns",
        "--start",
        START,
        "--end",
        END,
    )
    cli.wait_for("raw_market: wrote", timeout=150)  # raw_market is ending, raw_prices next
    cli.proc.send_signal(signal.SIGINT)
    sent = time.monotonic()
    assert cli.finish(timeout=STOP_LIMIT_S) == 128 + signal.SIGINT, cli.output[-4000:]
    print(f"SIGINT -> exit: {time.monotonic() - sent:.1f}s")
    assert "stopped by SIGINT: CANCELED, pool slots freed" in cli.output
    assert "did not stop within" not in cli.output  # Dagster stopped the step itself
    with instance_of(home) as inst:
        (run,) = inst.get_runs()
        assert run.status == dg.DagsterRunStatus.CANCELED
        assert _pool(inst) == ([], [])


def test_sigterm_while_waiting_for_the_writer_pool(tmp_path: Path) -> None:
    home = tmp_path / "home"
    write_instance_config(home / "dagster_home")  # what the CLI's start writes
    holder = str(uuid.uuid4())
    with instance_of(home) as inst:  # a live run (of this test's process) holds the slot
        inst.add_run(
            dg.DagsterRun(
                job_name="holder_job",
                run_id=holder,
                status=dg.DagsterRunStatus.STARTED,
                tags=cli_run_tags(),
            )
        )
        inst.event_log_storage.initialize_concurrency_limit_to_default(DUCKDB_POOL)
        assert inst.event_log_storage.claim_concurrency_slot(
            DUCKDB_POOL, holder, "holder_step"
        ).is_claimed
    cli = Cli(home, "run", "--select", "raw_prices", "--start", "2020-01-06", "--end", "2020-01-10")
    line = cli.wait_for("waits", timeout=120)
    assert f"for the {DUCKDB_POOL} slot, held by run {holder[:8]} (holder_job, STARTED" in line
    assert "step holder_step" in line
    cli.proc.send_signal(signal.SIGTERM)
    sent = time.monotonic()
    assert cli.finish(timeout=STOP_LIMIT_S) == 128 + signal.SIGTERM, cli.output[-4000:]
    print(f"SIGTERM while waiting -> exit: {time.monotonic() - sent:.1f}s")
    assert "stopped by SIGTERM: CANCELED, pool slots freed" in cli.output
    assert "did not stop within" not in cli.output  # the wait was interrupted, not timed out
    with instance_of(home) as inst:
        (mine,) = [r for r in inst.get_runs() if r.run_id != holder]
        assert mine.status == dg.DagsterRunStatus.CANCELED
        assert inst.get_run_by_id(holder).status == dg.DagsterRunStatus.STARTED
        assert _pool(inst) == ([(holder, "holder_step")], [holder])  # only the holder's


STUCK = textwrap.dedent(
    """
    import signal, threading, uuid
    import dagster as dg
    from beta_pipeline import cli
    from beta_pipeline.defs import recovery
    from beta_pipeline.settings import ensure_home

    ensure_home()
    cli.STOP_GRACE_S = 1.0
    inst = dg.DagsterInstance.get()
    run_id = str(uuid.uuid4())
    inst.add_run(dg.DagsterRun(job_name="daily_job", run_id=run_id,
                               status=dg.DagsterRunStatus.STARTED, tags=recovery.cli_run_tags()))
    signal.signal(signal.SIGTERM, lambda *a: None)  # deferred, as Dagster's handler does
    with cli.RunWatch(inst, run_id, "daily_job"):
        print("stuck in", run_id, flush=True)
        threading.Event().wait()  # C code that never looks at signals (a long DuckDB call)
    """
)


def test_a_run_stuck_in_c_code_is_ended_after_the_grace_period(tmp_path: Path) -> None:
    home = tmp_path / "home"
    cli = Cli(home, script=STUCK)
    run_id = cli.wait_for("stuck in", timeout=60).split()[-1]
    cli.proc.send_signal(signal.SIGTERM)
    assert cli.finish(timeout=STOP_LIMIT_S) == 128 + signal.SIGTERM, cli.output
    assert "did not stop within 1s; ending it" in cli.output
    with instance_of(home) as inst:
        assert inst.get_run_by_id(run_id).status == dg.DagsterRunStatus.CANCELED


def _digests(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_a_copied_home_runs_on_its_own_instance(tmp_path: Path) -> None:
    original, copy = tmp_path / "original", tmp_path / "copy"
    args = ("run", "--select", "raw_prices", "--start", "2020-01-06", "--end", "2020-01-10")
    assert Cli(original, *args).finish(timeout=120) == 0
    subprocess.run(["cp", "-r", str(original), str(copy)], check=True)
    before = _digests(original)
    with instance_of(original) as inst:
        original_runs = {r.run_id for r in inst.get_runs()}
    cli = Cli(copy, *args)
    assert cli.finish(timeout=120) == 0, cli.output[-4000:]
    assert _digests(original) == before  # not one byte of the original changed
    config = (copy / "dagster_home" / "dagster.yaml").read_text()
    assert str(original) not in config and str(copy / "dagster_home") in config
    with instance_of(copy) as inst:
        copy_runs = {r.run_id for r in inst.get_runs()}
    (new,) = copy_runs - original_runs
    assert original_runs < copy_runs
    assert (copy / "dagster_home" / "history" / "runs" / f"{new}.db").is_file()
    assert not (original / "dagster_home" / "history" / "runs" / f"{new}.db").exists()
