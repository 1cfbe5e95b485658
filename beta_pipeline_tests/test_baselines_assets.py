"""``daily_betas``, ``monthly_betas`` and ``hedging_performance`` run through Dagster on the
embedded source (3 stocks, 2016-01 .. 2017-06, small windows).

The pipeline is materialized once per module (a daily backfill, then one incremental day, the
monthly, static and analytics jobs); tests that run assets again work on their own copy of
that warehouse (one DuckDB file per test).
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd
import pytest

from beta_pipeline.definitions import build_definitions
from beta_pipeline.defs.resources import ArtifactStore, DuckDBWarehouse, PriceSourceResource
from beta_pipeline.lib import beta_tables as bt
from beta_pipeline.lib.estimators import fit_kalman_panel
from beta_pipeline.lib.warehouse import open_warehouse
from beta_pipeline_tests.support.defs import module_home
from beta_pipeline_tests.support.tags import (
    ASSET_PARTITION_RANGE_END_TAG,
    ASSET_PARTITION_RANGE_START_TAG,
)

pytestmark = pytest.mark.slow  # every test reads a module fixture of ~90 s

SYMBOLS = ["AAPL", "JPM", "KO"]
FIRST, BACKFILL_LAST, LAST = "2016-01-01", "2017-06-29", "2017-06-30"
MONTH_FIRST, MONTH_LAST = "2016-01-01", "2017-06-01"
DAILY_CONFIG = {
    "ols_windows": [20, 60],
    "tidy_window": 21,
    "tidy_min_obs": 15,
    "ewm_window": 60,
    "adjusted_window": 60,
    "ewm_half_life_grid": [5, 21],
    "tuning_sessions": 250,  # the backfill reads ~375 sessions
}
ESTIMATORS = {
    "ols_20", "ols_60", "ols_3m", "ewm", "blume_60", "vasicek_60", "dimson_60", "welch_60",
    "kalman",
}
MONTHLY_CONFIG = {"window": 12, "min_obs": 10}
REFERENCE = "ols_60"
DAILY_RUN_CONFIG = {"ops": {"daily_betas": {"config": DAILY_CONFIG}}}


@dataclass
class Built:
    warehouse: Path
    artifacts: Path
    instance: dg.DagsterInstance
    results: dict[str, dg.ExecuteInProcessResult]


def _defs(warehouse: Path, artifacts: Path) -> dg.Definitions:
    return build_definitions(
        {
            "warehouse_db": DuckDBWarehouse(path=str(warehouse)),
            "prices": PriceSourceResource(kind="embedded", symbols=SYMBOLS),
            "artifacts": ArtifactStore(root=str(artifacts)),
        }
    )


def _run(
    defs: dg.Definitions,
    job_name: str,
    first: str | None = None,
    last: str | None = None,
    *,
    instance: dg.DagsterInstance,
    run_config: dict | None = None,
    assets: list[str] | None = None,
) -> dg.ExecuteInProcessResult:
    job = defs.resolve_job_def(job_name)
    tags = {}
    if first is not None:
        tags = {
            ASSET_PARTITION_RANGE_START_TAG: first,
            ASSET_PARTITION_RANGE_END_TAG: last or first,
        }
    return job.execute_in_process(
        instance=instance,
        tags=tags,
        run_config=run_config or {},
        asset_selection=[dg.AssetKey(a) for a in assets] if assets else None,
        raise_on_error=False,
    )


def _failures(result: dg.ExecuteInProcessResult) -> str:
    parts = []
    for event in result.get_step_failure_events():
        error = event.event_specific_data.error
        while error is not None:
            parts.append(error.message)
            error = error.cause
    return "\n".join(parts)


def _warnings(instance: dg.DagsterInstance, result: dg.ExecuteInProcessResult) -> list[str]:
    return [
        e.user_message
        for e in instance.all_logs(result.run_id)
        if e.level is not None and int(e.level) >= logging.WARNING and e.user_message
    ]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Built]:
    root = tmp_path_factory.mktemp("baselines")
    with module_home(root / "bp_home"):
        warehouse, artifacts = root / "warehouse.duckdb", root / "artifacts"
        defs = _defs(warehouse, artifacts)
        instance = dg.DagsterInstance.ephemeral()
        results = {
            "backfill": _run(defs, "daily_job", FIRST, BACKFILL_LAST, instance=instance,
                             run_config=DAILY_RUN_CONFIG),
            # the next weekday alone: what the daily schedule does after a backfill
            "incremental": _run(defs, "daily_job", LAST, instance=instance,
                                run_config=DAILY_RUN_CONFIG),
            "monthly": _run(defs, "monthly_job", MONTH_FIRST, MONTH_LAST, instance=instance,
                            run_config={"ops": {"monthly_betas": {"config": MONTHLY_CONFIG}}}),
            "static": _run(defs, "static_job", instance=instance),
            "analytics": _run(
                defs, "analytics_job", instance=instance,
                run_config={"ops": {"hedging_performance": {"config": {"reference": REFERENCE}}}},
            ),
        }
        yield Built(warehouse, artifacts, instance, results)


def _query(path: Path, sql: str, params: list | None = None) -> pd.DataFrame:
    with open_warehouse(path, read_only=True) as conn:
        return conn.execute(sql, params or []).df()


def _betas(path: Path) -> pd.DataFrame:
    frame = _query(
        path, "SELECT * FROM betas.daily ORDER BY model, estimator, date, symbol, factor"
    )
    return frame.reset_index(drop=True)


def _copy(built: Built, target: Path) -> Path:
    shutil.copyfile(built.warehouse, target)
    wal = built.warehouse.with_name(built.warehouse.name + ".wal")
    if wal.exists():
        shutil.copyfile(wal, target.with_name(target.name + ".wal"))
    return target


def _panel_as_of(path: Path, end: str) -> bt.Panel:
    """The CAPM panel daily_betas builds for a run ending before ``end`` (same SELECT)."""
    returns = _query(
        path,
        "SELECT date, symbol, ret_excess, mkt_excess FROM returns.daily WHERE date < ? "
        "ORDER BY date, symbol",
        [pd.Timestamp(end).date()],
    )
    returns["date"] = pd.to_datetime(returns["date"])
    return bt.Panel.build(returns, bt.factor_frame("capm", returns, pd.DataFrame()))


# --- the runs ------------------------------------------------------------------------------


def test_every_job_succeeds(built: Built):
    for name, result in built.results.items():
        assert result.success, f"{name}: {_failures(result)}"
    mats = {
        e.asset_key.to_user_string()
        for r in built.results.values()
        for e in r.get_asset_materialization_events()
    }
    assert {"daily_betas", "monthly_betas", "hedging_performance", "betas_month_end",
            "beta_coverage", "beta_deciles_monthly"} <= mats


def test_daily_betas_has_capm_rows_for_every_estimator(built: Built):
    counts = _query(
        built.warehouse,
        "SELECT model, estimator, factor, count(*) AS n, count(DISTINCT symbol) AS s, "
        "min(date) AS lo, max(date) AS hi FROM betas.daily GROUP BY ALL",
    )
    assert set(counts["model"]) == {"capm"}
    assert set(counts["estimator"]) == ESTIMATORS
    assert set(counts["factor"]) == {"mkt_excess"}
    assert (counts["s"] == len(SYMBOLS)).all()
    assert (pd.to_datetime(counts["hi"]) == pd.Timestamp(LAST)).all()
    assert (pd.to_datetime(counts["lo"]) >= pd.Timestamp(FIRST)).all()
    bad = _query(
        built.warehouse,
        "SELECT count(*) AS n FROM betas.daily WHERE NOT isfinite(beta) OR beta IS NULL "
        "OR n_obs < 1",
    )
    assert bad["n"].iloc[0] == 0
    dupes = _query(
        built.warehouse,
        "SELECT count(*) - count(DISTINCT (date, symbol, model, estimator, factor)) AS n "
        "FROM betas.daily",
    )
    assert dupes["n"].iloc[0] == 0


def test_ff3_and_ff5_are_skipped_cleanly_without_daily_factors(built: Built):
    """raw.market of the embedded source has no daily smb/hml: a warning, no rows, no failure."""
    result = built.results["backfill"]
    assert result.success
    warnings = _warnings(built.instance, result)
    for model in ("ff3", "ff5"):
        assert any(f"no {model} factors" in w for w in warnings), warnings
    mat = next(
        e for e in result.get_asset_materialization_events()
        if e.asset_key == dg.AssetKey("daily_betas")
    )
    by_est = mat.materialization.metadata["rows_by_estimator"].value
    assert by_est and all(k.startswith("capm/") for k in by_est)
    assert set(by_est) == {f"capm/{e}" for e in ESTIMATORS}
    params = _query(built.warehouse, "SELECT DISTINCT model FROM betas.estimator_params")
    assert set(params["model"]) == {"capm"}


def test_estimator_params_hold_the_tuned_half_life_and_kalman_fit(built: Built):
    params = _query(built.warehouse, "SELECT * FROM betas.estimator_params ORDER BY estimator")
    assert list(params["estimator"]) == ["ewm", "kalman"]
    ewm = params[params["estimator"] == "ewm"].iloc[0]
    kal = params[params["estimator"] == "kalman"].iloc[0]
    assert ewm["param"] == "half_life" and kal["param"] == "train_rows"

    # tuned on the first tuning_sessions of the history (whatever the run's range), with
    # the configured grid and the paper's split
    full_history = _panel_as_of(built.warehouse, LAST)  # the backfill read dates < 2017-06-30
    span = DAILY_CONFIG["tuning_sessions"]
    assert len(full_history.dates) > span
    panel = bt.Panel(
        full_history.dates[:span], full_history.symbols, full_history.factors,
        full_history.y[:span], full_history.x[:span],
    )
    train, val = bt.split_rows(span)
    spec = next(s for s in bt.daily_specs(**{
        "windows": DAILY_CONFIG["ols_windows"], "tidy_window": 21, "tidy_min_obs": 15,
        "ewm_window": 60, "adjusted_window": 60,
    }) if s.kind == "ewm")
    best, table = bt.tune_ewm(panel, spec, DAILY_CONFIG["ewm_half_life_grid"])
    assert ewm["value"] == best and best in DAILY_CONFIG["ewm_half_life_grid"]
    details = json.loads(ewm["details"])
    assert [d["half_life"] for d in details] == DAILY_CONFIG["ewm_half_life_grid"]
    assert pd.Timestamp(ewm["fit_start"]) == panel.dates[0]
    assert pd.Timestamp(ewm["fit_end"]) == panel.dates[val.stop - 1]

    assert kal["value"] == train.stop
    assert pd.Timestamp(kal["fit_end"]) == panel.dates[train.stop - 1]

    # the Kalman rows are the filter run with parameters fitted on exactly train_rows rows
    n = int(kal["value"])
    full = _panel_as_of(built.warehouse, "2017-07-01")
    fit = fit_kalman_panel(full.y[:n], full.x[:n, 0], n, n_sample=20, seed=0).as_kwargs()
    snr = float(np.nanmedian(np.asarray(fit["q"]) / np.asarray(fit["h"])))
    assert kal["details"] == f"median q/h = {snr:.3g}"
    kspec = bt.EstimatorSpec("kalman", "kalman", {"min_obs": 20, **fit}, single_factor=True)
    want = next(bt.estimate(full, "capm", [kspec], pd.Timestamp(FIRST), pd.Timestamp("2017-07-01")))
    got = _query(
        built.warehouse,
        "SELECT date, symbol, beta, alpha, resid_std, n_obs FROM betas.daily "
        "WHERE estimator = 'kalman' ORDER BY date, symbol",
    )
    want = want.sort_values(["date", "symbol"], ignore_index=True)
    assert len(got) == len(want)
    assert (pd.to_datetime(got["date"]) == want["date"]).all()
    assert (got["symbol"] == want["symbol"].astype(str)).all()
    np.testing.assert_allclose(got["beta"], want["beta"], rtol=1e-12, atol=0)
    np.testing.assert_allclose(got["alpha"], want["alpha"], rtol=1e-12, atol=0)
    assert (got["n_obs"].to_numpy() == want["n_obs"].to_numpy()).all()


# --- re-runs: replacement and incremental = backfill -----------------------------------------


def test_rerunning_a_sub_range_replaces_rows_exactly(built: Built, home: Path,
                                                     warehouse_path: Path):
    db = _copy(built, warehouse_path)
    before = _betas(db)
    params_before = _query(db, "SELECT * EXCLUDE (fitted_at) FROM betas.estimator_params "
                               "ORDER BY estimator")
    defs = _defs(db, home / "artifacts")
    result = _run(defs, "daily_job", "2017-03-01", "2017-03-31",
                  instance=dg.DagsterInstance.ephemeral(), run_config=DAILY_RUN_CONFIG,
                  assets=["daily_betas"])
    assert result.success, _failures(result)
    mat = next(
        e for e in result.get_asset_materialization_events()
        if e.asset_key == dg.AssetKey("daily_betas")
    )
    n_march = int(((before["date"] >= "2017-03-01") & (before["date"] < "2017-04-01")).sum())
    assert n_march == len(ESTIMATORS) * len(SYMBOLS) * 23  # 23 weekdays, all with a return
    assert mat.materialization.metadata["dagster/row_count"].value == n_march
    after = _betas(db)
    pd.testing.assert_frame_equal(before, after, check_exact=True)
    params_after = _query(db, "SELECT * EXCLUDE (fitted_at) FROM betas.estimator_params "
                              "ORDER BY estimator")
    pd.testing.assert_frame_equal(params_before, params_after, check_exact=True)


def test_incremental_day_equals_the_backfill(built: Built, home: Path, warehouse_path: Path):
    """LAST was written by a one-day run after the backfill; a backfill re-run over the whole
    range (reading the stored parameters) writes the same rows for it, and for every day."""
    db = _copy(built, warehouse_path)
    incremental = _betas(db)
    assert (incremental["date"] == pd.Timestamp(LAST)).sum() == len(ESTIMATORS) * len(SYMBOLS)
    defs = _defs(db, home / "artifacts")
    result = _run(defs, "daily_job", FIRST, LAST, instance=dg.DagsterInstance.ephemeral(),
                  run_config=DAILY_RUN_CONFIG, assets=["daily_betas"])
    assert result.success, _failures(result)
    backfill = _betas(db)
    pd.testing.assert_frame_equal(incremental, backfill, check_exact=True)


# --- monthly betas ---------------------------------------------------------------------------


def test_monthly_betas_capm_and_ff3_rolling_ols(built: Built):
    rows = _query(
        built.warehouse, "SELECT * FROM betas.monthly ORDER BY model, month, symbol, factor"
    )
    assert set(rows["estimator"]) == {"ols_12m"}
    assert set(rows["model"]) == {"capm", "ff3"}  # no monthly rmw/cma: ff5 skipped
    assert set(rows[rows["model"] == "ff3"]["factor"]) == {"mkt_rf", "smb", "hml"}
    assert rows["n_obs"].between(10, 12).all()
    warnings = _warnings(built.instance, built.results["monthly"])
    assert any("no ff5 factors" in w for w in warnings)
    # one CAPM beta by hand: OLS on the last 12 months of monthly excess returns
    monthly = _query(built.warehouse, "SELECT * FROM returns.monthly WHERE symbol = 'KO' "
                                      "ORDER BY month")
    last = monthly.tail(12)
    design = np.column_stack([np.ones(len(last)), last["mkt_excess"]])
    coef = np.linalg.lstsq(design, last["ret_excess"], rcond=None)[0]
    got = rows[(rows["model"] == "capm") & (rows["symbol"] == "KO")].iloc[-1]
    assert pd.Timestamp(got["month"]) == pd.Timestamp(MONTH_LAST)
    assert got["beta"] == pytest.approx(coef[1], rel=1e-9)
    assert got["alpha"] == pytest.approx(coef[0], rel=1e-7, abs=1e-12)


# --- hedging leaderboard ---------------------------------------------------------------------


def _pandas_rmse(db: Path) -> pd.DataFrame:
    """Next-day hedge RMSE per CAPM estimator on the common set, from the raw tables."""
    betas = _query(db, "SELECT date, symbol, estimator, beta FROM betas.daily WHERE model='capm'")
    rets = _query(db, "SELECT date, symbol, ret_excess, mkt_excess FROM returns.daily")
    days = np.sort(rets["date"].unique())
    nxt = pd.Series(np.r_[days[1:], np.datetime64("NaT")], index=days)
    betas["next"] = betas["date"].map(nxt)
    y = rets.rename(columns={"date": "next", "ret_excess": "y"})[["next", "symbol", "y"]]
    x = rets.groupby("date")["mkt_excess"].first().rename("x")
    err = betas.merge(y, on=["next", "symbol"], how="inner").join(x, on="next")
    err["error"] = err["y"] - err["beta"] * err["x"]
    err = err.dropna(subset=["error"])
    k = err["estimator"].nunique()
    common = err.groupby(["date", "symbol"])["estimator"].transform("size") == k
    kept = err[common]
    return kept.groupby("estimator")["error"].agg(
        n="size", rmse=lambda e: float(np.sqrt(np.mean(e.to_numpy() ** 2)))
    )


def test_hedging_leaderboard(built: Built):
    board = _query(built.warehouse, "SELECT * FROM betas.hedging_performance")
    overall = board[board["period"] == "all"].set_index("estimator")
    assert set(overall.index) == ESTIMATORS  # one 'all' row per estimator
    assert set(overall["model"]) == {"capm"} and set(board["reference"]) == {REFERENCE}
    assert overall.loc[REFERENCE, "improvement_pct"] == 0.0
    assert (overall["rmse_ref"] == overall.loc[REFERENCE, "rmse"]).all()
    assert overall["n"].nunique() == 1 and overall["n"].iloc[0] > 0  # the common set
    years = board[board["period"].str.fullmatch(r"\d{4}")]
    assert set(years["period"]) == {"2016", "2017"}
    assert years.groupby("estimator")["n"].sum().eq(overall["n"]).all()
    # the reference scores 0 % in every period (overall, by year and any other span)
    assert (board.loc[board["estimator"] == REFERENCE, "improvement_pct"] == 0.0).all()
    assert board.groupby("period")["n"].max().le(overall["n"].iloc[0]).all()

    mine = _pandas_rmse(built.warehouse)
    for est in (REFERENCE, "kalman", "ewm"):
        assert mine.loc[est, "n"] == overall.loc[est, "n"]
        assert mine.loc[est, "rmse"] == pytest.approx(overall.loc[est, "rmse"], rel=1e-12)
    expected = 100 * (1 - overall["rmse"] / overall.loc[REFERENCE, "rmse"])
    np.testing.assert_allclose(overall["improvement_pct"], expected, rtol=1e-12, atol=1e-12)


def test_hedging_performance_without_its_reference_warns_instead_of_failing(
    built: Built, home: Path, warehouse_path: Path
):
    """Default reference ols_252 is not among the configured windows: NULL improvement."""
    db = _copy(built, warehouse_path)
    instance = dg.DagsterInstance.ephemeral()
    result = _run(_defs(db, home / "artifacts"), "analytics_job", instance=instance,
                  assets=["hedging_performance"])
    assert result.success, _failures(result)
    assert any("ols_252" in w for w in _warnings(instance, result))
    board = _query(db, "SELECT * FROM betas.hedging_performance WHERE period = 'all'")
    assert set(board["estimator"]) == ESTIMATORS
    assert board["improvement_pct"].isna().all()


# --- plots ------------------------------------------------------------------------------------


def test_plots_are_written_under_artifacts(built: Built):
    files = {p.relative_to(built.artifacts).as_posix() for p in built.artifacts.rglob("*.png")}
    assert "baselines/hedging_performance.png" in files
    assert f"baselines/daily_betas_examples_2016-01-04..{BACKFILL_LAST}.png" in files
    assert "marts/coverage.png" in files
    for name in files:
        assert (built.artifacts / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# --- short histories ---------------------------------------------------------------------------


def test_daily_betas_on_a_too_short_history_writes_nothing_and_stores_nothing(
    built: Built, home: Path, warehouse_path: Path
):
    """Three weeks (too few rows to tune the EW half-life or fit the Kalman filter): no
    failure, no rows of those two estimators, and no parameters stored."""
    defs = _defs(warehouse_path, home / "artifacts")
    instance = dg.DagsterInstance.ephemeral()
    weeks = _run(defs, "daily_job", "2016-01-04", "2016-01-22", instance=instance,
                 run_config=DAILY_RUN_CONFIG)
    assert weeks.success, _failures(weeks)
    assert _query(warehouse_path, "SELECT count(*) AS n FROM returns.daily")["n"].iloc[0] > 0
    assert _query(warehouse_path, "SELECT count(*) AS n FROM betas.estimator_params")[
        "n"].iloc[0] == 0
    written = _query(warehouse_path, "SELECT DISTINCT estimator FROM betas.daily")
    assert not {"ewm", "kalman"} & set(written["estimator"])
    mat = next(
        e for e in weeks.get_asset_materialization_events()
        if e.asset_key == dg.AssetKey("daily_betas")
    )
    assert "not tuned" in str(mat.materialization.metadata["capm_ewm_half_life"].value)
