"""The crypto group through Dagster: crypto_job on slices of the real shared/data files via
the csv source (every table, check and plot), the single fail-fast message on the embedded
source, and the group's place outside the default jobs and the CLI's default selection."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from beta_pipeline import cli
from beta_pipeline.definitions import ASSETS
from beta_pipeline.defs.crypto import CRYPTO_ASSETS
from beta_pipeline.defs.jobs import JOBS
from beta_pipeline_tests.support.defs import (
    QUIET,
    build,
    evaluations,
    executed_steps,
    failure_text,
    materialized,
    query,
)
from beta_pipeline_tests.support.paths import shared_data_dir

DATA = shared_data_dir()
FILES = ("crypto_daily.csv.gz", "cross_asset_daily.csv.gz", "ff3_monthly.csv", "ff5_monthly.csv")
CRYPTO_KEYS = [k for a in CRYPTO_ASSETS for k in a.keys]
#: a small grid and budget: the test checks the plumbing, the benchmark the study
RUN_CONFIG = {
    **QUIET,
    "ops": {
        "crypto_neural_betas": {
            "config": {
                "configs": ["FIAT", "FIAT+EQUITY"],
                "hidden": [4],
                "learning_rates": [0.01],
                "activations": ["linear", "tanh"],
                "epochs": 10,
                "replicates": 1,
            }
        },
        "crypto_baseline_betas": {"config": {"ols_windows": [12, 24]}},
        "crypto_hedging_comparison": {"config": {"reference": "ols_24"}},
    },
}


def _execute(defs: dg.Definitions, run_config: dict | None = None) -> dg.ExecuteInProcessResult:
    return defs.resolve_job_def("crypto_job").execute_in_process(
        instance=dg.DagsterInstance.ephemeral(),
        raise_on_error=False,
        run_config=run_config or QUIET,
    )


@pytest.fixture(scope="module")
def slice_config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Coins 2017-11 .. 2021-06 (through the CL=F -37.63 print of 2020-04-20), the four
    default market series and the monthly Fama-French files to 2021-03 (before the coins
    end), in the files' own layouts, and a csv-source config reading them."""
    if DATA is None or not all((DATA / f).is_file() for f in FILES):
        pytest.skip("../shared/data (crypto, cross-asset, ff3/ff5 monthly) is not beside the repo")
    folder = tmp_path_factory.mktemp("crypto_slice")
    coins = pd.read_csv(DATA / "crypto_daily.csv.gz", dtype={"date": str})
    coins.loc[coins["date"].between("2017-11-01", "2021-06-30")].to_csv(
        folder / "crypto.csv", index=False
    )
    xa = pd.read_csv(DATA / "cross_asset_daily.csv.gz", dtype={"date": str})
    keep = xa["symbol"].isin(["DX-Y.NYB", "SPY", "GC=F", "CL=F"])
    xa.loc[keep & xa["date"].between("2017-08-01", "2021-06-30")].to_csv(
        folder / "cross.csv", index=False
    )
    for name in ("ff3_monthly", "ff5_monthly"):
        ff = pd.read_csv(DATA / f"{name}.csv", dtype={"date": str})
        ff.loc[ff["date"].between("2015-01", "2021-03")].to_csv(folder / f"{name}.csv", index=False)
    config = folder / "crypto_slice.yaml"
    config.write_text(
        textwrap.dedent(
            """
            version: 1
            universes:
              crypto:
                - path: crypto.csv
                  layout: long
                  date_format: "%Y-%m-%d"
                  columns: {date: date, symbol: symbol, adj_close: null}
              cross_asset:
                - path: cross.csv
                  layout: long
                  date_format: "%Y-%m-%d"
                  columns: {date: date, symbol: symbol, adj_close: null}
                  allow_nonpositive: [CL=F]
            monthly:
              - path: ff3_monthly.csv
                date_format: "%Y-%m"
                units: percent
                series: {mkt_rf: Mkt-RF, smb: SMB, hml: HML, rf: RF}
              - path: ff5_monthly.csv
                date_format: "%Y-%m"
                units: percent
                series: {rmw: RMW, cma: CMA}
            """
        ).lstrip()
    )
    return config


