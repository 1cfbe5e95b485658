"""The one ``dg.Definitions`` of beta_pipeline (code location for ``dagster dev``)."""

from __future__ import annotations

from collections.abc import Mapping

import dagster as dg

from beta_pipeline.defs.automation import automation_sensor, with_automation
from beta_pipeline.defs.baselines import daily_betas, hedging_performance, monthly_betas
from beta_pipeline.defs.crypto import CRYPTO_ASSETS, CRYPTO_CHECKS
from beta_pipeline.defs.ingestion.assets import (
    raw_market,
    raw_market_monthly,
    raw_prices,
    security_master,
)
from beta_pipeline.defs.jobs import build_jobs
from beta_pipeline.defs.neuralbeta import NEURALBETA_ASSETS
from beta_pipeline.defs.portfolios.assets import PORTFOLIO_ASSETS
from beta_pipeline.defs.quality.checks import QUALITY_CHECKS
from beta_pipeline.defs.quality.model_checks import MODEL_CHECKS
from beta_pipeline.defs.recovery import dead_run_sensor
from beta_pipeline.defs.resources import default_resources
from beta_pipeline.defs.returns.assets import daily_returns_asset, monthly_returns_asset
from beta_pipeline.defs.sql_models.assets import sql_assets

#: Every asset but the SQL models: the tables their metadata names are what a SQL model in
#: ``dbt_like_sql/`` may read (``defs/tables.py``).
PIPELINE_ASSETS: list[dg.AssetsDefinition] = [
    raw_prices,
    raw_market,
    raw_market_monthly,
    security_master,
    daily_returns_asset,
    monthly_returns_asset,
    daily_betas,
    monthly_betas,
    hedging_performance,
    *NEURALBETA_ASSETS,
    *PORTFOLIO_ASSETS,
    *CRYPTO_ASSETS,
]
#: Every asset, with its automation condition (``defs/automation.py``).
ASSETS: list[dg.AssetsDefinition] = with_automation(
    [*PIPELINE_ASSETS, *sql_assets(upstream=PIPELINE_ASSETS)]
)


def build_definitions(resources: Mapping[str, object] | None = None) -> dg.Definitions:
    """All assets, checks and jobs bound to ``resources`` (default: from env)."""
    jobs = build_jobs(ASSETS)
    return dg.Definitions(
        assets=ASSETS,
        asset_checks=[*QUALITY_CHECKS, *CRYPTO_CHECKS, *MODEL_CHECKS],
        jobs=jobs,
        sensors=[automation_sensor(), dead_run_sensor],
        resources=dict(resources) if resources is not None else default_resources(),
    )


defs = build_definitions()
