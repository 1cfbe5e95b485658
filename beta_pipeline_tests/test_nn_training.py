"""Training NeuralBeta: loss goes down, seeds reproduce, checkpoints round-trip."""

from __future__ import annotations

import lightning as L
import numpy as np
import pytest
import torch

from beta_pipeline.lib.neuralbeta import metrics, synthetic, windows
from beta_pipeline.lib.nn import (
    NeuralBetaConfig,
    NeuralBetaDataModule,
    NeuralBetaSystem,
    load_and_predict,
    predict,
    train,
)

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def data() -> synthetic.SyntheticData:
    return synthetic.stepwise(n=600, seed=0)


def _cfg(preset: str) -> NeuralBetaConfig:
    return NeuralBetaConfig.preset(preset, hidden=16)


@pytest.fixture(scope="module")
def nbi_run(data, tmp_path_factory):
    dm = NeuralBetaDataModule.from_synthetic(data)
    out = tmp_path_factory.mktemp("nbi")
    return train(_cfg("gru_nbi"), dm, "tiny", seed=1, out_dir=out), dm


def test_training_lowers_validation_loss(data) -> None:
    dm = NeuralBetaDataModule.from_synthetic(data)
    L.seed_everything(1, verbose=False)
    untrained = NeuralBetaSystem(_cfg("gru_nb").to_dict(), dm.scaler.to_dict())
    x, y, xn, yn, _ = data.split()["val"].windows()
    before = metrics.rmse_y(predict(untrained, x, y)[0], xn, yn)
    res = train(_cfg("gru_nb"), dm, "tiny", seed=1)
    after = metrics.rmse_y(predict(res.system, x, y)[0], xn, yn)
    assert after < 0.9 * before
    assert res.steps == 100 and len(res.history) == 4
    assert res.best_val_loss == pytest.approx(min(h["loss"] for h in res.history), rel=1e-5)
    # the restored weights are the best checkpoint's
    assert after == pytest.approx(
        res.history[[h["step"] for h in res.history].index(res.best_step)]["rmse_y"], rel=1e-4
    )


def test_nbi_learns_and_records_history(nbi_run, data) -> None:
    res, _ = nbi_run
    x, y, xn, yn, bn = data.split()["val"].windows()
    beta, w = predict(res.system, x, y)
    assert w is not None and w.shape == (len(x), 64) and np.all(w > 0)
    assert metrics.rmse_y(beta, xn, yn) < metrics.rmse_y(windows.ols_beta(x, y), xn, yn)
    assert all({"step", "loss", "rmse_y", "rmse_beta"} <= set(h) for h in res.history)
    assert [h["step"] for h in res.history] == [25, 50, 75, 100]


def test_same_seed_same_result(nbi_run, data, tmp_path) -> None:
    res, _ = nbi_run
    again = train(
        _cfg("gru_nbi"), NeuralBetaDataModule.from_synthetic(data), "tiny", seed=1, out_dir=tmp_path
    )
    assert again.history == res.history
    for (k, a), (_, b) in zip(
        res.system.state_dict().items(), again.system.state_dict().items(), strict=True
    ):
        assert torch.equal(a, b), k
    L.seed_everything(2, verbose=False)
    other = NeuralBetaSystem(_cfg("gru_nbi").to_dict(), {"y_scale": 1.0, "x_scale": [1.0]})
    L.seed_everything(1, verbose=False)
    same = NeuralBetaSystem(_cfg("gru_nbi").to_dict(), {"y_scale": 1.0, "x_scale": [1.0]})
    p_other, p_same = next(other.parameters()), next(same.parameters())
    assert not torch.equal(p_other, p_same)


def test_checkpoint_round_trip(nbi_run, data) -> None:
    res, dm = nbi_run
    x, y, *_ = data.split()["test"].windows()
    beta, w = load_and_predict(res.checkpoint_path, x, y)
    beta_mem, w_mem = predict(res.system, x, y)
    np.testing.assert_allclose(beta, beta_mem, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(w, w_mem, rtol=1e-6, atol=1e-7)
    ck = torch.load(res.checkpoint_path, weights_only=False)
    assert ck["hyper_parameters"]["scaler"] == dm.scaler.to_dict()
    assert ck["history"] == res.history[: len(ck["history"])]


def test_scaling_is_undone_exactly(data) -> None:
    """Scaling the data by constants scales the betas by s_y / s_x (NBI is equivariant)."""
    dm = NeuralBetaDataModule.from_synthetic(data)
    L.seed_everything(0, verbose=False)
    system = NeuralBetaSystem(_cfg("gru_nbi").to_dict(), dm.scaler.to_dict())
    x, y, *_ = data.split()["val"].windows()
    beta, _ = predict(system, x, y)
    scaled = synthetic.SyntheticData("s", data.x * 0.01, data.y * 0.03, data.beta * 3)
    dm2 = NeuralBetaDataModule.from_synthetic(scaled)
    assert dm2.scaler.y_scale == pytest.approx(0.03 * dm.scaler.y_scale, rel=1e-5)
    system2 = NeuralBetaSystem(_cfg("gru_nbi").to_dict(), dm2.scaler.to_dict())
    system2.model.load_state_dict(system.model.state_dict())
    beta2, _ = predict(system2, x * 0.01, y * 0.03)
    np.testing.assert_allclose(beta2, 3 * beta, rtol=1e-4, atol=1e-5)


def test_untrained_nbi_is_the_empirical_bayes_posterior_mean() -> None:
    data = synthetic.constant(n=600, seed=3)
    dm = NeuralBetaDataModule.from_synthetic(data)
    p = dm.prior
    assert p["beta_mean"][0] == pytest.approx(1.0, abs=0.15)
    assert p["resid_var"] == pytest.approx(1.0, abs=0.1)
    system = NeuralBetaSystem(_cfg("gru_nbi").to_dict(), dm.scaler.to_dict(), prior=p)
    x, y, *_ = data.split()["val"].windows()
    beta, w = predict(system, x, y)
    ref = windows.wls_beta(
        x,
        y,
        weights=1.0 / p["resid_var"],
        prior_mean=p["beta_mean"],
        prior_precision=1.0 / p["beta_var"][0],
    )
    np.testing.assert_allclose(beta, ref, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(w, w[0, 0])  # uniform weights before training


def test_ema_budget_and_throughput_smoke(data) -> None:
    import dataclasses

    from beta_pipeline.lib.nn import get_budget
    from beta_pipeline.lib.nn.throughput import compare_throughput

    dm = NeuralBetaDataModule.from_synthetic(data)
    budget = dataclasses.replace(
        get_budget("tiny"), max_steps=50, ema_decay=0.9, head_weight_decay=0.1
    )
    res = train(_cfg("gru_nbi"), dm, budget, seed=0)
    x, y, *_ = data.split()["val"].windows()
    np.testing.assert_allclose(
        load_and_predict(res.checkpoint_path, x, y)[0],
        predict(res.system, x, y)[0],
        rtol=1e-6,
        atol=1e-7,
    )
    out = compare_throughput(_cfg("gru_nb"), dm, "tiny", steps=4, warmup=2, repeats=1)
    assert out["lightning_seq_per_s"] > 0 and out["torch_seq_per_s"] > 0
