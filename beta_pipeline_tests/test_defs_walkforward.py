"""Walk-forward NeuralBeta through Dagster on the embedded data (2017-2020): cut-off
partitions train without writing the warehouse, one writer step loads their bundles, and
daily betas come from the newest cut-off before each date; the future never changes a model.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import dagster as dg
import duckdb
import pandas as pd
import pytest
import torch

from beta_pipeline.lib.neuralbeta import bundles
from beta_pipeline.lib.neuralbeta import walkforward as wf
from beta_pipeline_tests.support.defs import QUIET, build, query
from beta_pipeline_tests.support.tags import partition_range_tags

FIRST, LAST = "2017-01-03", "2020-12-31"
TINY = {"budget": "tiny", "threads": 1, "max_steps": 50}
SPEC = "univariate.gru_nbi"


def _run(defs, job_name, keys, *, pk=None, tags=None, ops=None, instance=None):
    result = defs.resolve_job_def(job_name).execute_in_process(
        instance=instance,
        partition_key=pk,
        tags=tags or {},
        asset_selection=[dg.AssetKey(k) for k in keys],
        raise_on_error=False,
        run_config={**QUIET, "ops": ops or {}},
    )
    assert result.success, job_name
    return result


def _train(defs, cutoff: str, instance, spec: str = SPEC) -> dg.ExecuteInProcessResult:
    pk = str(dg.MultiPartitionKey({"cutoff": cutoff, "model": spec}))
    ops = {"neuralbeta_walkforward_model": {"config": TINY}}
    return _run(
        defs,
        "neuralbeta_walkforward_job",
        ["neuralbeta_walkforward_model"],
        pk=pk,
        ops=ops,
        instance=instance,
    )


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("wf")
    wh = tmp / "warehouse.duckdb"
    defs = build(wh, tmp)
    inst = dg.DagsterInstance.ephemeral()
    betas_cfg = {
        "daily_betas": {"config": {"models": ["capm"], "ols_windows": [252], "kalman": False}}
    }
    _run(
        defs,
        "daily_job",
        ["raw_prices", "raw_market", "daily_returns", "daily_betas"],
        tags=partition_range_tags(FIRST, LAST),
        ops=betas_cfg,
        instance=inst,
    )
    shutil.copy(wh, tmp / "before_training.duckdb")
    trained = {c: _train(defs, c, inst) for c in ("2018", "2019")}
    loaded = _run(defs, "neuralbeta_runs_job", ["neuralbeta_runs"], instance=inst)
    _run(
        defs,
        "neuralbeta_daily_job",
        ["neuralbeta_betas", "nbi_weights"],
        tags=partition_range_tags(FIRST, LAST),
        instance=inst,
    )
    return {"defs": defs, "wh": wh, "tmp": tmp, "inst": inst, "trained": trained, "loaded": loaded}


@pytest.mark.slow
def test_training_leaves_bundles_and_the_writer_loads_them(study) -> None:
    runs = query(study["wh"], "SELECT * FROM neuralbeta.runs ORDER BY cutoff")
    assert list(runs["cutoff"]) == [2018, 2019]
    assert set(runs["study"]) == {"walkforward"} and set(runs["n_test"]) == {0}
    for row in runs.itertuples():
        split = wf.cutoff_split(row.cutoff)
        assert pd.Timestamp(row.train_end) <= split.train_end < pd.Timestamp(row.val_end)
        assert pd.Timestamp(row.trained_through) <= split.val_end
        assert pd.Timestamp(row.trained_through).year == row.cutoff
        assert Path(row.checkpoint).is_file() and Path(row.checkpoint).name == "best.ckpt"
    hist = query(study["wh"], "SELECT run_id, count(*) AS n FROM neuralbeta.history GROUP BY 1")
    assert set(hist["run_id"]) == set(runs["run_id"]) and (hist["n"] >= 2).all()
    meta = study["loaded"].get_asset_materialization_events()[0]
    assert meta.event_specific_data.materialization.metadata["bundles"].value == 2


@pytest.mark.slow
def test_a_second_load_reads_no_loaded_bundle_again(study) -> None:
    before = query(study["wh"], "SELECT count(*) AS n FROM neuralbeta.history")["n"].iloc[0]
    again = _run(study["defs"], "neuralbeta_runs_job", ["neuralbeta_runs"], instance=study["inst"])
    meta = again.get_asset_materialization_events()[0].event_specific_data.materialization
    assert meta.metadata["runs_loaded"].value == 0 and meta.metadata["bundles"].value == 2
    assert meta.metadata["dagster/row_count"].value == 2
    after = query(study["wh"], "SELECT count(*) AS n FROM neuralbeta.history")["n"].iloc[0]
    assert after == before


@pytest.mark.slow
def test_each_date_gets_the_newest_cutoff_before_it(study) -> None:
    out = query(
        study["wh"],
        "SELECT r.cutoff, min(b.date) AS first, max(b.date) AS last, count(*) AS n, "
        "bool_and(r.trained_through <= b.date) AS causal "
        "FROM neuralbeta.betas b JOIN neuralbeta.runs r USING (run_id) GROUP BY 1 ORDER BY 1",
    )
    # no beta before cut-off 2018's data end; a beta dated t hedges the next session, so a
    # cut-off's betas run from its year's last session (hedging the first of the next year)
    # to the day before the next cut-off's
    assert list(out["cutoff"]) == [2018, 2019] and out["causal"].all()
    spans = [(str(a)[:10], str(b)[:10]) for a, b in zip(out["first"], out["last"], strict=True)]
    assert spans == [("2018-12-31", "2019-12-30"), ("2019-12-31", "2020-12-31")]
    assert (out["n"] > 4000).all()


@pytest.mark.slow
def test_training_does_not_write_the_warehouse(study, tmp_path: Path) -> None:
    """A training step holds no DuckDB write lock: it runs while another process keeps a
    read-only connection open (a writer could not open the file then)."""
    wh = tmp_path / "warehouse.duckdb"
    shutil.copy(study["tmp"] / "before_training.duckdb", wh)
    defs = build(wh, tmp_path)
    hold = duckdb.connect(str(wh), read_only=True)
    try:
        _train(defs, "2019", dg.DagsterInstance.ephemeral())
    finally:
        hold.close()
    assert len(bundles.list_bundles(str(tmp_path / "artifacts" / "neuralbeta" / "bundles"))) == 1
    assert query(wh, "SELECT count(*) AS n FROM neuralbeta.runs")["n"].iloc[0] == 0


def _weights(checkpoint: str) -> dict[str, torch.Tensor]:
    return torch.load(checkpoint, map_location="cpu", weights_only=False)["state_dict"]


@pytest.mark.slow
def test_the_future_does_not_change_a_cutoffs_model(study, tmp_path: Path) -> None:
    """Cut-off 2018 reads data through 2018-12-31 only: scrambling every later return and
    factor gives the same weights and validation history."""
    wh = tmp_path / "warehouse.duckdb"
    shutil.copy(study["tmp"] / "before_training.duckdb", wh)
    with duckdb.connect(str(wh)) as conn:
        conn.execute(
            "UPDATE returns.daily SET ret_excess = -3 * ret_excess + 0.01, "
            "mkt_excess = 2 * mkt_excess WHERE date > DATE '2018-12-31'"
        )
        conn.execute("UPDATE raw.market SET value = value * 1.5 WHERE date > DATE '2018-12-31'")
    defs = build(wh, tmp_path)
    again = _train(defs, "2018", dg.DagsterInstance.ephemeral())
    ref = study["trained"]["2018"]

    def meta(result):
        mat = result.get_asset_materialization_events()[0].event_specific_data.materialization
        return mat.metadata

    assert meta(again)["best_val_loss"].value == meta(ref)["best_val_loss"].value
    a, b = _weights(meta(again)["checkpoint"].value), _weights(meta(ref)["checkpoint"].value)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_a_cutoff_without_data_fails_clearly(tmp_path: Path) -> None:
    defs = build(tmp_path / "warehouse.duckdb", tmp_path)
    pk = str(dg.MultiPartitionKey({"cutoff": "2019", "model": SPEC}))
    result = defs.resolve_job_def("neuralbeta_walkforward_job").execute_in_process(
        partition_key=pk,
        asset_selection=[dg.AssetKey("neuralbeta_walkforward_model")],
        raise_on_error=False,
        run_config={**QUIET, "ops": {"neuralbeta_walkforward_model": {"config": TINY}}},
    )
    assert not result.success
    failure = [e for e in result.all_events if e.is_step_failure][0]
    assert "returns" in str(failure.event_specific_data.error)


@pytest.mark.slow
def test_the_writer_skips_a_bundle_with_non_finite_weights(study, tmp_path: Path) -> None:
    wh = tmp_path / "warehouse.duckdb"
    shutil.copy(study["tmp"] / "before_training.duckdb", wh)
    store = tmp_path / "artifacts" / "neuralbeta" / "bundles"
    shutil.copytree(study["tmp"] / "artifacts" / "neuralbeta" / "bundles", store)
    good = bundles.list_bundles(str(store))
    bad = Path(good[0]).parent / "20990101T000000-bad000"
    shutil.copytree(good[0], bad)
    ckpt = torch.load(bad / "best.ckpt", map_location="cpu", weights_only=False)
    name = next(k for k, v in ckpt["state_dict"].items() if v.is_floating_point())
    ckpt["state_dict"][name] = ckpt["state_dict"][name] * float("nan")
    torch.save(ckpt, bad / "best.ckpt")
    run = (bad / "run.json").read_text().replace(Path(good[0]).name, bad.name)
    (bad / "run.json").write_text(run)
    result = _run(build(wh, tmp_path), "neuralbeta_runs_job", ["neuralbeta_runs"])
    meta = result.get_asset_materialization_events()[0].event_specific_data.materialization
    assert meta.metadata["bundles"].value == 3 and meta.metadata["bundles_rejected"].value == 1
    loaded = query(wh, "SELECT run_id FROM neuralbeta.runs")["run_id"]
    assert len(loaded) == 2 and bad.name not in set(loaded)
