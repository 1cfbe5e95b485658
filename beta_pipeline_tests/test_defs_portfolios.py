"""``beta_portfolio_sorts`` and ``beta_portfolio_summary`` through Dagster: the embedded
source (20 stocks -> quintiles, 2018-2019, small windows), checked against an independent
recomputation; idempotent and incremental re-runs; bad input (more portfolios than stocks,
months without betas); value weights when a shares-outstanding column appears; and a slice
of the Kaggle 505-stock file (deciles) through the csv source.

The embedded pipeline is materialized once per module; tests that run assets again work on
their own copy of that warehouse."""

from __future__ import annotations

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
from beta_pipeline.lib import sorts
from beta_pipeline.lib.warehouse import open_warehouse
from beta_pipeline_tests.support.defs import module_home, write_shared_slices
from beta_pipeline_tests.support.paths import shared_data_dir
from beta_pipeline_tests.support.tags import (
    ASSET_PARTITION_RANGE_END_TAG,
    ASSET_PARTITION_RANGE_START_TAG,
)

DAILY_FIRST, DAILY_LAST = "2018-08-01", "2019-04-30"
MONTH_FIRST, MONTH_LAST = "2018-08-01", "2019-04-01"
pytestmark = pytest.mark.slow  # a module fixture materializes the sorts (~30 s)

DAILY_CONFIG = {
    "models": ["capm"],
    "ols_windows": [20, 60],
    "tidy_window": 21,
    "tidy_min_obs": 15,
    "ewm_window": 60,
    "adjusted_window": 60,
    "ewm_half_life_grid": [5, 21],
    "tuning_sessions": 120,  # the daily history here is ~187 sessions
}
MONTHLY_CONFIG = {"models": ["capm"], "window": 4, "min_obs": 4}
DAILY_KEYS = ["raw_prices", "raw_market", "daily_returns", "daily_betas"]
MONTHLY_KEYS = ["raw_market_monthly", "monthly_returns", "monthly_betas", "beta_portfolio_sorts"]
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


@dataclass
class Built:
    warehouse: Path
    artifacts: Path
    results: dict[str, dg.ExecuteInProcessResult]


def _defs(warehouse: Path, artifacts: Path, kind: str = "embedded",
          config: Path | None = None) -> dg.Definitions:
    return build_definitions(
        {
            "warehouse_db": DuckDBWarehouse(path=str(warehouse)),
            "prices": PriceSourceResource(
                kind=kind, config_path=str(config) if config else None
            ),
            "artifacts": ArtifactStore(root=str(artifacts)),
        }
    )


def _run(
    defs: dg.Definitions,
    job: str,
    keys: list[str],
    first: str | None = None,
    last: str | None = None,
    ops: dict | None = None,
    instance: dg.DagsterInstance | None = None,
) -> dg.ExecuteInProcessResult:
    tags = {}
    if first is not None:
        tags = {ASSET_PARTITION_RANGE_START_TAG: first,
                ASSET_PARTITION_RANGE_END_TAG: last or first}
    return defs.resolve_job_def(job).execute_in_process(
        instance=instance or dg.DagsterInstance.ephemeral(),
        tags=tags,
        asset_selection=[dg.AssetKey(k) for k in keys],
        run_config={**QUIET, "ops": {k: {"config": v} for k, v in (ops or {}).items()}},
        raise_on_error=False,
    )


def _failures(result: dg.ExecuteInProcessResult) -> str:
    return "\n".join(
        e.event_specific_data.error.to_string() for e in result.get_step_failure_events()
    )


def _query(path: Path, sql: str, params: list | None = None) -> pd.DataFrame:
    with open_warehouse(path, read_only=True) as conn:
        return conn.execute(sql, params or []).df()


def _sorts(path: Path) -> pd.DataFrame:
    frame = _query(
        path, "SELECT * FROM portfolios.beta_sorts ORDER BY month, estimator, weighting, "
        "portfolio"
    )
    return frame.reset_index(drop=True)


