"""NeuralBeta building blocks: the NBI WLS layer, encoders, heads, gradients."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from beta_pipeline.lib.nn import NeuralBeta, NeuralBetaConfig, wls_layer
from beta_pipeline.lib.nn.encoders import sinusoidal_table

torch.set_num_threads(1)
PRESETS = ("gru_nb", "gru_nbi", "attn_nb", "attn_nbi")


def _numpy_wls(x, y, w, mu, sigma):
    out = []
    for i in range(x.shape[0]):
        a = np.diag(1 / sigma) + x[i].T @ np.diag(w[i]) @ x[i]
        b = mu / sigma + x[i].T @ (w[i] * y[i])
        out.append(np.linalg.solve(a, b))
    return np.array(out)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_wls_layer_matches_numpy(dtype: torch.dtype) -> None:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((6, 40, 3))
    y = rng.standard_normal((6, 40))
    w = rng.uniform(0.01, 2.0, (6, 40))
    mu = np.array([0.5, -1.0, 2.0])
    log_sigma = np.array([0.3, -0.5, 1.0])
    got = wls_layer(*(torch.tensor(a, dtype=dtype) for a in (x, y, w, mu, log_sigma)))
    ref = _numpy_wls(x, y, w, mu, np.exp(log_sigma))
    tol = 1e-10 if dtype == torch.float64 else 1e-5
    np.testing.assert_allclose(got.numpy(), ref, atol=tol, rtol=tol)


def test_wls_layer_zero_weights_returns_prior_mean() -> None:
    x = torch.randn(4, 16, 2, dtype=torch.float64)
    y = torch.randn(4, 16, dtype=torch.float64)
    mu = torch.tensor([0.7, -0.2], dtype=torch.float64)
    log_sigma = torch.tensor([0.1, -0.4], dtype=torch.float64)
    beta = wls_layer(x, y, torch.zeros(4, 16, dtype=torch.float64), mu, log_sigma)
    torch.testing.assert_close(beta, mu.expand(4, 2))
    beta_small = wls_layer(x, y, torch.full((4, 16), 1e-9, dtype=torch.float64), mu, log_sigma)
    torch.testing.assert_close(beta_small, mu.expand(4, 2), atol=1e-6, rtol=0)


def test_wls_layer_large_weights_is_wls() -> None:
    x = torch.randn(3, 50, 1, dtype=torch.float64)
    y = 2 * x[..., 0] + 0.1 * torch.randn(3, 50, dtype=torch.float64)
    w = torch.full((3, 50), 1e8, dtype=torch.float64)
    zero = torch.zeros(1, dtype=torch.float64)
    beta = wls_layer(x, y, w, zero, zero)
    ols = (x[..., 0] * y).sum(1) / (x[..., 0] ** 2).sum(1)
    torch.testing.assert_close(beta[:, 0], ols)


@pytest.mark.parametrize("features", ["raw", "stats"])
@pytest.mark.parametrize("preset", PRESETS)
def test_forward_shapes_and_gradients(preset: str, features: str) -> None:
    torch.manual_seed(0)
    cfg = NeuralBetaConfig.preset(preset, d=2, window=32, hidden=16, features=features)
    model = NeuralBeta(cfg)
    if cfg.head == "nbi":
        # the weight map starts at zero (uniform weights): no gradient reaches the encoder then
        assert torch.count_nonzero(model.head.linear.weight) == 0
        torch.nn.init.normal_(model.head.linear.weight, std=0.1)
    x, y = torch.randn(5, 32, 2), torch.randn(5, 32)
    beta, w = model(x, y)
    assert beta.shape == (5, 2)
    if cfg.head == "nbi":
        assert w is not None and w.shape == (5, 32) and bool((w > 0).all())
    else:
        assert w is None
    x_next, y_next = torch.randn(5, 2), torch.randn(5)
    loss = (y_next - (beta * x_next).sum(-1)).pow(2).mean()
    loss.backward()
    for name, p in model.named_parameters():
        assert p.grad is not None, name
        assert torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, name  # encoder, head, and NBI's mu and log_sigma


@pytest.mark.parametrize("patch", [1, 2, 4, 8])
@pytest.mark.parametrize("pos", ["sinusoidal", "learned"])
def test_attention_patching(patch: int, pos: str) -> None:
    cfg = NeuralBetaConfig(
        encoder="attn",
        head="nbi",
        window=64,
        hidden=16,
        heads=2,
        layers=1,
        patch=patch,
        pos_encoding=pos,
    )
    beta, w = NeuralBeta(cfg)(torch.randn(3, 64, 1), torch.randn(3, 64))
    assert beta.shape == (3, 1) and w.shape == (3, 64)


@pytest.mark.parametrize("direction", ["forward", "reverse", "bi"])
def test_gru_directions(direction: str) -> None:
    cfg = NeuralBetaConfig(encoder="gru", head="nbi", window=20, hidden=8, direction=direction)
    model = NeuralBeta(cfg).double()
    torch.nn.init.normal_(model.head.linear.weight, std=0.1)
    x, y = torch.randn(2, 20, 1, dtype=torch.float64), torch.randn(2, 20, dtype=torch.float64)
    _, w = model(x, y)
    # a forward GRU's weight at step s cannot depend on later steps; reverse/bi ones can
    x2 = x.clone()
    x2[:, -1] += 1.0
    _, w2 = model(x2, y)
    changed_early = not torch.equal(w[:, 0], w2[:, 0])
    assert changed_early == (direction != "forward")


def test_config_validation_and_table() -> None:
    with pytest.raises(ValueError):
        NeuralBetaConfig(encoder="lstm")
    with pytest.raises(ValueError):
        NeuralBetaConfig(encoder="attn", window=64, patch=3)
    with pytest.raises(ValueError):
        NeuralBetaConfig.preset("mlp_nb")
    table = sinusoidal_table(10, 8)
    assert table.shape == (10, 8) and torch.allclose(table[0, 1::2], torch.ones(4))
    cfg = NeuralBetaConfig.preset("gru_nbi")
    assert NeuralBetaConfig.from_dict(cfg.to_dict()) == cfg


def test_stats_features_are_the_per_step_sufficient_statistics() -> None:
    cfg = NeuralBetaConfig.preset("gru_nb", d=2, window=8, hidden=8, features="stats")
    assert cfg.step_inputs == 1 + 2 + 2 + 3
    assert NeuralBetaConfig(d=2).step_inputs == 3  # raw: y_s || x_s
    x, y = torch.randn(3, 8, 2), torch.randn(3, 8)
    inp = NeuralBeta(cfg).step_inputs(x, y)
    expected = torch.stack(
        [y, x[..., 0], x[..., 1], x[..., 0] * y, x[..., 1] * y]
        + [x[..., 0] ** 2, x[..., 0] * x[..., 1], x[..., 1] ** 2],
        dim=-1,
    )
    torch.testing.assert_close(inp, expected)
    # a config stored before the option existed loads as raw inputs
    old = {k: v for k, v in cfg.to_dict().items() if k != "features"}
    assert NeuralBetaConfig.from_dict(old).features == "raw"
    with pytest.raises(ValueError):
        NeuralBetaConfig(features="cubes")
