"""Output-row computation of the window estimators (issue 12): rows computed with
``from_row`` are bit-identical to the same rows of a run over every row, for every windowed
estimator of the daily set and one, three and five factors; the Kalman filter resumed from
a stored state equals the full filter's rows."""

import numpy as np
import pandas as pd
import pytest

from beta_pipeline.lib import beta_tables as bt


def _panel(k: int, t_len: int = 700, n: int = 37, seed: int = 0) -> bt.Panel:
    rng = np.random.default_rng(seed)
    x = rng.normal(0, 0.01, (t_len, k))
    y = x @ rng.normal(1, 0.3, (k, n)) + rng.normal(0, 0.02, (t_len, n))
    y[rng.random((t_len, n)) < 0.05] = np.nan  # scattered missing returns
    y[:300, :3] = np.nan  # late listings
    x[rng.integers(0, t_len, 3), 0] = np.nan  # a few missing factor days
    dates = pd.bdate_range("2015-01-02", periods=t_len)
    return bt.Panel(dates, pd.Index([f"S{i:02d}" for i in range(n)]),
                    [f"f{j}" for j in range(k)], y, x)


def _specs() -> list[bt.EstimatorSpec]:
    specs = bt.daily_specs(windows=(60, 252, 300), kalman=False)
    for s in specs:
        if s.kind == "ewm":
            s.params["half_life"] = 42.0
    return specs


def _same(a: np.ndarray, b: np.ndarray) -> None:
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


@pytest.mark.parametrize("k", [1, 3, 5])
@pytest.mark.parametrize("from_row", [1, 255, 256, 511, 600, 699])
def test_from_row_equals_every_row(k: int, from_row: int) -> None:
    panel = _panel(k)
    for spec in _specs():
        full, _ = bt._run(panel, spec, None)
        part, _ = bt._run(panel, spec, None, from_row)
        for name in ("beta", "alpha", "r2", "resid_std", "beta_se", "n_obs"):
            got = np.broadcast_to(getattr(part, name), getattr(full, name).shape)
            _same(got[from_row:], getattr(full, name)[from_row:])
            if name == "beta":
                assert np.isnan(got[:from_row]).all(), spec.name


def _kalman_spec(panel: bt.Panel, ar1: bool = False) -> bt.EstimatorSpec:
    params = bt.fit_kalman(panel, train_rows=300)
    if ar1:  # exercise the AR(1) transition too (phi, mu per symbol)
        n = len(panel.symbols)
        params.update(phi=np.full(n, 0.97), mu=np.linspace(0.5, 1.5, n))
    return bt.EstimatorSpec(
        "kalman", "kalman",
        {"min_obs": 20, **params, "_train_rows": 300, "_fit_end": panel.dates[299]},
        single_factor=True,
    )


def _arrow_rows(panel, spec, start, end, state=None, out=None) -> pd.DataFrame:
    pieces = bt.estimate_arrow(panel, "capm", [spec], start, end,
                               kalman_state=state, states_out=out)
    frames = [b.to_pandas() for p in pieces for b in p.batches]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


@pytest.mark.parametrize("ar1", [False, True])
@pytest.mark.parametrize("r0", [301, 450, 699])
def test_kalman_resumed_from_state_equals_full_filter(ar1: bool, r0: int) -> None:
    panel = _panel(1)
    spec = _kalman_spec(panel, ar1)
    day = panel.dates[r0]
    end = day + pd.Timedelta(days=1)
    full = _arrow_rows(panel, spec, day, end)
    # the state a run through the previous session left behind
    before = bt.Panel(panel.dates[:r0], panel.symbols, panel.factors, panel.y[:r0], panel.x[:r0])
    saved: dict[str, bt.KalmanState] = {}
    _arrow_rows(before, spec, panel.dates[r0 - 1], day, out=saved)
    state = bt.KalmanState.from_frame(saved["kalman"].frame("capm", "kalman"))  # round trip
    assert state is not None and state.start_row(panel, day) == r0
    after: dict[str, bt.KalmanState] = {}
    resumed = _arrow_rows(panel, spec, day, end, state={"kalman": state}, out=after)
    assert len(full) and len(full) == len(resumed)
    pd.testing.assert_frame_equal(resumed, full, check_exact=True)
    # and the state it leaves equals the full filter's
    whole: dict[str, bt.KalmanState] = {}
    _arrow_rows(panel, spec, day, end, out=whole)
    for name in ("beta", "var", "n_obs"):
        _same(getattr(after["kalman"], name), getattr(whole["kalman"], name))


