"""NeuralBeta through Dagster on the embedded data: scenarios, baselines, Kalman study, tiny
training runs, evaluation (Table 1), daily betas without look-ahead, NBI weights and the
hedging leaderboard."""

from __future__ import annotations

import contextlib
from pathlib import Path

import dagster as dg
import numpy as np
import pytest

from beta_pipeline.defs.resources import DuckDBWarehouse
from beta_pipeline.lib import warehouse
from beta_pipeline_tests.support.defs import QUIET, build, query
from beta_pipeline_tests.support.tags import (
    ASSET_PARTITION_RANGE_END_TAG,
    ASSET_PARTITION_RANGE_START_TAG,
)

FIRST, LAST = "2019-01-02", "2022-12-28"
TINY = {"budget": "tiny", "threads": 1, "max_steps": 40}


def _run(defs, job_name, keys, *, pk=None, rng=False, ops=None, instance=None):
    job = defs.resolve_job_def(job_name)
    tags = (
        {ASSET_PARTITION_RANGE_START_TAG: FIRST, ASSET_PARTITION_RANGE_END_TAG: LAST} if rng else {}
    )
    result = job.execute_in_process(
        instance=instance,
        partition_key=pk,
        tags=tags,
        asset_selection=[dg.AssetKey(k) for k in keys],
        raise_on_error=False,
        run_config={**QUIET, "ops": ops or {}},
    )
    assert result.success, job_name
    return result


def _meta(result: dg.ExecuteInProcessResult, key: str) -> dict:
    for ev in result.get_asset_materialization_events():
        mat = ev.event_specific_data.materialization
        if mat.asset_key == dg.AssetKey(key):
            return mat.metadata
    raise AssertionError(f"no materialization of {key}")


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("nb")
    wh = tmp / "warehouse.duckdb"
    defs = build(wh, tmp)
    inst = dg.DagsterInstance.ephemeral()
    daily = ["raw_prices", "raw_market", "daily_returns", "daily_betas"]
    betas_cfg = {
        "daily_betas": {"config": {"models": ["capm"], "ols_windows": [252], "kalman": False}}
    }
    _run(defs, "daily_job", daily, rng=True, ops=betas_cfg, instance=inst)
    syn = {"synthetic_scenarios": {"config": {"n_samples": 3000, "independent_test_samples": 1000}}}
    for s in ("stepwise", "kalman_step"):
        _run(defs, "synthetic_scenarios_job", ["synthetic_scenarios"], pk=s, ops=syn, instance=inst)
    _run(defs, "synthetic_baselines_job", ["synthetic_baselines"], pk="stepwise", instance=inst)
    results = {}
    for exp, model in (
        ("stepwise", "gru_nbi"),
        ("univariate", "gru_nbi"),
        ("univariate", "gru_nb"),
    ):
        pk = str(dg.MultiPartitionKey({"experiment": exp, "model": model}))
        results[(exp, model)] = _run(
            defs,
            "neuralbeta_model_job",
            ["neuralbeta_model"],
            pk=pk,
            ops={"neuralbeta_model": {"config": TINY}},
            instance=inst,
        )
    _run(defs, "neuralbeta_runs_job", ["neuralbeta_runs"], instance=inst)
    nb_daily = _run(
        defs, "neuralbeta_daily_job", ["neuralbeta_betas", "nbi_weights"], rng=True, instance=inst
    )
    analytics = _run(
        defs,
        "analytics_job",
        ["kalman_study", "neuralbeta_evaluation", "hedging_performance"],
        ops={"kalman_study": {"config": {"seeds": 4}}},
        instance=inst,
    )
    return {
        "defs": defs,
        "wh": wh,
        "tmp": tmp,
        "inst": inst,
        "nb_daily": nb_daily,
        "analytics": analytics,
        "models": results,
    }


@pytest.mark.slow
def test_runs_history_and_checkpoints_recorded(pipeline) -> None:
    runs = query(pipeline["wh"], "SELECT * FROM neuralbeta.runs ORDER BY experiment, model")
    assert len(runs) == 3
    assert all(Path(p).exists() for p in runs["checkpoint"])
    uni = runs[runs.experiment == "univariate"].iloc[0]
    assert uni["train_end"] < uni["val_end"] == uni["trained_through"]
    hist = query(pipeline["wh"], "SELECT run_id, count(*) AS n FROM neuralbeta.history GROUP BY 1")
    assert (hist["n"] >= 1).all() and len(hist) == 3


