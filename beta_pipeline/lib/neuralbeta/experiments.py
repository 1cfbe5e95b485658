"""The NeuralBeta experiments and models (METHODS §5) and the paper's Table 1."""

from __future__ import annotations

SYNTHETIC_EXPERIMENTS: tuple[str, ...] = ("constant", "stepwise", "cyclical")
MARKET_EXPERIMENTS: tuple[str, ...] = ("univariate", "multivariate")
EXPERIMENTS: tuple[str, ...] = SYNTHETIC_EXPERIMENTS + MARKET_EXPERIMENTS
MODELS: tuple[str, ...] = ("gru_nb", "gru_nbi", "attn_nb", "attn_nbi")
TABLE1_COLUMNS: tuple[str, ...] = ("wls", *MODELS)
#: Partitions of the synthetic scenarios: the experiments' data and the Kalman study series.
SCENARIO_KEYS: tuple[str, ...] = (*SYNTHETIC_EXPERIMENTS, "kalman_step")

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
