"""Price sources: readers that turn every supported input into the canonical frames.

Pure pandas/numpy (no Dagster). Three kinds, chosen by ``BETA_PIPELINE_SOURCE``:

- ``embedded`` (default): real data shipped in PyPI wheels (skfolio, arch), offline.
- ``csv``: the user's CSV / CSV.gz / Parquet files described by a YAML config
  (``BETA_PIPELINE_CSV_CONFIG``, default the shipped ``shared_data.yaml``).
- ``yfinance``: live Yahoo Finance downloads (download function injectable).

Usage::

    from beta_pipeline.lib.sources import make_source
    src = make_source("csv", "shared_data.yaml")
    prices = src.load_prices("2015-01-01", "2016-01-01", symbols=["AAPL"], universe="equity")
    market = src.load_market("2015-01-01", "2016-01-01")
"""

from __future__ import annotations

import os
from typing import Any

from beta_pipeline.lib.sources.base import UNIVERSES, BaseSource, PriceSource
from beta_pipeline.lib.sources.cache import clear_cache
from beta_pipeline.lib.sources.config import SourceConfig, configs_dir, load_config
from beta_pipeline.lib.sources.csv_source import CsvSource
from beta_pipeline.lib.sources.embedded import EmbeddedSource
from beta_pipeline.lib.sources.yahoo import YFinanceSource

SOURCE_ENV = "BETA_PIPELINE_SOURCE"
KINDS: tuple[str, ...] = ("embedded", "csv", "yfinance")

__all__ = [
    "KINDS",
    "SOURCE_ENV",
    "UNIVERSES",
    "BaseSource",
    "CsvSource",
    "EmbeddedSource",
    "PriceSource",
    "SourceConfig",
    "YFinanceSource",
    "clear_cache",
    "configs_dir",
    "load_config",
    "make_source",
]


def make_source(
    kind: str | None = None,
    config_path: str | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    **options: Any,
) -> PriceSource:
    """Build a source. ``kind`` None/"" reads ``$BETA_PIPELINE_SOURCE`` (default embedded).

    - ``embedded``: no options; ``config_path`` is ignored.
    - ``csv``: ``config_path`` = a YAML path or the name of a shipped config
      (default ``$BETA_PIPELINE_CSV_CONFIG`` or ``shared_data.yaml``); ``cache_dir``: where
      validated files are kept as Parquet for later processes (None: parse each process).
    - ``yfinance``: ``config_path`` (default ``yfinance.yaml``; a config without a ``yfinance:``
      block falls back to it), ``download=`` a function with
      ``yfinance.download``'s keyword arguments, ``universes={universe: [tickers]}``.
    """
    kind = (kind or os.environ.get(SOURCE_ENV) or "embedded").strip().lower()
    if kind == "embedded":
        # config_path is ignored (BETA_PIPELINE_CSV_CONFIG may be set for another kind)
        if options:
            raise ValueError(f"unexpected options for the embedded source: {sorted(options)}")
        return EmbeddedSource()
    if kind == "csv":
        if options:
            raise ValueError(f"unexpected options for the csv source: {sorted(options)}")
        return CsvSource(config_path, cache_dir=cache_dir)
    if kind == "yfinance":
        return YFinanceSource(config_path, **options)
    raise ValueError(f"unknown source kind {kind!r}: use one of {', '.join(KINDS)}")