def _copy(built: Built, target: Path) -> Path:
    shutil.copyfile(built.warehouse, target)
    wal = built.warehouse.with_name(built.warehouse.name + ".wal")
    if wal.exists():
        shutil.copyfile(wal, target.with_name(target.name + ".wal"))
    return target


def _materialization(result: dg.ExecuteInProcessResult, key: str):
    return next(
        e.materialization for e in result.get_asset_materialization_events()
        if e.asset_key == dg.AssetKey(key)
    )


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Built]:
    root = tmp_path_factory.mktemp("portfolios")
    with module_home(root / "bp_home"):
        warehouse, artifacts = root / "warehouse.duckdb", root / "artifacts"
        defs = _defs(warehouse, artifacts)
        results = {
            "daily": _run(defs, "daily_job", DAILY_KEYS, DAILY_FIRST, DAILY_LAST,
                          {"daily_betas": DAILY_CONFIG}),
            "monthly": _run(defs, "monthly_job", MONTHLY_KEYS, MONTH_FIRST, MONTH_LAST,
                            {"monthly_betas": MONTHLY_CONFIG}),
            "summary": _run(defs, "analytics_job", ["beta_portfolio_summary"]),
        }
        yield Built(warehouse, artifacts, results)


# --- the embedded run -----------------------------------------------------------------------


def test_runs_succeed_and_write_quintiles_for_every_estimator(built: Built):
    for name, result in built.results.items():
        assert result.success, f"{name}: {_failures(result)}"
    frame = _sorts(built.warehouse)
    assert set(frame["estimator"]) == {
        "capm/ols_20", "capm/ols_60", "capm/ols_3m", "capm/ewm", "capm/blume_60",
        "capm/vasicek_60", "capm/dimson_60", "capm/welch_60", "capm/kalman", "capm/ols_4m",
    }
    assert set(frame["source"]) == {"betas.daily", "betas.monthly"}
    assert set(frame["n_portfolios"]) == {5}  # auto: 20 embedded stocks -> quintiles
    assert set(frame["weighting"]) == {"ew"}  # no market caps in the sources
    assert pd.to_datetime(frame["month"]).min() == pd.Timestamp("2018-09-01")
    assert pd.to_datetime(frame["month"]).max() == pd.Timestamp(MONTH_LAST)
    # six rows (five quintiles and HML) per month and estimator, holding = formation + 1
    per = frame.groupby(["month", "estimator", "weighting"])["portfolio"].apply(sorted)
    assert all(p == ["1", "2", "3", "4", "5", "HML"] for p in per)
    months = pd.to_datetime(frame["month"])
    assert (months == pd.to_datetime(frame["formation_month"]) + pd.DateOffset(months=1)).all()
    quint = frame[frame["portfolio"] != "HML"]
    assert quint.groupby(["month", "estimator"])["n"].sum().eq(20).all()
    assert quint["ret_excess"].notna().all()
    # monthly betas (4 months, min 4) start in 2018-11: holding from 2018-12
    monthly = frame[frame["estimator"] == "capm/ols_4m"]
    assert pd.to_datetime(monthly["month"]).min() == pd.Timestamp("2018-12-01")
    # mean beta increases across quintiles on average
    mb = quint.groupby("portfolio")["mean_beta"].mean()
    assert mb.is_monotonic_increasing
    meta = _materialization(built.results["monthly"], "beta_portfolio_sorts").metadata
    assert "equal-weighted only" in meta["weighting"].value
    assert "quintiles" in meta["portfolios"].value
    assert "neuralbeta" in meta


