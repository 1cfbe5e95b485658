"""Dagster resources: the DuckDB warehouse, the price source and the artifact/model store."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import duckdb
from pydantic import Field

from beta_pipeline.lib import warehouse
from beta_pipeline.settings import get_settings


class DuckDBWarehouse(dg.ConfigurableResource):
    """The DuckDB warehouse file; writers take the one-writer pool, readers open read-only."""

    path: str = Field(description="Path of the DuckDB file (default: $BETA_PIPELINE_HOME).")

    @contextlib.contextmanager
    def writer(self) -> Iterator[duckdb.DuckDBPyConnection]:
        with warehouse.open_warehouse(self.path, read_only=False) as conn:
            yield conn

    @contextlib.contextmanager
    def reader(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """Read-only connection (the file is created with its tables if missing)."""
        if not Path(self.path).exists():
            with warehouse.open_warehouse(self.path, read_only=False):
                pass
        with warehouse.open_warehouse(self.path, read_only=True) as conn:
            yield conn


class PriceSourceResource(dg.ConfigurableResource):
    """Where prices, index levels and factors come from (``BETA_PIPELINE_SOURCE``)."""

    kind: str = Field(default="embedded", description="embedded | csv | yfinance")
    config_path: str | None = Field(
        default=None, description="YAML file listing the user's files (csv source)."
    )
    symbols: list[str] | None = Field(
        default=None, description="Restrict the equity universe to these tickers."
    )

    def get(self):  # -> beta_pipeline.lib.sources.PriceSource
        from beta_pipeline.lib.sources import make_source

        return make_source(self.kind, config_path=self.config_path)


class ArtifactStore(dg.ConfigurableResource):
    """Folder for plots, checkpoints and large arrays (``$BETA_PIPELINE_HOME/artifacts``)."""

    root: str

    def path(self, *parts: str) -> Path:
        target = Path(self.root).joinpath(*parts)
        target.parent.mkdir(parents=True, exist_ok=True)
        return target


def default_resources() -> dict[str, dg.ConfigurableResource]:
    """Resources built from the environment (see ``beta_pipeline.settings``)."""
    settings = get_settings()
    return {
        "warehouse_db": DuckDBWarehouse(path=str(settings.warehouse_path)),
        "prices": PriceSourceResource(kind=settings.source, config_path=settings.csv_config),
        "artifacts": ArtifactStore(root=str(settings.artifacts_dir)),
    }
