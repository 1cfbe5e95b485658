"""Synthetic scenario generators (METHODS §4) and their Parquet round trip."""

from __future__ import annotations

import numpy as np
import pytest

from beta_pipeline.lib.neuralbeta import synthetic


@pytest.mark.parametrize("scenario", synthetic.SCENARIOS)
def test_shapes_seed_and_model(scenario: str) -> None:
    data = synthetic.generate(scenario, n=500, seed=3)
    assert data.x.shape == (500, 65, 1)
    assert data.y.shape == (500, 65)
    assert data.beta.shape == (500, 65, 1)
    again = synthetic.generate(scenario, n=500, seed=3)
    np.testing.assert_array_equal(data.y, again.y)
    other = synthetic.generate(scenario, n=500, seed=4)
    assert not np.allclose(data.y, other.y)
    eps = data.y - (data.beta * data.x).sum(-1)
    assert abs(eps.mean()) < 0.02 and abs(eps.std() - 1.0) < 0.02


def test_split_70_20_10() -> None:
    parts = synthetic.generate("constant", n=1000, seed=0).split()
    assert [p.n for p in parts.values()] == [700, 200, 100]
    x, y, x_next, y_next, b_next = parts["test"].windows()
    assert x.shape == (100, 64, 1) and y.shape == (100, 64)
    assert x_next.shape == (100, 1) and y_next.shape == (100,) and b_next.shape == (100, 1)


def test_constant_beta() -> None:
    data = synthetic.constant(n=20_000, seed=1)
    assert np.all(data.beta == data.beta[:, :1])
    c = data.beta[:, 0, 0]
    assert abs(c.mean() - 1.0) < 0.03 and abs(c.std() - 1.0) < 0.03


def test_stepwise_exactly_one_jump_inside_window() -> None:
    data = synthetic.stepwise(n=5000, seed=2)
    b = data.beta[:, :, 0]
    jumps = np.diff(b, axis=1) != 0
    assert np.all(jumps.sum(1) == 1)
    k = np.argmax(jumps, axis=1) + 1  # first step on the new level
    np.testing.assert_array_equal(k, data.meta["jump"])
    assert k.min() == 1 and k.max() == 63  # uniform over 1..h-1
    assert np.all(b[:, 64] == b[np.arange(5000), k])  # the target is on the new level
    assert abs(b[:, 0].mean() - 1) < 0.05 and abs(b[:, -1].std() - 1) < 0.05


def test_cyclical_formula_and_period_range() -> None:
    data = synthetic.cyclical(n=5000, seed=3)
    c = data.meta["c"][:, 0]
    beta0 = data.meta["beta0"][:, 0]
    assert c.min() >= 4 and c.max() <= 32
    assert 2 * np.pi * c.min() > 25 and 2 * np.pi * c.max() < 202
    t = np.arange(65)
    expected = np.sin(beta0[:, None] + t[None, :] / c[:, None])
    np.testing.assert_allclose(data.beta[:, :, 0], expected)
    assert abs(beta0.std() - 1) < 0.05


def test_student_t_tails() -> None:
    x = synthetic.constant(n=20_000, seed=4).x.ravel()
    # t(10): variance 10/8 = 1.25, excess kurtosis 6/(10-4) = 1
    assert abs(x.var() - 1.25) < 0.02
    kurt = ((x - x.mean()) ** 4).mean() / x.var() ** 2 - 3
    assert 0.7 < kurt < 1.3
    assert np.mean(np.abs(x) > 4) > 5 * 2 * 3.2e-5  # far heavier than the normal's tail


def test_jump_probe() -> None:
    probe = synthetic.jump_probe(positions=[10, 40], n_per_position=100, seed=0)
    assert probe.n == 200
    b = probe.beta[:, :, 0]
    assert np.all(b[:100, :10] == 2) and np.all(b[:100, 10:] == 0)
    assert np.all(b[100:, :40] == 2) and np.all(b[100:, 40:] == 0)
    np.testing.assert_array_equal(probe.meta["jump"], [10] * 100 + [40] * 100)


def test_kalman_step_series() -> None:
    s = synthetic.kalman_step(seed=5)
    assert s.x.shape == s.y.shape == s.beta.shape == (1000,)
    assert np.all(s.beta[:500] == 3) and np.all(s.beta[500:] == 6)
    assert abs(s.x.std() - 1) < 0.1
    np.testing.assert_array_equal(synthetic.kalman_step(seed=5).y, s.y)
    assert not np.allclose(synthetic.kalman_step(seed=6).y, s.y)


def test_parquet_round_trip(tmp_path) -> None:
    data = synthetic.cyclical(n=50, seed=7, d=2)
    path = synthetic.save_parquet(data, tmp_path / "cyc.parquet")
    back = synthetic.load_parquet(path)
    assert back.scenario == "cyclical" and back.seed == 7
    np.testing.assert_array_equal(back.x, data.x)
    np.testing.assert_array_equal(back.y, data.y)
    np.testing.assert_array_equal(back.beta, data.beta)
    np.testing.assert_array_equal(back.meta["c"], data.meta["c"])
    frame = synthetic.to_frame(data)
    assert list(frame["split"].value_counts().sort_index()) == [5, 35, 10]