def test_sorts_match_an_independent_recomputation(built: Built):
    """One month, two estimators: last daily beta in January 2019 (and the January monthly
    beta), quintiles with np.quantile and left-closed bins, February 2019 returns."""
    frame = _sorts(built.warehouse)
    daily = _query(
        built.warehouse,
        "SELECT date, symbol, beta FROM betas.daily WHERE model = 'capm' AND "
        "estimator = 'kalman' AND date >= '2019-01-01' AND date < '2019-02-01'",
    )
    last = daily.sort_values("date").groupby("symbol")["beta"].last()
    monthly = _query(
        built.warehouse,
        "SELECT symbol, beta FROM betas.monthly WHERE month = '2019-01-01' AND model = 'capm'",
    ).set_index("symbol")["beta"]
    rets = _query(
        built.warehouse,
        "SELECT symbol, ret_excess FROM returns.monthly WHERE month = '2019-02-01'",
    ).set_index("symbol")["ret_excess"]
    for est, betas in (("capm/kalman", last), ("capm/ols_4m", monthly)):
        cuts = np.quantile(betas.to_numpy(), [0.2, 0.4, 0.6, 0.8])
        port = pd.Series(np.searchsorted(cuts, betas.to_numpy(), side="right") + 1, betas.index)
        expected = rets.groupby(port).mean()
        got = frame[(frame["estimator"] == est) & (frame["month"] == pd.Timestamp("2019-02-01"))]
        got = got.set_index("portfolio")
        for p in range(1, 6):
            assert got.loc[str(p), "ret_excess"] == pytest.approx(expected[p], rel=1e-12)
            assert got.loc[str(p), "mean_beta"] == pytest.approx(betas[port == p].mean())
        assert got.loc["HML", "ret_excess"] == pytest.approx(expected[5] - expected[1])


def test_summary_has_nw_t_stats_and_capm_alphas(built: Built):
    summary = _query(built.warehouse, "SELECT * FROM portfolios.summary")
    frame = _sorts(built.warehouse)
    assert len(summary) == frame.groupby(["estimator", "weighting", "portfolio"]).ngroups
    hml = frame[(frame["estimator"] == "capm/ols_60") & (frame["portfolio"] == "HML")]
    row = summary[(summary["estimator"] == "capm/ols_60") & (summary["portfolio"] == "HML")]
    row = row.iloc[0]
    nw = sorts.newey_west_mean(hml.sort_values("month")["ret_excess"], 6)
    assert row["t_mean"] == pytest.approx(nw["t"])
    assert row["mean_ret_excess"] == pytest.approx(nw["mean"])
    assert row["n_months"] == len(hml) and row["nw_lags"] == 6
    assert summary[["t_mean", "alpha", "t_alpha", "capm_beta"]].notna().all().all()
    assert row["source"] == "betas.daily"
    # realised CAPM betas of the quintiles rise with the sort on average
    q = summary[summary["portfolio"].isin(["1", "5"])].pivot_table(
        index="estimator", columns="portfolio", values="capm_beta"
    )
    assert (q["5"] > q["1"]).mean() >= 0.8
    meta = _materialization(built.results["summary"], "beta_portfolio_summary").metadata
    assert "security_market_line" in meta and "high_minus_low_ew" in meta
    files = {p.name for p in (built.artifacts / "portfolios").iterdir()}
    assert {"beta_sorts_sml.png", "beta_sorts_cumulative_hml.png",
            "beta_sorts_mean_beta.png"} <= files


def test_rerun_and_incremental_month_are_idempotent(built: Built, tmp_path: Path):
    warehouse = _copy(built, tmp_path / "w.duckdb")
    before = _sorts(warehouse)
    defs = _defs(warehouse, tmp_path / "artifacts")
    again = _run(defs, "monthly_job", ["beta_portfolio_sorts"], "2019-01-01", "2019-03-01")
    assert again.success, _failures(again)
    one = _run(defs, "monthly_job", ["beta_portfolio_sorts"], MONTH_LAST)
    assert one.success, _failures(one)
    after = _sorts(warehouse)
    pd.testing.assert_frame_equal(before, after)
    dupes = _query(
        warehouse,
        "SELECT count(*) - count(DISTINCT (month, estimator, weighting, portfolio)) AS n "
        "FROM portfolios.beta_sorts",
    )
    assert dupes["n"].iloc[0] == 0


