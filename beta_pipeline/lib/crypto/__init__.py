"""Crypto and cross-asset study (docs/methods.md): neural time-varying betas of BTC,
ETH, LTC and BCH on FIAT (US dollar index), EQUITY (S&P 500), GOLD and ENERGY, with the
grid search, statistics, Fama-French add-on, quartile sorts and the OLS / Kalman comparison.

Pure pandas / numpy / torch (imported only by :mod:`.model`): no Dagster import (the assets
are in ``beta_pipeline.defs.crypto``).

- :mod:`.data`: month-end resampling, market series choice, WTI treatment, source checks
- :mod:`.quality`: gap and non-positive price rules
- :mod:`.grid`: settings, grid points and samples (no torch)
- :mod:`.model`: the batched MLP grid (training, early stopping, betas, learning curves)
- :mod:`.compare`: rolling / expanding OLS and the multi-factor Kalman filter
- :mod:`.analysis`: hedging RMSE, beta statistics, annual means, quartile sorts, FF5 add-on
- :mod:`.study`: the assets' steps (panel, grid over configurations, baselines, sorts)
"""

from beta_pipeline.lib.crypto.data import (
    COINS,
    DEFAULT_MARKET_SERIES,
    MARKETS,
    MarketChoice,
    common_sample,
    crypto_monthly_returns,
    study_source_error,
    wide_returns,
)
from beta_pipeline.lib.crypto.grid import (
    ACTIVATIONS,
    HIDDEN,
    LEARNING_RATES,
    MARKET_CONFIGS,
    GridPoint,
    TrainOptions,
    build_samples,
    make_grid,
)


def __getattr__(name: str) -> object:
    """``fit_grid`` on first use (it imports torch)."""
    if name == "fit_grid":
        from beta_pipeline.lib.crypto.model import fit_grid

        return fit_grid
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "ACTIVATIONS",
    "COINS",
    "DEFAULT_MARKET_SERIES",
    "HIDDEN",
    "LEARNING_RATES",
    "MARKETS",
    "MARKET_CONFIGS",
    "GridPoint",
    "MarketChoice",
    "TrainOptions",
    "build_samples",
    "common_sample",
    "crypto_monthly_returns",
    "fit_grid",
    "make_grid",
    "study_source_error",
    "wide_returns",
]
