"""Walk-forward cut-offs and run bundles (the pure core, no Dagster)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from beta_pipeline.lib.neuralbeta import bundles, inference, walkforward
from beta_pipeline.lib.neuralbeta.tables import RUNS


def _panel(first: str, last: str, n_symbols: int = 3) -> tuple[pd.DataFrame, pd.DataFrame]:
    dates = pd.bdate_range(first, last)
    rng = np.random.default_rng(0)
    returns = pd.DataFrame(
        {
            "date": np.repeat(dates, n_symbols),
            "symbol": np.tile([f"S{i}" for i in range(n_symbols)], len(dates)),
            "ret_excess": rng.normal(0, 0.01, len(dates) * n_symbols),
            "mkt_excess": np.repeat(rng.normal(0, 0.01, len(dates)), n_symbols),
        }
    )
    return returns, pd.DataFrame(columns=["date", "series", "value"])


def test_cutoff_split_trains_before_validates_on_and_serves_after_the_year() -> None:
    split = walkforward.cutoff_split("2016")
    assert split.train_end == pd.Timestamp("2015-12-31")
    assert split.val_end == pd.Timestamp("2016-12-31")
    assert split.serves_from == pd.Timestamp("2017-01-01")
    assert split.as_strings()["data_end"] == "2016-12-31"


def test_available_cutoffs_need_a_training_year_and_a_complete_validation_year() -> None:
    returns, market = _panel("2010-01-04", "2015-06-30")
    # first full window in 2010 -> first cut-off 2011; 2015 is incomplete -> last 2014
    assert walkforward.available_cutoffs(returns, market, "univariate", 64) == [
        2011,
        2012,
        2013,
        2014,
    ]
    # every 2nd year counted back from the newest: the newest is always trained
    assert walkforward.available_cutoffs(returns, market, "univariate", 64, every=2) == [
        2012,
        2014,
    ]
    # a window longer than the first year pushes the first cut-off back
    assert walkforward.available_cutoffs(returns, market, "univariate", 300)[0] == 2012
    # no size/value factors: no multivariate cut-off
    assert walkforward.available_cutoffs(returns, market, "multivariate", 64) == []


def test_spec_keys_round_trip_and_reject_garbage() -> None:
    assert walkforward.parse_spec(walkforward.spec_key("univariate", "gru_nbi")) == (
        "univariate",
        "gru_nbi",
    )
    with pytest.raises(ValueError, match="walk-forward key"):
        walkforward.parse_spec("univariate")


def _run_row(run_id: str, cutoff: int | None) -> pd.DataFrame:
    row = {c: None for c in RUNS.column_names}
    row.update(
        run_id=run_id,
        experiment="univariate",
        model="gru_nbi",
        best_step=50,
        trained_through=pd.Timestamp("2016-12-30"),
        created_at=pd.Timestamp("2026-01-01 10:00"),
        study="walkforward" if cutoff else "table1",
        cutoff=cutoff,
        best_val_loss=np.float32(0.5),
    )
    return pd.DataFrame([row])


@pytest.mark.parametrize("scheme", ["path", "file_url", "memory"])
def test_bundles_round_trip(tmp_path: Path, scheme: str) -> None:
    root = {
        "path": str(tmp_path / "store"),
        "file_url": f"file://{tmp_path}/store",
        "memory": f"memory://bundles-{tmp_path.name}",
    }[scheme]
    ckpt = tmp_path / "best.ckpt"
    ckpt.write_bytes(b"weights")
    history = pd.DataFrame({"step": [25, 50], "val_loss": [0.6, 0.5], "run_id": "r1"})
    url = bundles.bundle_url(root, 2016, "univariate.gru_nbi", "r1")
    bundles.write_bundle(url, _run_row("r1", 2016), history, ckpt)
    # an incomplete bundle (no run.json yet) is ignored
    bundles.write_bundle(
        bundles.bundle_url(root, 2017, "univariate.gru_nbi", "r2"),
        _run_row("r2", 2017),
        history,
        ckpt,
    )
    import fsspec

    fs, path = fsspec.core.url_to_fs(bundles.bundle_url(root, 2017, "univariate.gru_nbi", "r2"))
    fs.rm(f"{path}/{bundles.RUN_FILE}")
    found = bundles.list_bundles(root)
    assert len(found) == 1
    runs, hist = bundles.read_bundles(found)
    assert list(runs["run_id"]) == ["r1"] and runs["cutoff"].iloc[0] == 2016
    assert runs["trained_through"].iloc[0] == pd.Timestamp("2016-12-30")
    assert runs["checkpoint"].iloc[0].endswith("2016/univariate.gru_nbi/r1/best.ckpt")
    with fsspec.open(runs["checkpoint"].iloc[0], "rb") as src:
        assert src.read() == b"weights"
    assert list(hist["val_loss"]) == [0.6, 0.5] and set(hist["run_id"]) == {"r1"}
    if scheme == "path":
        assert bundles.local_folder(root) == Path(root)
    if scheme == "memory":
        assert bundles.local_folder(root) is None


def test_choose_runs_serves_one_study_per_model() -> None:
    runs = pd.concat(
        [
            _run_row("t1", None),
            _run_row("w1", 2015),
            _run_row("w2", 2016),
            _run_row("t2", None).assign(model="gru_nb"),
        ],
        ignore_index=True,
    )
    picked = inference.choose_runs(runs)
    assert set(picked["run_id"]) == {"w1", "w2", "t2"}  # walk-forward first, else table1
    assert set(inference.choose_runs(runs, ["table1"])["run_id"]) == {"t1", "t2"}
    legacy = runs.assign(study=None)  # runs stored before studies were recorded
    assert set(inference.choose_runs(legacy)["run_id"]) == {"t1", "w1", "w2", "t2"}
    with pytest.raises(ValueError, match="unknown studies"):
        inference.choose_runs(runs, ["paper"])
