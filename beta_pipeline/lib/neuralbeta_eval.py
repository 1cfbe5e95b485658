"""NeuralBeta evaluation: baselines on windows, Table 1, the Fig. 4 period curve and the
Kalman study (METHODS §1, §2, §4, §5). Plain numpy/pandas; no Dagster.

Metric (METHODS §1): RMSE of the next-step hedging error ``y_{t+1} - <beta, x_{t+1}>``,
reported as % improvement over OLS on the same windows, and the share of the gap between
OLS and the oracle (true ``beta_{t+1}``) that an estimator closes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np
import pandas as pd
from scipy import optimize

from beta_pipeline.lib import synthetic as S
from beta_pipeline.lib import window_baselines as B
from beta_pipeline.lib.estimators.kalman import kalman_filter

SYNTHETIC_EXPERIMENTS: tuple[str, ...] = ("constant", "stepwise", "cyclical")
MARKET_EXPERIMENTS: tuple[str, ...] = ("univariate", "multivariate")
EXPERIMENTS: tuple[str, ...] = SYNTHETIC_EXPERIMENTS + MARKET_EXPERIMENTS
MODELS: tuple[str, ...] = ("gru_nb", "gru_nbi", "attn_nb", "attn_nbi")
TABLE1_COLUMNS: tuple[str, ...] = ("wls", *MODELS)

#: The paper's Table 1 (% RMSE(y) improvement over OLS), METHODS §5.
PAPER_TABLE1: dict[str, dict[str, float]] = {
    "constant": {
        "wls": -0.05,
        "gru_nb": -0.04,
        "gru_nbi": -0.01,
        "attn_nb": -0.13,
        "attn_nbi": 0.01,
    },
    "stepwise": {
        "wls": 20.21,
        "gru_nb": 21.80,
        "gru_nbi": 21.98,
        "attn_nb": 21.65,
        "attn_nbi": 22.22,
    },
    "cyclical": {
        "wls": 17.84,
        "gru_nb": 22.54,
        "gru_nbi": 21.95,
        "attn_nb": 21.10,
        "attn_nbi": 20.84,
    },
    "univariate": {"wls": 0.12, "gru_nb": 0.22, "gru_nbi": 0.26, "attn_nb": 0.31, "attn_nbi": 0.40},
    "multivariate": {
        "wls": 0.34,
        "gru_nb": -2.02,
        "gru_nbi": 0.84,
        "attn_nb": -4.49,
        "attn_nbi": 0.95,
    },
}


# ------------------------------------------------------------------------------ metrics


def metric_rows(
    experiment: str,
    betas: Mapping[str, np.ndarray],
    x_next: np.ndarray,
    y_next: np.ndarray,
    beta_next: np.ndarray | None = None,
    reference: str = "ols",
) -> pd.DataFrame:
    """One row per estimator: rmse_y, rmse_beta (when the truth is known), % improvement
    over ``reference`` and the share of the oracle gap closed (when an oracle exists)."""
    if reference not in betas:
        raise ValueError(f"the reference estimator {reference!r} is missing")
    rmse = {k: B.rmse_y(v, x_next, y_next) for k, v in betas.items()}
    oracle = rmse.get("oracle")
    rows = []
    for name, beta in betas.items():
        rows.append(
            {
                "experiment": experiment,
                "model": name,
                "rmse_y": rmse[name],
                "rmse_beta": B.rmse_beta(beta, beta_next) if beta_next is not None else np.nan,
                "improvement_vs_ols_pct": B.improvement_pct(rmse[name], rmse[reference]),
                "oracle_gap_closed": (
                    B.oracle_gap_share(rmse[name], rmse[reference], oracle)
                    if oracle is not None
                    else np.nan
                ),
                "n": int(len(y_next)),
            }
        )
    return pd.DataFrame(rows)


def table1(evaluation: pd.DataFrame, with_paper: bool = True) -> pd.DataFrame:
    """Table 1 layout: experiments x (WLS, GRU/attention NB/NBI); cells "ours (paper)"."""
    ours = evaluation.pivot_table(
        index="experiment", columns="model", values="improvement_vs_ols_pct", aggfunc="first"
    )
    rows = [e for e in EXPERIMENTS if e in ours.index]
    out = pd.DataFrame(index=pd.Index(rows, name="experiment"), columns=list(TABLE1_COLUMNS))
    for e in rows:
        for m in TABLE1_COLUMNS:
            v = ours.at[e, m] if m in ours.columns else np.nan
            paper = PAPER_TABLE1.get(e, {}).get(m)
            if pd.isna(v):
                out.at[e, m] = "—" if paper is None or not with_paper else f"— ({paper:.2f})"
            elif with_paper and paper is not None:
                out.at[e, m] = f"{v:.2f} ({paper:.2f})"
            else:
                out.at[e, m] = f"{v:.2f}"
    return out


# ---------------------------------------------------------------------------- baselines


def fit_kalman_windows(
    x: np.ndarray, y: np.ndarray, max_windows: int = 5_000, seed: int = 0
) -> dict[str, float]:
    """Random-walk Kalman variances (q, h) for windows without intercept, by maximising the
    summed Gaussian log-likelihood of the batched filter over (up to ``max_windows``)
    training windows. The initial state is N(mean, var) of the windows' OLS betas."""
    if x.shape[-1] != 1:
        raise ValueError("the window Kalman baseline is univariate")
    rng = np.random.default_rng(seed)
    idx = rng.choice(len(x), size=min(len(x), max_windows), replace=False)
    xs, ys = x[idx, :, 0].T, y[idx].T  # (h, n): one column per window
    ols = B.ols_beta(x[idx], y[idx])[:, 0]
    beta0, p0 = float(ols.mean()), float(max(ols.var(), 1e-6))

    def nll(log_params: np.ndarray) -> float:
        q, h = np.exp(log_params)
        res = kalman_filter(ys, xs, q, h, 0.0, beta0=beta0, p0=p0)
        return -float(res.loglike.sum())

    start = np.log([1e-2, float(np.var(y))])
    opt = optimize.minimize(nll, start, method="Nelder-Mead", options={"xatol": 1e-3})
    q, h = (float(v) for v in np.exp(opt.x))
    return {"q": q, "h": h, "beta0": beta0, "p0": p0, "loglike": -float(opt.fun)}


