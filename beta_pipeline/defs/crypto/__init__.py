"""Crypto and cross-asset study (group ``crypto``): coin and market prices, monthly log
returns, the MLP grid and its betas, OLS / Kalman betas, hedging comparison, statistics,
annual trajectories, the Fama-French add-on and quartile sorts, all in ``crypto.*`` tables.

Unpartitioned: the study is a whole-history model (a time split into train / validation /
test), so every run recomputes it from the full files in seconds to minutes. The group is
left out of the default jobs (the default embedded source has no crypto prices) and runs
as ``crypto_job`` / ``beta-pipeline run --select group:crypto``. Without a source listing
crypto and cross-asset prices, ``crypto_prices`` fails at once with one message saying how
to configure one, and nothing downstream runs.

- :mod:`.data`: prices, cross-asset prices, monthly factors, monthly returns
- :mod:`.models`: the MLP grid (``crypto_neural_betas``) and the OLS / Kalman baselines
- :mod:`.results`: hedging, beta statistics, trajectories, FF5 add-on, quartile sorts
- :mod:`.checks`: the data-quality suites of the inputs (shared factory of ``defs.quality``)
- :mod:`.common`: warehouse, metadata and figure helpers
"""

import dagster as dg

from beta_pipeline.defs.crypto.checks import CRYPTO_CHECKS
from beta_pipeline.defs.crypto.data import (
    cross_asset_prices,
    crypto_factors_monthly,
    crypto_monthly_returns,
    crypto_prices,
)
from beta_pipeline.defs.crypto.models import crypto_baseline_betas, crypto_neural_betas
from beta_pipeline.defs.crypto.results import (
    crypto_beta_stats,
    crypto_beta_trajectories,
    crypto_ff5_addon,
    crypto_hedging_comparison,
    crypto_quartile_sorts,
)

CRYPTO_ASSETS: list[dg.AssetsDefinition] = [
    crypto_prices,
    cross_asset_prices,
    crypto_factors_monthly,
    crypto_monthly_returns,
    crypto_neural_betas,
    crypto_baseline_betas,
    crypto_hedging_comparison,
    crypto_beta_stats,
    crypto_beta_trajectories,
    crypto_ff5_addon,
    crypto_quartile_sorts,
]

__all__ = ["CRYPTO_ASSETS", "CRYPTO_CHECKS"]
