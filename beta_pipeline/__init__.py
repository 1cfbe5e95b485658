"""beta_pipeline: time-varying betas as Dagster assets over a DuckDB warehouse.

Shared use from notebooks and scripts (never hold the warehouse file between cells)::

    import beta_pipeline
    df = beta_pipeline.read("SELECT * FROM betas.daily WHERE symbol = ?", ["AAPL"])
    with beta_pipeline.connect_readonly() as conn:  # short blocks only: writers wait
        conn.sql("SELECT count(*) FROM returns.daily").show()

Both wait (with backoff) while a pipeline run writes, up to ``BETA_PIPELINE_LOCK_TIMEOUT_S``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from beta_pipeline.lib.warehouse import connect_readonly, read

__all__ = ["connect_readonly", "read"]


def __getattr__(name: str) -> Any:
    """Import the warehouse helpers on first use (keeps ``import beta_pipeline.x`` light)."""
    if name in __all__:
        from beta_pipeline.lib import warehouse

        return getattr(warehouse, name)
    raise AttributeError(f"module 'beta_pipeline' has no attribute {name!r}")