def kalman_window_beta(x: np.ndarray, y: np.ndarray, params: Mapping[str, float]) -> np.ndarray:
    """One-step-ahead predicted beta after each window (``[n, 1]``)."""
    res = kalman_filter(
        y.T,
        x[:, :, 0].T,
        params["q"],
        params["h"],
        0.0,
        beta0=params["beta0"],
        p0=params["p0"],
        loglike=False,
    )
    return res.predicted[-1][:, None]


BAYES: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    "constant": B.bayes_constant_beta,
    "stepwise": B.bayes_stepwise_beta,
    "cyclical": B.bayes_cyclical_beta,
}


def synthetic_baselines(
    scenario: str,
    train: S.SyntheticData,
    val: S.SyntheticData,
    test: S.SyntheticData,
    bayes: bool = True,
    kalman: bool = True,
) -> tuple[dict[str, np.ndarray], dict[str, object]]:
    """Test-set betas of OLS (no intercept), EW-WLS (half-life tuned on ``val``), the Kalman
    filter (variances fitted on ``train``), the Bayes reference and the oracle, plus the
    tuned parameters."""
    xv, yv, xnv, ynv, _ = val.windows()
    x, y, _, _, bn = test.windows()
    hl, grid = B.tune_half_life(xv, yv, xnv, ynv)
    betas = {"ols": B.ols_beta(x, y), "wls": B.ewls_beta(x, y, hl), "oracle": B.oracle_beta(bn)}
    params: dict[str, object] = {"wls_half_life": hl, "wls_grid_val_rmse": grid}
    if kalman and x.shape[-1] == 1:
        xt, yt, *_ = train.windows()
        kp = fit_kalman_windows(xt, yt)
        betas["kalman"] = kalman_window_beta(x, y, kp)
        params["kalman"] = kp
    if bayes and scenario in BAYES:
        betas["bayes"] = BAYES[scenario](x, y)
    return betas, params


def intercept_ols_beta(
    x: np.ndarray, y: np.ndarray, weights: np.ndarray | None = None
) -> np.ndarray:
    """(W)LS slopes of ``y`` on ``[1, x]`` per window (market data: CAPM with an alpha)."""
    ones = np.ones(x.shape[:2] + (1,), dtype=float)
    coef = B.wls_beta(np.concatenate([ones, np.asarray(x, float)], axis=-1), y, weights)
    return coef[:, 1:]


