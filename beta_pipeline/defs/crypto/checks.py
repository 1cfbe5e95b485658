"""Data-quality suites of the crypto study's inputs, declared through the shared factory
(:func:`beta_pipeline.defs.quality.checks.quality_suite`): unpartitioned, recorded in
quality.check_results under partition ``all``, run with the crypto job."""

from collections.abc import Callable

import dagster as dg

from beta_pipeline.defs.crypto.common import ALL, panel, read
from beta_pipeline.defs.quality.checks import Rule, Scope, quality_suite, unpartitioned_scope
from beta_pipeline.defs.resources import DuckDBWarehouse, PriceSourceResource
from beta_pipeline.lib.crypto import quality
from beta_pipeline.lib.crypto.data import MARKETS, allowed_nonpositive
from beta_pipeline.lib.quality import CheckOutcome

CRYPTO_PRICE_RULES: tuple[Rule, ...] = (
    Rule("crypto_prices_keys_unique", True, "one row per (symbol, date)"),
    Rule("crypto_prices_positive", True, "every price > 0"),
    Rule("crypto_prices_gaps", False, "no missing calendar day between observations"),
)
CROSS_ASSET_RULES: tuple[Rule, ...] = (
    Rule("cross_asset_prices_keys_unique", True, "one row per (symbol, date)"),
    Rule("cross_asset_prices_positive", True, "every price > 0 (allowed symbols aside)"),
    Rule(
        "cross_asset_prices_nonpositive_allowed",
        False,
        "non-positive prints of allowed symbols (e.g. CL=F 2020-04-20), dropped",
    ),
    Rule("cross_asset_prices_gaps", False, "observations at most 5 weekdays apart"),
)
MONTHLY_RULES: tuple[Rule, ...] = (
    Rule(
        "crypto_monthly_returns_complete",
        False,
        "every coin and market has a return in every month of the study sample",
    ),
)


def _run_crypto(db: DuckDBWarehouse, _: PriceSourceResource) -> list[CheckOutcome]:
    return quality.check_crypto_prices(read(db, "SELECT * FROM crypto.prices"))


def _run_cross(db: DuckDBWarehouse, prices: PriceSourceResource) -> list[CheckOutcome]:
    frame = read(db, "SELECT * FROM crypto.cross_asset_prices")
    return quality.check_cross_asset_prices(frame, allowed_nonpositive(prices.get()))


def _run_monthly(db: DuckDBWarehouse, _: PriceSourceResource) -> list[CheckOutcome]:
    wide, coins = panel(db)
    coin_rows = wide.loc[wide[coins].notna().any(axis=1)]
    return [quality.check_monthly_panel(coin_rows, [*coins, *MARKETS])]


def _scope(run: Callable[[DuckDBWarehouse, PriceSourceResource], list[CheckOutcome]]) -> Scope:
    """Whole history, recorded under ``all``; ``run`` gets the warehouse and the source."""
    return unpartitioned_scope(run, resources=("prices",), label=ALL)


CRYPTO_CHECKS: list[dg.AssetChecksDefinition] = [
    quality_suite(asset="crypto_prices", rules=CRYPTO_PRICE_RULES, scope=_scope(_run_crypto)),
    quality_suite(asset="cross_asset_prices", rules=CROSS_ASSET_RULES, scope=_scope(_run_cross)),
    quality_suite(
        asset="crypto_monthly_returns", rules=MONTHLY_RULES, scope=_scope(_run_monthly)
    ),
]