@pytest.mark.slow
def test_evaluation_table1_and_figures(pipeline) -> None:
    ev = query(pipeline["wh"], "SELECT * FROM neuralbeta.evaluation")
    step = ev[(ev.experiment == "stepwise") & (ev.test_set == "split")].set_index("model")
    assert {"ols", "wls", "kalman", "bayes", "oracle", "gru_nbi"} <= set(step.index)
    assert np.isfinite(step.at["gru_nbi", "oracle_gap_closed"])
    assert step.at["gru_nbi", "paper_improvement_pct"] == pytest.approx(21.98)
    uni = ev[ev.experiment == "univariate"].set_index("model")
    assert {"ols", "wls", "gru_nb", "gru_nbi"} <= set(uni.index)
    assert uni["rmse_beta"].isna().all() and (uni["n"] == uni.at["ols", "n"]).all()
    meta = _meta(pipeline["analytics"], "neuralbeta_evaluation")
    assert "(21.98)" in meta["table1"].value and "(0.26)" in meta["table1"].value
    for fig in ("fig3_stepwise", "fig5_history", "fig6_gru_nbi", "fig7_univariate_gru_nbi"):
        assert fig in meta, fig
        assert (pipeline["tmp"] / "artifacts" / "plots" / f"neuralbeta_{fig}.png").exists()


@pytest.mark.slow
def test_daily_betas_only_after_training_data_end(pipeline) -> None:
    wh = pipeline["wh"]
    out = query(
        wh,
        "SELECT b.model, min(b.date) AS first, count(*) AS n, any_value(r.trained_through) AS t "
        "FROM neuralbeta.betas b JOIN neuralbeta.runs r USING (run_id) GROUP BY 1",
    )
    assert len(out) == 2 and (out["n"] > 0).all()
    assert (out["first"] >= out["t"]).all()
    w = query(
        wh,
        "SELECT model, count(*) AS n, count(DISTINCT lag) AS lags "
        "FROM neuralbeta.weights GROUP BY 1",
    )
    assert list(w["model"]) == ["gru_nbi"] and w["lags"].iloc[0] == 64
    n_beta = int(out.set_index("model").at["gru_nbi", "n"])
    assert w["n"].iloc[0] == 64 * n_beta


@pytest.mark.slow
def test_daily_betas_rerun_replaces_rows(pipeline) -> None:
    wh = pipeline["wh"]
    before = query(wh, "SELECT count(*) AS n, sum(beta) AS s FROM neuralbeta.betas")
    _run(
        pipeline["defs"],
        "neuralbeta_daily_job",
        ["neuralbeta_betas", "nbi_weights"],
        rng=True,
        instance=pipeline["inst"],
    )
    after = query(wh, "SELECT count(*) AS n, sum(beta) AS s FROM neuralbeta.betas")
    assert after["n"].iloc[0] == before["n"].iloc[0]
    assert after["s"].iloc[0] == pytest.approx(before["s"].iloc[0])


@pytest.mark.slow
def test_neuralbeta_joins_the_hedging_leaderboard(pipeline) -> None:
    lb = query(
        pipeline["wh"],
        "SELECT * FROM betas.hedging_performance WHERE estimator LIKE 'neuralbeta_%'",
    )
    assert set(lb["estimator"]) == {"neuralbeta_gru_nb", "neuralbeta_gru_nbi"}
    row = lb[(lb.estimator == "neuralbeta_gru_nbi") & (lb.period == "all")].iloc[0]
    assert row["model"] == "capm" and row["reference"] == "ols_252" and row["n"] > 0
    assert row["improvement_pct"] == pytest.approx(100 * (1 - row["rmse"] / row["rmse_ref"]))


@pytest.mark.slow
def test_kalman_study_table(pipeline) -> None:
    ks = query(pipeline["wh"], "SELECT * FROM neuralbeta.kalman_study ORDER BY seed")
    assert list(ks["seed"]) == [0, 1, 2, 3]
    assert (ks["mse_kalman"] < ks["mse_ols_full"]).all()
    meta = _meta(pipeline["analytics"], "kalman_study")
    assert 0 <= meta["kalman_beats_rolling_share"].value <= 1


def test_betas_without_a_trained_model_fail_clearly(home: Path, tmp_path: Path) -> None:
    defs = build(tmp_path / "w.duckdb", tmp_path)
    job = defs.resolve_job_def("neuralbeta_daily_job")
    result = job.execute_in_process(
        partition_key="2020-01-02",
        asset_selection=[dg.AssetKey("neuralbeta_betas"), dg.AssetKey("nbi_weights")],
        raise_on_error=False,
        run_config=QUIET,
    )
    assert not result.success
    failure = [e for e in result.all_events if e.is_step_failure][0]
    assert "neuralbeta_model" in str(failure.event_specific_data.error)


def test_patient_writer_waits_at_least_its_minimum(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The write at the end of a training retries on the lock for 10 minutes or more."""
    waits: list[float] = []

    @contextlib.contextmanager
    def fake_open(path, read_only, timeout_s, logger):
        waits.append(timeout_s)
        yield None

    monkeypatch.setattr(warehouse, "open_warehouse", fake_open)
    for configured in (5.0, 900.0):
        db = DuckDBWarehouse(path=str(tmp_path / "w.duckdb"), lock_timeout_s=configured)
        with db.patient_writer():
            pass
    assert waits == [600.0, 900.0]