def market_baselines(
    val: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
    test: tuple[np.ndarray, np.ndarray],
    grid: tuple[float, ...] = B.DEFAULT_HALF_LIVES,
) -> tuple[dict[str, np.ndarray], dict[str, object]]:
    """OLS and EW-WLS (with intercept, half-life tuned on the validation windows) on the
    test windows of a market panel. ``val`` = (x, y, x_next, y_next); ``test`` = (x, y)."""
    xv, yv, xnv, ynv = val
    scores = {
        float(hl): B.rmse_y(intercept_ols_beta(xv, yv, B.ew_weights(xv.shape[1], hl)), xnv, ynv)
        for hl in grid
    }
    best = min(scores, key=scores.__getitem__)
    x, y = test
    betas = {
        "ols": intercept_ols_beta(x, y),
        "wls": intercept_ols_beta(x, y, B.ew_weights(x.shape[1], best)),
    }
    return betas, {"wls_half_life": best, "wls_grid_val_rmse": scores}


# ----------------------------------------------------------------------- figures' data


def sliding_windows(x: np.ndarray, y: np.ndarray, h: int) -> tuple[np.ndarray, np.ndarray]:
    """All windows of one long series: ``x [T, d]`` -> ``[T-h+1, h, d]``, ``y [T]`` ->
    ``[T-h+1, h]``; window i ends at step ``i + h - 1`` (its beta hedges step ``i + h``)."""
    xw = np.lib.stride_tricks.sliding_window_view(x, h, axis=0).transpose(0, 2, 1)
    yw = np.lib.stride_tricks.sliding_window_view(y, h)
    return np.ascontiguousarray(xw), np.ascontiguousarray(yw)


