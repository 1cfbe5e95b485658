"""A day computed incrementally equals the same day from a backfill (issue 12), through the
CLI: every model (CAPM on the embedded source; CAPM/FF3/FF5 on a slice of the shared
Kaggle and Fama-French files) and every estimator, compared exactly. The one-day runs
resume the Kalman filter from ``betas.estimator_state`` (no refit: ``fit_kalman`` is made
to fail during them) and their window estimators compute only the day's rows."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from beta_pipeline_tests.support.defs import write_shared_slices
from beta_pipeline_tests.support.paths import shared_data_dir

# end-to-end CLI backfills and one-day runs (minutes)
pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

SELECT = ["--select", "raw_prices,raw_market,daily_returns,daily_betas"]
ESTIMATORS = {"ols_60", "ols_252", "ols_3m", "ewm", "blume_252", "vasicek_252",
              "dimson_252", "welch_252", "kalman"}
DATA = shared_data_dir()
FILES = ("all_stocks_5yr.csv.gz", "gspc_daily.csv.gz", "ff3_daily.csv.gz", "ff5_daily.csv.gz")
SLICE_SYMBOLS = ("AAPL", "MSFT", "JPM", "XOM", "KO", "PG", "GE", "T", "O", "MRO")


def _shared_slice(folder: Path, lo: str, hi: str) -> Path:
    """Ten Kaggle stocks, ^GSPC and daily FF3/FF5 in [lo, hi] as CSVs, and their config."""
    assert DATA is not None
    return write_shared_slices(DATA, folder, [(lo, hi)], SLICE_SYMBOLS, ff5=True)


def _sorted(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows in key order (the table has no primary key: insertion order differs)."""
    keys = ["date", "model", "estimator", "symbol", "factor"]
    return frame.sort_values(keys, kind="stable").reset_index(drop=True)


SOURCES = [
    # > 504 sessions: the EW half-life and the Kalman variances are tuned (first 504)
    pytest.param("embedded", ("2019-01-02", "2021-03-03"), ["2021-03-04", "2021-03-05"],
                 {"capm"}, id="embedded-capm"),
    pytest.param(
        "shared", ("2013-02-08", "2015-04-30"), ["2015-05-01", "2015-05-04"],
        {"capm", "ff3", "ff5"}, id="shared-capm-ff3-ff5",
        marks=pytest.mark.skipif(
            DATA is None or not all((DATA / f).is_file() for f in FILES),
            reason="../shared/data (Kaggle stocks, ^GSPC, FF3/FF5 daily) is not beside the repo",
        ),
    ),
]


@pytest.mark.parametrize(("source", "history", "days", "models"), SOURCES)
def test_one_day_runs_equal_a_backfill_exactly(
    source: str,
    history: tuple[str, str],
    days: list[str],
    models: set[str],
    home: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from beta_pipeline.cli import main
    from beta_pipeline.lib import beta_tables
    from beta_pipeline_tests.support.defs import table

    if source == "shared":
        folder = tmp_path / "slice"
        folder.mkdir()
        config = _shared_slice(folder, history[0], days[-1])
        monkeypatch.setenv("BETA_PIPELINE_SOURCE", "csv")
        monkeypatch.setenv("BETA_PIPELINE_CSV_CONFIG", str(config))
    assert main(["run", *SELECT, "--start", history[0], "--end", history[1]]) == 0
    state = table(home / "warehouse.duckdb", "betas.estimator_state")
    assert len(state) and set(state["date"]) == {pd.Timestamp(history[1])}

    def no_refit(*args, **kwargs):
        raise AssertionError("the one-day run re-fitted the Kalman filter")

    reads: list[object] = []
    read = beta_tables.read_returns_wide

    def recorded(conn, end, start=None):
        reads.append(start)
        return read(conn, end, start)

    from beta_pipeline.defs.baselines import daily as baseline_assets

    plotted: list[str] = []
    plot = baseline_assets._example_plot

    def plot_recorded(db, start, end, ols):
        plotted.append(f"{start:%Y-%m-%d}")
        return plot(db, start, end, ols)

    with monkeypatch.context() as patch:
        patch.setattr(beta_tables, "fit_kalman", no_refit)
        patch.setattr(beta_tables, "read_returns_wide", recorded)
        patch.setattr(baseline_assets, "_example_plot", plot_recorded)
        for day in days:
            assert main(["run", *SELECT, "--start", day, "--end", day]) == 0
        # re-running the last day resumes from the state kept for the session before it
        assert main(["run", *SELECT, "--start", days[-1], "--end", days[-1]]) == 0
    # one-day runs draw the example plot only on the week's last session (a Friday here)
    fridays = [d for d in [*days, days[-1]] if pd.Timestamp(d).day_name() == "Friday"]
    assert plotted == fridays, plotted
    # each day read only a trailing part of the history (its estimators' lookback)
    assert len(reads) == len(days) + 1 and all(r is not None for r in reads), reads
    assert all(pd.Timestamp(r) > pd.Timestamp(history[0]) for r in reads), reads
    state = table(home / "warehouse.duckdb", "betas.estimator_state")
    # one state per run's last session (the re-run replaced its own), newest last
    assert sorted(set(state["date"])) == [pd.Timestamp(d) for d in (history[1], *days)]
    incremental = _sorted(table(home / "warehouse.duckdb", "betas.daily"))

    other = tmp_path / "backfill_home"
    monkeypatch.setenv("BETA_PIPELINE_HOME", str(other))
    monkeypatch.setenv("DAGSTER_HOME", str(other / "dagster_home"))
    assert main(["run", *SELECT, "--start", history[0], "--end", days[-1]]) == 0
    backfill = _sorted(table(other / "warehouse.duckdb", "betas.daily"))

    for day in days:
        got = incremental[incremental["date"] == pd.Timestamp(day)].reset_index(drop=True)
        want = backfill[backfill["date"] == pd.Timestamp(day)].reset_index(drop=True)
        assert set(want["model"]) == models, day
        for model in models:
            ests = set(want.loc[want["model"] == model, "estimator"])
            assert ests == (ESTIMATORS if model == "capm" else ESTIMATORS - {"kalman"}), day
        pd.testing.assert_frame_equal(got, want, check_exact=True, obj=day)
    # the whole table too (the history rows were written by the same code)
    pd.testing.assert_frame_equal(incremental, backfill, check_exact=True)
    # and the filter state the two leave behind after the last day
    def last_state(path: Path) -> pd.DataFrame:
        state = table(path, "betas.estimator_state").drop(columns="saved_at")
        newest = state[state["date"] == pd.Timestamp(days[-1])]
        return newest.sort_values(["model", "estimator", "symbol"]).reset_index(drop=True)

    pd.testing.assert_frame_equal(
        last_state(home / "warehouse.duckdb"), last_state(other / "warehouse.duckdb"),
        check_exact=True,
    )
