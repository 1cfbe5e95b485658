"""Crypto and cross-asset study: Dagster assets and checks of the ``crypto`` group."""

from beta_pipeline.defs.crypto.assets import CRYPTO_ASSETS, CRYPTO_CHECKS

__all__ = ["CRYPTO_ASSETS", "CRYPTO_CHECKS"]