def test_crypto_job_on_shared_data_slices(
    slice_config: Path, warehouse_path: Path, tmp_path: Path
) -> None:
    defs = build(warehouse_path, tmp_path, kind="csv", config=slice_config)
    result = _execute(defs, RUN_CONFIG)
    assert result.success, failure_text(result)
    assert materialized(result) == {k.to_user_string() for k in CRYPTO_KEYS}

    def one(sql: str) -> object:
        return query(warehouse_path, sql).iloc[0, 0]

    assert one("SELECT count(DISTINCT symbol) FROM crypto.prices") == 4
    assert one("SELECT count(DISTINCT symbol) FROM crypto.cross_asset_prices") == 4
    rets = query(warehouse_path, "SELECT * FROM crypto.monthly_returns")
    assert set(rets["asset"]) == {"BTC", "ETH", "LTC", "BCH", "FIAT", "EQUITY", "GOLD", "ENERGY"}
    assert str(rets.loc[rets["asset"] == "ETH", "month"].min())[:7] == "2017-12"
    assert str(rets["month"].max())[:7] == "2021-06"

    assert one("SELECT count(*) FROM crypto.grid_search") == 2 * 2
    best = query(warehouse_path, "SELECT * FROM crypto.best_configs ORDER BY config")
    assert list(best["config"]) == ["FIAT", "FIAT+EQUITY"]
    assert (best["val_rmse"] > 0).all() and (best["n_test"] > 0).all()
    assert one("SELECT count(*) FROM crypto.learning_curves") == 2 * 11
    betas = query(warehouse_path, "SELECT * FROM crypto.betas")
    assert set(betas["method"]) == {"mlp"} and set(betas["split"]) == {
        "train", "val", "test", "live"
    }
    assert (pd.to_datetime(betas["month"]) > pd.to_datetime(betas["data_end"])).all()
    base = query(warehouse_path, "SELECT DISTINCT method FROM crypto.baseline_betas")
    assert set(base["method"]) == {"ols_12", "ols_24", "ols_exp", "kalman"}

    hedging = query(warehouse_path, "SELECT * FROM crypto.hedging WHERE split = 'test'")
    assert {"mlp", "ols_24", "kalman", "zero"} <= set(hedging["method"])
    assert (hedging.loc[hedging["method"] == "ols_24", "improvement_pct"].abs() < 1e-9).all()
    stats = query(warehouse_path, "SELECT * FROM crypto.beta_stats WHERE method = 'mlp'")
    assert set(stats["sample"]) == {"all", "test"} and (stats["n"] > 0).all()
    assert one("SELECT count(*) FROM crypto.beta_annual WHERE method = 'mlp'") > 0
    ff5 = query(warehouse_path, "SELECT * FROM crypto.ff5_addon ORDER BY config")
    assert list(ff5["config"]) == ["FIAT", "FIAT+EQUITY"]
    assert (ff5["factors_end"] == "2021-03").all() and ff5["change_pct"].notna().all()
    sorts = query(warehouse_path, "SELECT * FROM crypto.quartile_sorts WHERE method = 'mlp'")
    assert set(sorts["config"]) == {"FIAT"}  # single-market configurations only
    assert set(sorts["quartile"]) == {"1", "2", "3", "4", "HML"}

    evs = evaluations(result)
    assert {n for n, ev in evs.items() if not ev.passed} == {
        "cross_asset_prices_nonpositive_allowed"
    }
    assert evs["cross_asset_prices_nonpositive_allowed"].severity == dg.AssetCheckSeverity.WARN
    assert "CL=F 2020-04-20" in str(evs["cross_asset_prices_nonpositive_allowed"].metadata[
        "details"].value)
    recorded = query(warehouse_path, "SELECT DISTINCT asset FROM quality.check_results")
    assert set(recorded["asset"]) == {"crypto_prices", "cross_asset_prices",
                                      "crypto_monthly_returns"}
    meta = {e.asset_key.to_user_string(): e.materialization.metadata
            for e in result.get_asset_materialization_events()}
    assert "learning_curves" in meta["crypto_neural_betas"]
    assert "annual_betas" in meta["crypto_beta_trajectories"]
    assert (tmp_path / "artifacts" / "crypto" / "hedging_rmse.png").is_file()


def test_embedded_source_fails_fast_with_one_message(warehouse_path: Path, tmp_path: Path) -> None:
    result = _execute(build(warehouse_path, tmp_path, kind="embedded"))
    assert not result.success
    failures = result.get_step_failure_events()
    assert [e.step_key for e in failures] == ["crypto_prices"]
    assert executed_steps(result) == {"crypto_prices"}
    text = failure_text(result)
    for part in ("no 'crypto' and no 'cross_asset' universe", "--source csv --config shared_data",
                 "--source yfinance"):
        assert part in text, text