def test_bad_input_is_reported_not_crashed_or_silent(built: Built, tmp_path: Path):
    warehouse = _copy(built, tmp_path / "w.duckdb")
    defs = _defs(warehouse, tmp_path / "artifacts")
    # more portfolios than the 20 stocks: every cross-section skipped, with the reason
    many = _run(defs, "monthly_job", ["beta_portfolio_sorts"], "2019-02-01", "2019-03-01",
                {"beta_portfolio_sorts": {"n_portfolios": 30}})
    assert many.success, _failures(many)
    meta = _materialization(many, "beta_portfolio_sorts").metadata
    assert meta["dagster/row_count"].value == 0
    assert meta["skipped_cross_sections"].value == 2 * 10  # 2 months x 10 estimators
    skipped = _query(warehouse, "SELECT * FROM portfolios.sort_skipped")
    assert len(skipped) == 20
    assert skipped["reason"].str.contains("20 stocks < 30 portfolios").all()
    rest = _sorts(warehouse)
    assert not rest["month"].isin(pd.to_datetime(["2019-02-01", "2019-03-01"])).any()
    assert rest["month"].isin(pd.to_datetime(["2019-01-01", "2019-04-01"])).any()
    # months before any beta or return: success, zero rows, stated in the metadata
    early = _run(defs, "monthly_job", ["beta_portfolio_sorts"], "2016-01-01", "2016-02-01")
    assert early.success, _failures(early)
    assert _materialization(early, "beta_portfolio_sorts").metadata[
        "dagster/row_count"
    ].value == 0
    # a rerun with the defaults restores the months (and clears their skip records)
    fixed = _run(defs, "monthly_job", ["beta_portfolio_sorts"], "2019-02-01", "2019-03-01")
    assert fixed.success
    pd.testing.assert_frame_equal(_sorts(warehouse), _sorts(built.warehouse))
    assert _query(warehouse, "SELECT count(*) AS n FROM portfolios.sort_skipped")["n"][0] == 0


def test_value_weights_and_neuralbeta_betas_when_present(built: Built, tmp_path: Path):
    """A shares-outstanding column in raw.prices adds value-weighted rows; rows in
    neuralbeta.betas (here: copies of the OLS-20 betas) become the estimator
    neuralbeta/<experiment>/<model>."""
    warehouse = _copy(built, tmp_path / "w.duckdb")
    with open_warehouse(warehouse) as conn:
        conn.execute("ALTER TABLE raw.prices ADD COLUMN shares_outstanding DOUBLE")
        conn.execute("UPDATE raw.prices SET shares_outstanding = 1000")
        conn.execute(
            "INSERT INTO neuralbeta.betas SELECT date, symbol, 'univariate', 'gru_nb', factor, "
            "beta, 'run-1' FROM betas.daily WHERE estimator = 'ols_20'"
        )
    defs = _defs(warehouse, tmp_path / "artifacts")
    result = _run(defs, "monthly_job", ["beta_portfolio_sorts"], "2019-02-01")
    assert result.success, _failures(result)
    meta = _materialization(result, "beta_portfolio_sorts").metadata
    assert "value-weighted" in meta["weighting"].value
    assert meta["neuralbeta"].value == "1 NeuralBeta estimator(s)"
    frame = _sorts(warehouse)
    both = frame[frame["month"] == pd.Timestamp("2019-02-01")]
    nb = both[both["estimator"] == "neuralbeta/univariate/gru_nb"].reset_index(drop=True)
    ols = both[both["estimator"] == "capm/ols_20"].reset_index(drop=True)
    assert set(nb["source"]) == {"neuralbeta.betas"} and len(nb) == 12
    cols = ["weighting", "portfolio", "ret_excess", "mean_beta", "n"]
    pd.testing.assert_frame_equal(nb[cols], ols[cols])
    feb = both[(both["weighting"] == "vw") & (both["source"] != "neuralbeta.betas")]
    assert len(feb) == 10 * 6
    # constant shares: weights are the last January close
    close = _query(
        warehouse,
        "SELECT symbol, arg_max(close, date) AS close FROM raw.prices "
        "WHERE date >= '2019-01-01' AND date < '2019-02-01' GROUP BY symbol",
    ).set_index("symbol")["close"]
    rets = _query(
        warehouse, "SELECT symbol, ret_excess FROM returns.monthly WHERE month = '2019-02-01'"
    ).set_index("symbol")["ret_excess"]
    betas = _query(
        warehouse,
        "SELECT symbol, beta FROM betas.monthly WHERE month = '2019-01-01' AND model = 'capm'",
    ).set_index("symbol")["beta"]
    cuts = np.quantile(betas.to_numpy(), [0.2, 0.4, 0.6, 0.8])
    port = pd.Series(np.searchsorted(cuts, betas.to_numpy(), side="right") + 1, betas.index)
    top = port[port == 5].index
    expected = float((close[top] * rets[top]).sum() / close[top].sum())
    got = feb[(feb["estimator"] == "capm/ols_4m") & (feb["portfolio"] == "5")]
    assert got["ret_excess"].iloc[0] == pytest.approx(expected)


