"""``beta-pipeline run`` and ``query`` in-process, on a temporary BETA_PIPELINE_HOME."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from beta_pipeline.cli import main
from beta_pipeline_tests.support.defs import module_home, query

START, END = "2020-01-06", "2020-01-17"


@pytest.fixture(scope="module")
def ran(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The embedded source materialized over two weeks through the CLI, once per module.

    The same setup as conftest's ``home`` fixture (a fresh BETA_PIPELINE_HOME and
    DAGSTER_HOME), module-scoped so that the three CLI runs happen once.
    """
    root = tmp_path_factory.mktemp("cli") / "bp_home"
    with module_home(root):
        code = main(
            ["run", "--start", START, "--end", END, "--select", "group:ingestion,group:returns"]
        )
        assert code == 0
        yield root


def test_run_materializes_into_home_and_records_runs(ran: Path) -> None:
    warehouse = ran / "warehouse.duckdb"
    assert warehouse.is_file()
    prices = query(warehouse, "SELECT count(*) AS n, count(DISTINCT symbol) AS s FROM raw.prices")
    assert prices["s"].iloc[0] == 20
    assert prices["n"].iloc[0] == 20 * 10  # 10 weekdays, no holiday
    daily = query(
        warehouse, "SELECT min(date) AS lo, max(date) AS hi, count(*) AS n FROM returns.daily"
    )
    assert str(daily["lo"].iloc[0])[:10] == "2020-01-07"  # no price before the range
    assert str(daily["hi"].iloc[0])[:10] == END
    assert daily["n"].iloc[0] == 20 * 9
    assert query(warehouse, "SELECT count(*) AS n FROM returns.monthly")["n"].iloc[0] == 20
    assert query(warehouse, "SELECT count(*) AS n FROM raw.securities")["n"].iloc[0] >= 20

    instance = dg.DagsterInstance.get()
    try:
        assert Path(instance.root_directory).resolve() == (ran / "dagster_home").resolve()
        runs = instance.get_runs()
        assert len(runs) >= 2
        assert {r.job_name for r in runs} >= {"static_job", "daily_job", "monthly_job"}
        assert all(r.is_success for r in runs)
    finally:
        instance.dispose()


def test_runs_are_tagged_with_their_process_and_listed(
    ran: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import os
    import socket

    from beta_pipeline.defs.recovery import RUN_HOST_TAG, RUN_PID_TAG

    instance = dg.DagsterInstance.get()
    try:
        runs = instance.get_runs()
    finally:
        instance.dispose()
    assert {r.tags[RUN_HOST_TAG] for r in runs} == {socket.gethostname()}
    assert {r.tags[RUN_PID_TAG] for r in runs} == {str(os.getpid())}
    assert main(["runs", "--limit", "50"]) == 0
    out = capsys.readouterr().out
    assert all(r.run_id[:8] in out for r in runs)
    assert f"{START}..{END}" in out and "SUCCESS" in out and "FAILURE" not in out
    assert main(["info"]) == 0
    assert "binding:   source=embedded fingerprint=" in capsys.readouterr().out


def test_query_prints_a_table(ran: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["query", "SELECT count(*) AS n FROM returns.daily"]) == 0
    out = capsys.readouterr().out.split()
    assert out == ["n", str(20 * 9)]


def test_query_is_read_only(ran: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["query", "DELETE FROM returns.daily"]) == 1
    assert "read-only" in capsys.readouterr().err
    assert main(["query", "CREATE TABLE returns.junk AS SELECT 1 AS x"]) == 1
    assert "read-only" in capsys.readouterr().err
    n = query(ran / "warehouse.duckdb", "SELECT count(*) AS n FROM returns.daily")["n"].iloc[0]
    assert n == 20 * 9


def test_neuralbeta_partition_choice() -> None:
    import argparse

    from beta_pipeline.cli import _has_market_model, _static_keys
    from beta_pipeline.defs.neuralbeta import model_partitions, scenario_partitions

    args = argparse.Namespace(
        nb_experiments="stepwise,univariate", nb_models="gru_nbi,attn_nb", nb_market_study="both"
    )
    keys = _static_keys("neuralbeta_model_job", model_partitions, args)
    assert keys == [
        "stepwise|gru_nbi",
        "stepwise|attn_nb",
        "univariate|gru_nbi",
        "univariate|attn_nb",
    ]
    assert all(k in model_partitions.get_partition_keys() for k in keys)
    # by default the market experiments train walk-forward, not on Table 1's single split
    args.nb_market_study = "walkforward"
    assert _static_keys("neuralbeta_model_job", model_partitions, args) == keys[:2]
    assert _static_keys("synthetic_scenarios_job", scenario_partitions, args) == [
        "stepwise",
        "kalman_step",
    ]
    assert _has_market_model(args)
    assert not _has_market_model(argparse.Namespace(nb_experiments="constant"))
    with pytest.raises(SystemExit, match="unknown NeuralBeta model"):
        _static_keys(
            "neuralbeta_model_job",
            model_partitions,
            argparse.Namespace(nb_experiments="all", nb_models="lstm", nb_market_study="both"),
        )


def test_yfinance_runs_without_dates_through_the_last_complete_session(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`beta-pipeline run --source yfinance` without --start/--end: from the source's start
    through the last complete trading session (no download to find out)."""
    from beta_pipeline import cli
    from beta_pipeline.lib import calendar

    monkeypatch.setenv("BETA_PIPELINE_SOURCE", "yfinance")
    first, last = cli._default_range()
    assert first == pd.Timestamp("2000-01-01")
    assert last in (calendar.last_complete_session(), calendar.previous_session(
        calendar.last_complete_session()))  # a close may pass between the two calls
    assert calendar.is_session(last)