def test_crypto_is_opt_in(warehouse_path: Path, tmp_path: Path, monkeypatch) -> None:
    defs = build(warehouse_path, tmp_path)
    crypto = set(CRYPTO_KEYS)
    job = defs.resolve_job_def("crypto_job")
    assert set(job.asset_layer.executable_asset_keys) == crypto
    for name in ("static_job", "daily_job", "monthly_job", "analytics_job"):
        keys = set(defs.resolve_job_def(name).asset_layer.executable_asset_keys)
        assert not keys & crypto, name
    assert "crypto_job" in [j.name for j in JOBS]  # defs/jobs.py: the CLI runs JOBS in order
    assert not cli._selected_keys("*", ASSETS) & crypto
    assert cli._selected_keys("group:crypto", ASSETS) == crypto
    # --config takes a shipped config's name as well as a file
    monkeypatch.delenv("BETA_PIPELINE_CSV_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)
    args = cli._parse_args(["run", "--select", "group:crypto", "--source", "csv",
                            "--config", "shared_data"])
    cli._apply_source_overrides(args)
    assert os.environ["BETA_PIPELINE_CSV_CONFIG"] == "shared_data"
    (tmp_path / "mine.yaml").write_text("version: 1\n")
    cli._apply_source_overrides(cli._parse_args(["run", "--config", "mine.yaml"]))
    assert os.environ["BETA_PIPELINE_CSV_CONFIG"] == str((tmp_path / "mine.yaml").resolve())


def _bars(frame: pd.DataFrame, date: str = "date") -> dict[str, pd.DataFrame]:
    """Per-symbol frames in yfinance's shape from a long shared/data file."""
    out = {}
    for sym, g in frame.groupby("symbol"):
        f = g.set_index(pd.DatetimeIndex(g[date], name="Date"))[
            ["open", "high", "low", "close", "volume"]
        ]
        f.columns = ["Open", "High", "Low", "Close", "Volume"]
        f.insert(4, "Adj Close", f["Close"])
        out[str(sym)] = f.astype(float)
    return out


def test_yfinance_source_feeds_the_data_assets(
    slice_config: Path, warehouse_path: Path, tmp_path: Path, monkeypatch
) -> None:
    """The yfinance source (download stubbed from the shared files) through the data assets:
    the study's universes and the monthly market series come from the shipped ticker lists."""
    from beta_pipeline.lib.sources import yahoo
    from beta_pipeline_tests.test_sources_yfinance import make_stub

    assert DATA is not None
    coins = pd.read_csv(DATA / "crypto_daily.csv.gz", parse_dates=["date"])
    xa = pd.read_csv(DATA / "cross_asset_daily.csv.gz", parse_dates=["date"])
    gspc = pd.read_csv(DATA / "gspc_daily.csv.gz", parse_dates=["Date"])
    bars = {
        **_bars(coins.loc[coins["date"].between("2019-01-01", "2020-12-31")]),
        **_bars(xa.loc[xa["date"].between("2018-11-01", "2020-12-31")]),
    }
    g = gspc.loc[gspc["Date"].between("2017-06-01", "2020-12-31")].set_index("Date")
    bars["^GSPC"] = g[["Open", "High", "Low", "Close", "Adj Close", "Volume"]].astype(float)
    monkeypatch.setattr(yahoo, "_default_download", make_stub(bars, "column", []))
    defs = build(warehouse_path, tmp_path, kind="yfinance")
    keys = [dg.AssetKey(n) for n in ("crypto_prices", "cross_asset_prices",
                                     "crypto_factors_monthly", "crypto_monthly_returns")]
    result = defs.resolve_job_def("crypto_job").execute_in_process(
        instance=dg.DagsterInstance.ephemeral(), asset_selection=keys, raise_on_error=False,
        run_config=QUIET,
    )
    assert result.success, failure_text(result)
    rets = query(warehouse_path, "SELECT * FROM crypto.monthly_returns")
    assert set(rets["asset"]) == {"BTC", "ETH", "LTC", "BCH", "FIAT", "EQUITY", "GOLD", "ENERGY"}
    btc = rets.loc[rets["asset"] == "BTC", "month"]
    assert str(btc.min())[:7] == "2019-02" and str(btc.max())[:7] == "2020-12"
    series = query(warehouse_path, "SELECT DISTINCT series FROM crypto.factors_monthly")
    assert set(series["series"]) == {"mkt_rf"}  # no ^IRX in the stub: no rf
