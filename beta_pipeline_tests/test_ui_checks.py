"""Model-output checks (``defs/quality/model_checks.py``) and the UI metadata helpers."""

from pathlib import Path

import dagster as dg
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
import torch

from beta_pipeline.defs.util import materialize_result, plot_entries
from beta_pipeline.lib import plots
from beta_pipeline.lib.nn.data import ArrayWindows
from beta_pipeline.lib.quality import CheckOutcome, beta_rules, model_rules

DATES = pd.bdate_range("2021-01-04", periods=5)


def _betas(beta: list[float], n_obs: list[int], estimator: str = "ols_60") -> pd.DataFrame:
    return pd.DataFrame(
        {
            "date": DATES[: len(beta)],
            "symbol": "AAA",
            "model": "capm",
            "estimator": estimator,
            "factor": "mkt_excess",
            "beta": beta,
            "n_obs": n_obs,
        }
    )


def _sessions(n: int = 5, history: int = 100) -> pd.DataFrame:
    return pd.DataFrame({"date": DATES[:n], "history": np.arange(history, history + n)})


def _outcomes(betas: pd.DataFrame, sessions: pd.DataFrame, **kw) -> dict[str, CheckOutcome]:
    return {o.check_name: o for o in beta_rules.check_daily_betas(betas, sessions, **kw)}


def test_clean_betas_pass() -> None:
    out = _outcomes(_betas([1.0, 1.1, 0.9, np.nan, 1.2], [60, 60, 60, 10, 60]), _sessions())
    assert all(o.passed for o in out.values()), out


def test_infinite_beta_fails() -> None:
    out = _outcomes(_betas([1.0, np.inf, 0.9, 1.0, 1.2], [60] * 5), _sessions())
    assert not out["betas_finite"].passed and out["betas_finite"].severity == "error"
    assert out["betas_finite"].observed == 1


def test_null_beta_with_enough_observations_fails() -> None:
    # ols_60 needs 48 observations: a NULL beta on 50 is a bug, on 47 it is expected
    assert not _outcomes(_betas([np.nan] * 5, [50] * 5), _sessions())["betas_finite"].passed
    assert _outcomes(_betas([np.nan] * 5, [47] * 5), _sessions())["betas_finite"].passed


def test_out_of_bounds_beta_fails_and_bound_is_configurable() -> None:
    betas = _betas([1.0, -12.0, 0.9, 1.0, 1.2], [60] * 5)
    assert not _outcomes(betas, _sessions())["betas_within_bounds"].passed
    assert _outcomes(betas, _sessions(), max_abs_beta=20)["betas_within_bounds"].passed


def test_missing_session_fails() -> None:
    betas = _betas([1.0, 1.0, 1.0, 1.0, 1.0], [60] * 5).drop(index=2)
    out = _outcomes(betas, _sessions())
    assert not out["betas_cover_sessions"].passed
    assert str(DATES[2].date()) in out["betas_cover_sessions"].details
    # the same gap early in the history (before any estimator can have a beta) is fine
    assert _outcomes(betas, _sessions(history=3))["betas_cover_sessions"].passed


def _checkpoint(tmp_path: Path, value: float) -> str:
    path = tmp_path / "best.ckpt"
    torch.save({"state_dict": {"w": torch.full((3, 2), value), "step": torch.tensor(4)}}, path)
    return str(path)


def test_model_with_nan_weights_fails(tmp_path: Path) -> None:
    run = model_rules.check_model_run(_checkpoint(tmp_path, np.nan), 1.0, 1.1)
    out = {o.check_name: o for o in run}
    assert not out["weights_finite"].passed and out["weights_finite"].severity == "error"
    assert "w" in out["weights_finite"].details


def test_model_vs_ols(tmp_path: Path) -> None:
    ckpt = _checkpoint(tmp_path, 0.5)
    good = {o.check_name: o for o in model_rules.check_model_run(ckpt, 0.9, 1.0)}
    assert good["weights_finite"].passed and good["val_not_worse_than_ols"].passed
    bad = {o.check_name: o for o in model_rules.check_model_run(ckpt, 1.2, 1.0)}
    assert not bad["val_not_worse_than_ols"].passed
    unknown = {o.check_name: o for o in model_rules.check_model_run(ckpt, 1.2, None)}
    assert unknown["val_not_worse_than_ols"].passed  # nothing recorded: not judged


