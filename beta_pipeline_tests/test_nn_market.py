"""Market-panel windows: no look-ahead, time-based splits, missing data, long/wide input."""

from __future__ import annotations

import lightning as L
import numpy as np
import pandas as pd
import pytest
import torch

from beta_pipeline.lib.nn import (
    NeuralBetaConfig,
    NeuralBetaDataModule,
    NeuralBetaSystem,
    market_windows,
    predict,
    predict_dataset,
    train,
)

torch.set_num_threads(1)
H = 20


def _panel(n_t: int = 280, n_s: int = 4, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    dates = pd.bdate_range("2010-01-04", periods=n_t)
    x = pd.DataFrame(rng.standard_normal((n_t, 2)) * 0.01, index=dates, columns=["mkt", "smb"])
    beta = rng.uniform(0.5, 1.5, (1, n_s))
    y = x[["mkt"]].to_numpy() * beta + 0.01 * rng.standard_normal((n_t, n_s))
    return pd.DataFrame(y, index=dates, columns=[f"S{i}" for i in range(n_s)]), x


def test_windows_end_before_target_and_match_panel() -> None:
    y, x = _panel()
    sets = market_windows(y, x, window=H)
    ds = sets["train"]
    batch = ds[torch.arange(len(ds))]
    keys = ds.keys()
    for k in [0, 7, len(ds) - 1]:
        t1 = y.index.get_loc(keys["date"][k])
        sym = keys["symbol"][k]
        np.testing.assert_allclose(batch["y"][k].numpy(), y[sym].iloc[t1 - H : t1], rtol=1e-6)
        np.testing.assert_allclose(batch["x"][k].numpy(), x.iloc[t1 - H : t1], rtol=1e-6)
        assert batch["y_next"][k].item() == pytest.approx(y[sym].iloc[t1], rel=1e-6)
        np.testing.assert_allclose(batch["x_next"][k].numpy(), x.iloc[t1], rtol=1e-6)


def test_perturbing_target_day_and_later_changes_no_inputs_or_predictions() -> None:
    y, x = _panel()
    t1 = 200  # target day index; inputs must be rows t1-H .. t1-1 only
    y2, x2 = y.copy(), x.copy()
    rng = np.random.default_rng(9)
    y2.iloc[t1:] += rng.standard_normal(y2.iloc[t1:].shape)
    x2.iloc[t1:] += rng.standard_normal(x2.iloc[t1:].shape)
    target = y.index[t1]

    def items(yy: pd.DataFrame, xx: pd.DataFrame) -> dict[str, torch.Tensor]:
        sets = market_windows(yy, xx, window=H, train_end="2010-06-30", val_end="2010-09-30")
        for ds in sets.values():
            keys = ds.keys()
            idx = np.nonzero((keys["date"] == target).to_numpy())[0]
            if len(idx):
                return ds[torch.as_tensor(idx)]
        raise AssertionError("target day not found")

    a, b = items(y, x), items(y2, x2)
    assert a["y"].shape == (4, H)
    torch.testing.assert_close(a["x"], b["x"], rtol=0, atol=0)
    torch.testing.assert_close(a["y"], b["y"], rtol=0, atol=0)
    assert not torch.equal(a["y_next"], b["y_next"])  # the perturbation did hit the target
    L.seed_everything(0, verbose=False)
    cfg = NeuralBetaConfig.preset("attn_nbi", d=2, window=H, hidden=16, patch=2)
    system = NeuralBetaSystem(cfg.to_dict(), {"y_scale": 0.01, "x_scale": [0.01, 0.01]})
    pa, wa = predict(system, a["x"], a["y"])
    pb, wb = predict(system, b["x"], b["y"])
    np.testing.assert_array_equal(pa, pb)
    np.testing.assert_array_equal(wa, wb)


def test_time_splits_default_and_explicit() -> None:
    y, x = _panel()
    sets = market_windows(y, x, window=H)
    dates = {k: v.keys()["date"] for k, v in sets.items()}
    assert dates["train"].max() < dates["val"].min() <= dates["val"].max() < dates["test"].min()
    n = np.array([len(v) for v in sets.values()], dtype=float)
    np.testing.assert_allclose(n / n.sum(), [8 / 14, 2 / 14, 4 / 14], atol=0.01)
    sets = market_windows(y, x, window=H, train_end="2010-06-30", val_end="2010-09-30")
    d = {k: v.keys()["date"] for k, v in sets.items()}
    assert d["train"].max() <= pd.Timestamp("2010-06-30") < d["val"].min()
    assert d["val"].max() <= pd.Timestamp("2010-09-30") < d["test"].min()


def test_missing_data_skips_windows() -> None:
    y, x = _panel()
    full = {k: len(v) for k, v in market_windows(y, x, window=H).items()}
    y.iloc[100, 2] = np.nan  # one stock-day: kills the H+1 windows of S2 that touch row 100
    x.iloc[150, 1] = np.nan  # one factor-day: kills H+1 windows of every stock
    sets = market_windows(y, x, window=H)
    assert sum(full.values()) - sum(len(v) for v in sets.values()) == (H + 1) * (1 + 4)
    for ds in sets.values():
        b = ds[torch.arange(len(ds))]
        assert all(torch.isfinite(v).all() for v in b.values())


def test_long_format_equals_wide() -> None:
    y, x = _panel()
    y_long = y.rename_axis("date").reset_index().melt("date", var_name="symbol", value_name="r")
    x_long = x.rename_axis("date").reset_index().melt("date", var_name="series", value_name="v")
    a = market_windows(y, x, window=H)["val"]
    b = market_windows(y_long, x_long, window=H)["val"]
    pd.testing.assert_frame_equal(a.keys(), b.keys())
    torch.testing.assert_close(a[torch.arange(len(a))], b[torch.arange(len(b))])


def test_market_datamodule_trains() -> None:
    y, x = _panel(n_t=400)
    dm = NeuralBetaDataModule.from_market(y, x, window=H)
    assert dm.scaler.y_scale == pytest.approx(
        float(np.sqrt((y.iloc[:260] ** 2).mean().mean())), rel=0.1
    )
    res = train(NeuralBetaConfig.preset("gru_nbi", d=2, window=H, hidden=8), dm, "tiny", seed=0)
    assert len(res.history) == 4 and "rmse_beta" not in res.history[0]
    ds = dm.test_set
    b = ds[torch.arange(len(ds))]
    beta, w = predict(res.system, b["x"], b["y"])
    assert beta.shape == (len(ds), 2) and w.shape == (len(ds), H)
    assert np.all(np.isfinite(beta))
    beta2, w2 = predict_dataset(res.system, ds, batch_size=7)
    np.testing.assert_allclose(beta2, beta, rtol=1e-5, atol=1e-6)
    assert len(ds.keys()) == len(beta2)
