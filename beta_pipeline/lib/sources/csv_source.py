"""The ``csv`` source: the user's own CSV / CSV.gz / Parquet files, described by a YAML config.

See :mod:`beta_pipeline.lib.sources.config` for the YAML schema. Shipped configs (in
``beta_pipeline/configs``):

- ``shared_data.yaml`` (the default): every file of the project's ``shared/data`` folder —
  equity from the Kaggle long file, crypto, cross-asset, ^GSPC, Fama–French daily/monthly.
- ``shared_data_wide.yaml``: the same, equity from the wide close file instead.
- ``shared_data_french_raw.yaml``: the same, factors parsed from Ken French's raw CSVs.

Their paths are ``${BETA_PIPELINE_DATA_DIR:-../shared/data}/<file>`` resolved against the
current working directory (``paths_relative_to: cwd``): run from the repository root, or
set ``BETA_PIPELINE_DATA_DIR``.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from beta_pipeline.lib.errors import DataValidationError
from beta_pipeline.lib.sources.base import (
    BaseSource,
    DateLike,
    canonical_market,
    canonical_prices,
    check_universe,
    coverage_market,
    coverage_prices,
    not_configured,
    security_frame,
    select_symbols,
    unconfigured,
    window,
)
from beta_pipeline.lib.sources.cache import cached_file
from beta_pipeline.lib.sources.config import SourceConfig, load_config
from beta_pipeline.lib.sources.parsing import load_price_file, load_series_file
from beta_pipeline.lib.sources.securities import lookup_securities, read_security_master

DEFAULT_CONFIG = "shared_data.yaml"
CONFIG_ENV = "BETA_PIPELINE_CSV_CONFIG"


class CsvSource(BaseSource):
    """Reads the files listed in a YAML config (default: ``$BETA_PIPELINE_CSV_CONFIG`` or the
    shipped ``shared_data.yaml``)."""

    kind = "csv"

    def __init__(
        self,
        config_path: str | os.PathLike[str] | None = None,
        cache_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        ref = config_path or os.environ.get(CONFIG_ENV) or DEFAULT_CONFIG
        self.config: SourceConfig = load_config(ref)
        #: validated files are kept here as Parquet (None: parse every process)
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self._stats: dict[str, dict[str, Any]] = {}

    # --- prices ------------------------------------------------------------------------------
    def _prices(self, universe: str) -> pd.DataFrame:
        return canonical_prices(self._validated_prices(universe))

    def load_prices(
        self,
        start: DateLike = None,
        end: DateLike = None,
        symbols: Iterable[str] | str | None = None,
        universe: str = "equity",
    ) -> pd.DataFrame:
        """As :meth:`BaseSource.load_prices`, but the window is cut before the rows are put in
        canonical form (same rows and order: that form is row-wise plus a stable sort), so a
        one-day read of a multi-year file costs the window, not the file."""
        check_universe(universe)
        frame = self._validated_prices(universe)
        chosen = select_symbols(frame, symbols, frame["symbol"].unique(), self._where(universe))
        return canonical_prices(window(chosen, "date", start, end))

    def _validated_prices(self, universe: str) -> pd.DataFrame:
        """The universe's validated rows (not yet in canonical form), all files together."""
        check_universe(universe)
        specs = self.config.universes.get(universe)
        if not specs:
            raise not_configured(
                universe,
                self.kind,
                f"add a 'universes: {universe}:' list of files to {self.config.path}",
            )
        parsed = [load_price_file(s, self.cache_dir) for s in specs]
        for p in parsed:
            self._stats[p.file] = {
                "rows_read": p.rows_read,
                "nan_rows_dropped": p.nan_rows_dropped,
                **p.extra,
            }
        if len(parsed) == 1:
            frame = parsed[0].frame
        else:
            frame = pd.concat([p.frame.assign(_file=p.file) for p in parsed], ignore_index=True)
            dup = frame.duplicated(["symbol", "date"], keep="first").to_numpy()
            if dup.any():
                row = frame.loc[np.flatnonzero(dup)[0]]
                raise DataValidationError(
                    "duplicate_row",
                    f"{row['symbol']} on {row['date'].date()} comes from two files of the "
                    f"{universe} universe; the second is {row['_file']} row {int(row['_line'])}",
                    file=str(row["_file"]),
                    row=int(row["_line"]),
                    symbol=str(row["symbol"]),
                    date=str(row["date"].date()),
                )
        return frame

    def _where(self, universe: str) -> str:
        files = ", ".join(str(s.path) for s in self.config.universes.get(universe, []))
        return f"the csv {universe} universe (file(s) {files}; config {self.config.path})"

    # --- market --------------------------------------------------------------------------------
    def _series(self, monthly: bool) -> tuple[pd.DataFrame, dict[str, Any]]:
        specs = self.config.monthly if monthly else self.config.market
        key = "month" if monthly else "date"
        owner: dict[str, str] = {}
        shadowed: list[dict[str, str]] = []
        parts = []
        for spec in specs:
            parsed = load_series_file(spec, self.cache_dir)
            self._stats[parsed.file] = {
                "rows_read": parsed.rows_read,
                "nan_values_dropped": parsed.nan_rows_dropped,
            }
            mine = []
            for name in spec.series:
                if name in owner:
                    shadowed.append({"series": name, "used": owner[name], "ignored": parsed.file})
                else:
                    owner[name] = parsed.file
                    mine.append(name)
            parts.append(parsed.frame.loc[parsed.frame["series"].isin(mine)])
        if not parts:
            frame = pd.DataFrame(columns=[key, "series", "value"])
        else:
            frame = pd.concat(parts, ignore_index=True)
        info = {"series_files": owner, "shadowed": shadowed}
        return canonical_market(frame, monthly=monthly), info

    def _market(self) -> pd.DataFrame:
        return self._series(False)[0]

    def _market_monthly(self) -> pd.DataFrame:
        return self._series(True)[0]

    # --- metadata ------------------------------------------------------------------------------
    def _master(self) -> pd.DataFrame | None:
        path = self.config.securities
        if path is None:
            return None
        return cached_file(Path(path), "securities", lambda: read_security_master(Path(path)))

    def securities(self) -> pd.DataFrame:
        rows: list[dict[str, Any]] = []
        master = self._master()
        for universe, specs in self.config.universes.items():
            symbols = sorted(self._prices(universe)["symbol"].unique())
            sources = {s.path.name for s in specs}
            asset_class = specs[0].asset_class
            rows.extend(
                lookup_securities(
                    symbols, universe, f"csv:{','.join(sorted(sources))}", master, asset_class
                )
            )
        return security_frame(rows).drop_duplicates("symbol").reset_index(drop=True)

    def describe(self) -> dict[str, Any]:
        prices: dict[str, Any] = {}
        for universe in ("equity", "crypto", "cross_asset"):
            specs = self.config.universes.get(universe)
            if not specs:
                prices[universe] = unconfigured()
                continue
            cov = coverage_prices(self._prices(universe), exchange_calendar=universe == "equity")
            prices[universe] = {"configured": True, "files": [str(s.path) for s in specs], **cov}
        market, minfo = self._series(False)
        monthly, mminfo = self._series(True)
        return {
            "kind": self.kind,
            "config": str(self.config.path),
            "config_chain": list(self.config.chain),
            "description": self.config.description,
            "prices": prices,
            "market": {**coverage_market(market), **minfo},
            "market_monthly": {**coverage_market(monthly, monthly=True), **mminfo},
            "files": dict(self._stats),
            "notes": [
                "values in percent are divided by 100; rf is a simple return per period",
                "rows with an empty close are dropped and counted in files[...].nan_rows_dropped",
                "a series named by several files comes from the first file listing it",
            ],
        }