def test_window_ols_rmse_is_exact_on_a_linear_relation() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(50, 21, 1))
    y = 1.5 * x[..., 0]
    assert model_rules.window_ols_rmse(ArrayWindows(x, y)) == pytest.approx(0.0, abs=1e-6)
    noisy = y + rng.normal(scale=0.1, size=y.shape)
    assert 0.05 < model_rules.window_ols_rmse(ArrayWindows(x, noisy), batch=7) < 0.2


def test_png_fits_the_budget(tmp_path: Path) -> None:
    fig, ax = plt.subplots(figsize=(10, 8))
    rng = np.random.default_rng(1)
    for _ in range(30):
        ax.plot(rng.normal(size=3000).cumsum(), lw=0.5)
    png = plots.to_png(fig)
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) <= plots.MAX_PNG_BYTES
    meta = plot_entries("plot", png, tmp_path / "a" / "plot.png")
    assert (tmp_path / "a" / "plot.png").read_bytes() == png
    assert meta["plot"].value.startswith("![plot](data:image/png;base64,")


def test_range_run_puts_the_plot_on_the_last_partition() -> None:
    parts = dg.DailyPartitionsDefinition(start_date="2021-01-01")

    @dg.asset(partitions_def=parts, backfill_policy=dg.BackfillPolicy.single_run())
    def thing(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        return materialize_result(context, {"rows": 1}, {"plot": dg.MetadataValue.md("![x](y)")})

    instance = dg.DagsterInstance.ephemeral()
    result = dg.materialize(
        [thing],
        instance=instance,
        tags={
            "dagster/asset_partition_range_start": "2021-01-01",
            "dagster/asset_partition_range_end": "2021-01-03",
        },
    )
    assert result.success
    events = {
        m.partition: m.metadata for m in result.asset_materializations_for_node("thing")
    }
    assert set(events) == {"2021-01-01", "2021-01-02", "2021-01-03"}
    assert "plot" in events["2021-01-03"] and "plot" not in events["2021-01-01"]
    assert all(e["rows"].value == 1 for e in events.values())
    latest = instance.get_latest_materialization_event(dg.AssetKey("thing"))
    assert latest is not None and "plot" in latest.asset_materialization.metadata


def test_only_market_betas_are_bounded() -> None:
    """Factor loadings (SMB, HML, RMW, CMA) over 60-day windows can be large: not bounded."""
    betas = _betas([1.0, 15.0, 0.9, 1.0, 1.2], [60] * 5).assign(model="ff5", factor="cma")
    assert _outcomes(betas, _sessions())["betas_within_bounds"].passed
    assert not _outcomes(betas.assign(factor="mkt_rf"), _sessions())[
        "betas_within_bounds"
    ].passed


def test_the_sql_aggregates_give_the_frame_rules_outcomes(tmp_path: Path) -> None:
    """What the asset check reads from DuckDB (suspect rows, dates, n_obs) gives the same
    outcomes as the rules on the whole frame."""
    from beta_pipeline.defs.resources import DuckDBWarehouse
    from beta_pipeline.lib.warehouse import TABLES

    db = DuckDBWarehouse(path=str(tmp_path / "w.duckdb"))
    frame = pd.concat(
        [
            _betas([1.0, np.inf, 0.9, np.nan, 12.0], [60, 60, 60, 50, 60]),
            _betas([2.0, 30.0, np.nan, 1.0, 1.0], [60, 60, 10, 60, 60]).assign(
                model="ff3", factor="hml"
            ),
        ]
    ).drop(index=[2])  # 2021-01-06 has no betas at all
    columns = TABLES["betas.daily"].column_names
    rows = frame.reindex(columns=columns)
    with db.writer() as conn:
        conn.register("frame", rows)
        conn.execute("INSERT INTO betas.daily SELECT * FROM frame")
    start, end = DATES[0], DATES[-1] + pd.Timedelta(days=1)
    with db.reader() as conn:
        suspects, present, seen, _ = beta_rules.read_daily_betas(
            conn, start, end, beta_rules.MAX_ABS_BETA
        )
    from_sql = beta_rules.evaluate_daily_betas(suspects, present, seen, _sessions())
    from_frame = beta_rules.check_daily_betas(frame, _sessions())
    assert [(o.check_name, o.passed, o.n_rows) for o in from_sql] == [
        (o.check_name, o.passed, o.n_rows) for o in from_frame
    ]
    assert [o.passed for o in from_sql] == [False, False, False]