def example_path(scenario: str, length: int = 320, seed: int = 7) -> S.SyntheticData:
    """One long path for Fig. 3: cyclical with c = 12, or a step 1 -> -0.5 at the middle,
    or a constant 1.2; t(10) regressors and unit noise as in the scenarios."""
    rng = np.random.default_rng(seed)
    t = np.arange(length, dtype=float)
    if scenario == "cyclical":
        beta = np.sin(0.3 + t / 12.0)
    elif scenario == "stepwise":
        beta = np.where(t < length // 2, 1.0, -0.5)
    else:
        beta = np.full(length, 1.2)
    x = rng.standard_t(S.T_DOF, size=(length, 1))
    y = beta * x[:, 0] + rng.standard_normal(length)
    return S.SyntheticData(scenario, x[None], y[None], beta[None, :, None], seed)


def cyclical_fixed_period(
    c: float, n: int, h: int = S.DEFAULT_WINDOW, seed: int = 0
) -> S.SyntheticData:
    """Cyclical samples with a fixed ``c`` (period ``2 pi c``) for the Fig. 4 curve."""
    rng = np.random.default_rng(seed)
    beta0 = rng.normal(0.0, 1.0, size=(n, 1, 1))
    t = np.arange(h + 1, dtype=float)[None, :, None]
    beta = np.sin(beta0 + t / c)
    x = rng.standard_t(S.T_DOF, size=beta.shape)
    y = beta[..., 0] * x[..., 0] + rng.standard_normal(beta.shape[:2])
    return S.SyntheticData("cyclical", x, y, beta, seed, {"c": np.full((n, 1), c)})


# ------------------------------------------------------------------------- Kalman study


def kalman_study(
    seed: int = 0, window: int = 30, n: int = 1000, break_at: int = 500
) -> tuple[pd.DataFrame, dict[str, float]]:
    """The kalman_step series with entire-period OLS, rolling-``window`` OLS and the MLE
    random-walk Kalman filter. Row t holds each estimate of ``beta_{t+1}`` from data to t
    and the squared error against the true ``beta_{t+1}``."""
    s = S.kalman_step(n=n, break_at=break_at, seed=seed)
    q, h, kal = B.fit_kalman_rw(s.y, s.x)
    frame = pd.DataFrame(
        {
            "step": np.arange(n - 1),
            "beta_true_next": s.beta[1:],
            "ols_full": B.expanding_ols_series(s.y, s.x)[:-1],
            f"ols_{window}": B.rolling_ols_series(s.y, s.x, window)[:-1],
            "kalman": kal[:-1],
        }
    )
    return frame, {"state_var": q, "obs_var": h}


def kalman_mse(frame: pd.DataFrame, burn_in: int, window: int = 30) -> dict[str, float]:
    """MSE of beta from step ``burn_in`` on, and over the 60 steps after the break."""
    cols = ["ols_full", f"ols_{window}", "kalman"]
    err = frame[cols].sub(frame["beta_true_next"], axis=0) ** 2
    after = frame["step"] >= burn_in
    brk = frame.index[frame["beta_true_next"].diff().abs() > 0]
    out = {f"mse_{c}": float(err.loc[after, c].mean()) for c in cols}
    if len(brk):
        b = int(brk[0])
        post = (frame.index >= b) & (frame.index < b + 60)
        out.update({f"mse_break60_{c}": float(err.loc[post, c].mean()) for c in cols})
    return out


def kalman_monte_carlo(
    seeds: range | list[int], burn_in: int = 50, window: int = 30
) -> pd.DataFrame:
    """:func:`kalman_study` over many seeds: one row of MSEs per seed."""
    rows = []
    for seed in seeds:
        frame, params = kalman_study(seed=seed, window=window)
        rows.append({"seed": seed, **params, **kalman_mse(frame, burn_in, window)})
    return pd.DataFrame(rows)


def kalman_summary(mc: pd.DataFrame, window: int = 30) -> dict[str, float]:
    """How often and by how much the Kalman filter beats rolling OLS (after burn-in)."""
    roll = f"mse_ols_{window}"
    ratio = mc["mse_kalman"] / mc[roll]
    out = {
        "seeds": int(len(mc)),
        "kalman_beats_rolling_share": float((mc["mse_kalman"] < mc[roll]).mean()),
        "mse_kalman_mean": float(mc["mse_kalman"].mean()),
        f"mse_ols_{window}_mean": float(mc[roll].mean()),
        "mse_ols_full_mean": float(mc["mse_ols_full"].mean()),
        "mse_ratio_median": float(ratio.median()),
        "mse_reduction_pct_mean": float(100 * (1 - mc["mse_kalman"].mean() / mc[roll].mean())),
    }
    brk = f"mse_break60_ols_{window}"
    if brk in mc:
        out["break60_kalman_beats_rolling_share"] = float(
            (mc["mse_break60_kalman"] < mc[brk]).mean()
        )
    return out


# --------------------------------------------------------------- market NBI weights


def nbi_weight_profiles(
    weights: np.ndarray, dates: pd.Series | np.ndarray, market: pd.Series
) -> tuple[np.ndarray, np.ndarray, tuple[str, str], pd.DataFrame]:
    """Figs. 7-8 from NBI weights ``[n, h]`` (window order, newest last) of windows ending
    on ``dates``: the mean normalised weight per lag in the calmest and most volatile month
    (by the std of daily market returns), and per date the share of weight on lags 0-4
    beside the 5-day market volatility (both known at the date)."""
    w = np.asarray(weights, float)[:, ::-1]  # lag 0 = newest
    w = w / w.mean(axis=1, keepdims=True)
    d = pd.DatetimeIndex(pd.to_datetime(np.asarray(dates)))
    mkt = market.sort_index()
    vol5 = mkt.rolling(5).std()
    month = d.to_period("M")
    monthly_vol = mkt.groupby(mkt.index.to_period("M")).std()
    months = monthly_vol.reindex(np.unique(month)).dropna()
    if months.empty:
        raise ValueError("no month with market returns for the NBI weights")
    calm, wild = months.idxmin(), months.idxmax()
    prof_calm = w[month == calm].mean(axis=0)
    prof_wild = w[month == wild].mean(axis=0)
    share = w[:, :5].sum(axis=1) / w.sum(axis=1)
    per_date = (
        pd.DataFrame({"date": d, "recent_weight_share": share})
        .groupby("date", as_index=False)["recent_weight_share"]
        .mean()
    )
    per_date["market_vol_5d"] = vol5.reindex(per_date["date"]).to_numpy()
    labels = (
        f"calm month {calm} (daily sd {months[calm]:.4f})",
        f"volatile month {wild} (daily sd {months[wild]:.4f})",
    )
    return prof_calm, prof_wild, labels, per_date.dropna()