# --- the Kaggle 505-stock file --------------------------------------------------------------

DATA = shared_data_dir()
KAGGLE_FILES = ("all_stocks_5yr.csv.gz", "gspc_daily.csv.gz", "ff3_daily.csv.gz")
KAGGLE_FIRST, KAGGLE_LAST = "2016-12-01", "2017-04-28"


@pytest.fixture
def kaggle_config(shared_data: Path, tmp_path: Path) -> Path:
    """All 505 Kaggle stocks, ^GSPC and daily FF3 for 2016-11 .. 2017-04 as tmp CSVs
    in the files' own layouts, with a csv-source config reading them."""
    if not all((shared_data / f).is_file() for f in KAGGLE_FILES):
        pytest.skip("the Kaggle, ^GSPC or FF3 file is missing from ../shared/data")
    return write_shared_slices(shared_data, tmp_path, [("2016-11-01", KAGGLE_LAST)])


def test_kaggle_file_sorts_into_deciles(kaggle_config: Path, tmp_path: Path, home: Path):
    warehouse = tmp_path / "kaggle.duckdb"
    defs = _defs(warehouse, tmp_path / "artifacts", kind="csv", config=kaggle_config)
    daily = _run(defs, "daily_job", ["raw_prices", "raw_market", "daily_returns", "daily_betas"],
                 KAGGLE_FIRST, KAGGLE_LAST,
                 {"daily_betas": {**DAILY_CONFIG, "ols_windows": [20], "kalman": True,
                                  "tuning_sessions": 80}})
    assert daily.success, _failures(daily)
    monthly = _run(defs, "monthly_job", ["monthly_returns", "beta_portfolio_sorts"],
                   "2017-02-01", "2017-04-01",
                   {"beta_portfolio_sorts": {"estimators": ["capm/ols_20", "capm/kalman"]}})
    assert monthly.success, _failures(monthly)
    meta = _materialization(monthly, "beta_portfolio_sorts").metadata
    assert "deciles" in meta["portfolios"].value
    frame = _sorts(warehouse)
    assert set(frame["estimator"]) == {"capm/ols_20", "capm/kalman"}
    assert set(frame["n_portfolios"]) == {10}
    assert sorted(pd.to_datetime(frame["month"]).unique()) == list(
        pd.date_range("2017-02-01", "2017-04-01", freq="MS")
    )
    dec = frame[frame["portfolio"] != "HML"]
    sizes = dec.groupby(["month", "estimator"])["n"].sum()
    assert (sizes > 450).all()
    assert dec["n"].between(40, 60).all()
    assert dec["ret_excess"].notna().all()
    summary = _run(defs, "analytics_job", ["beta_portfolio_summary"])
    assert summary.success, _failures(summary)
    table = _query(warehouse, "SELECT * FROM portfolios.summary WHERE portfolio = 'HML'")
    assert set(table["estimator"]) == {"capm/ols_20", "capm/kalman"}
    assert (table["n_months"] == 3).all()
