"""Baseline beta tables: daily and monthly betas per model and estimator, and the hedging
leaderboard."""

from beta_pipeline.defs.baselines.daily import daily_betas
from beta_pipeline.defs.baselines.leaderboard import hedging_performance
from beta_pipeline.defs.baselines.monthly import monthly_betas

__all__ = ["daily_betas", "hedging_performance", "monthly_betas"]