def test_stale_kalman_state_falls_back_to_the_full_filter() -> None:
    panel = _panel(1)
    spec = _kalman_spec(panel)
    day, end = panel.dates[500], panel.dates[500] + pd.Timedelta(days=1)
    full = _arrow_rows(panel, spec, day, end)
    saved: dict[str, bt.KalmanState] = {}
    old = bt.Panel(panel.dates[:450], panel.symbols, panel.factors, panel.y[:450], panel.x[:450])
    _arrow_rows(old, spec, panel.dates[449], panel.dates[450], out=saved)
    stale = saved["kalman"]
    assert stale.start_row(panel, day) is None  # a gap of 50 sessions
    got = _arrow_rows(panel, spec, day, end, state={"kalman": stale})
    pd.testing.assert_frame_equal(got, full, check_exact=True)
    # other parameters than the state's: not resumed either
    fresh: dict[str, bt.KalmanState] = {}
    prev = bt.Panel(panel.dates[:500], panel.symbols, panel.factors, panel.y[:500], panel.x[:500])
    _arrow_rows(prev, spec, panel.dates[499], day, out=fresh)
    other = bt.EstimatorSpec("kalman", "kalman", {**spec.params, "h": spec.params["h"] * 2}, True)
    assert not fresh["kalman"].matches(other.params)
    pd.testing.assert_frame_equal(
        _arrow_rows(panel, other, day, end, state=fresh),
        _arrow_rows(panel, other, day, end),
        check_exact=True,
    )


@pytest.mark.parametrize("k", [1, 5])
@pytest.mark.parametrize("first", [300, 512, 699])
def test_trailing_panel_with_origin_equals_every_row(k: int, first: int) -> None:
    """A panel read from each spec's lookback_row (the tail of the history, ``origin`` rows
    cut) gives the whole history's rows from ``first`` on, bit for bit."""
    panel = _panel(k)
    for spec in _specs():
        full, _ = bt._run(panel, spec, None)
        cut = bt.lookback_row(spec, first)
        assert cut is not None and cut <= first
        tail = bt.Panel(panel.dates[cut:], panel.symbols, panel.factors, panel.y[cut:],
                        panel.x[cut:], origin=cut)
        part, _ = bt._run(tail, spec, None, first - cut)
        for name in ("beta", "alpha", "r2", "resid_std", "beta_se", "n_obs"):
            got = np.broadcast_to(getattr(part, name), getattr(part, name).shape)
            _same(got[first - cut:], getattr(full, name)[first:])


def test_too_short_a_tail_is_refused() -> None:
    panel = _panel(1)
    spec = _specs()[1]  # ols_252
    cut = bt.lookback_row(spec, 600) + 1
    tail = bt.Panel(panel.dates[cut:], panel.symbols, panel.factors, panel.y[cut:],
                    panel.x[cut:], origin=cut)
    with pytest.raises(ValueError, match="origin"):
        bt._run(tail, spec, None, 600 - cut)


@pytest.mark.parametrize("k", [1, 3, 15])
def test_column_block_width_never_changes_a_number(k: int, monkeypatch) -> None:
    """The memory cap on column blocks (``MOMENT_BYTES``) only changes how many assets a
    block holds: results equal a run with one block, and partial tiles equal full ones."""
    from beta_pipeline.lib.estimators import regression

    rng = np.random.default_rng(k)
    y = rng.normal(size=(600, 70)) * 0.02
    y[rng.random(size=y.shape) < 0.05] = np.nan
    x = rng.normal(size=(600, k)) * 0.01
    wide = regression.rolling_regression(y, x, 252, from_row=430, n_threads=2)
    monkeypatch.setattr(regression, "MOMENT_BYTES", 1)  # one asset per block
    narrow = regression.rolling_regression(y, x, 252, from_row=430, n_threads=2)
    every_row = regression.rolling_regression(y, x, 252, n_threads=1)
    for name in ("beta", "alpha", "r2", "resid_std", "beta_se", "n_obs"):
        _same(getattr(wide, name), getattr(narrow, name))
        _same(getattr(wide, name)[430:], getattr(every_row, name)[430:])
