"""NeuralBeta metrics (METHODS §1) and Table 1 (§5).

RMSE of the next-step hedging error ``y_{t+1} - <beta, x_{t+1}>``, reported as % improvement
over OLS on the same windows, and the share of the gap between OLS and the oracle (true
``beta_{t+1}``) that an estimator closes.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from beta_pipeline.lib.neuralbeta.experiments import EXPERIMENTS, PAPER_TABLE1, TABLE1_COLUMNS


def hedge_errors(beta: np.ndarray, x_next: np.ndarray, y_next: np.ndarray) -> np.ndarray:
    """``y_{t+1} - <beta, x_{t+1}>``."""
    return np.asarray(y_next) - np.einsum("nd,nd->n", np.asarray(beta), np.asarray(x_next))


def rmse_y(beta: np.ndarray, x_next: np.ndarray, y_next: np.ndarray) -> float:
    """RMSE of the one-step hedging error."""
    return float(np.sqrt(np.mean(hedge_errors(beta, x_next, y_next) ** 2)))


def rmse_beta(beta: np.ndarray, beta_true: np.ndarray) -> float:
    """RMSE of the beta estimate against the true ``beta_{t+1}`` (over samples and factors)."""
    return float(np.sqrt(np.mean((np.asarray(beta) - np.asarray(beta_true)) ** 2)))


def improvement_pct(rmse_model: float, rmse_ols: float) -> float:
    """``100 (1 - RMSE_model / RMSE_OLS)`` (Table 1)."""
    return 100.0 * (1.0 - rmse_model / rmse_ols)


def oracle_gap_share(rmse_model: float, rmse_ols: float, rmse_oracle: float) -> float:
    """``(RMSE_OLS - RMSE_model) / (RMSE_OLS - RMSE_oracle)``: 0 = OLS, 1 = oracle."""
    return (rmse_ols - rmse_model) / (rmse_ols - rmse_oracle)


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
    rmse = {k: rmse_y(v, x_next, y_next) for k, v in betas.items()}
    oracle = rmse.get("oracle")
    rows = []
    for name, beta in betas.items():
        rows.append(
            {
                "experiment": experiment,
                "model": name,
                "rmse_y": rmse[name],
                "rmse_beta": rmse_beta(beta, beta_next) if beta_next is not None else np.nan,
                "improvement_vs_ols_pct": improvement_pct(rmse[name], rmse[reference]),
                "oracle_gap_closed": (
                    oracle_gap_share(rmse[name], rmse[reference], oracle)
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
