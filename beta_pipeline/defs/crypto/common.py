"""Warehouse reads and writes, metadata and figure helpers shared by the crypto assets and
checks (group ``crypto``, tables ``crypto.*``)."""

from __future__ import annotations

from collections.abc import Mapping

import dagster as dg
import pandas as pd

from beta_pipeline.defs.resources import ArtifactStore, DuckDBWarehouse
from beta_pipeline.defs.util import png_metadata
from beta_pipeline.lib import warehouse
from beta_pipeline.lib.crypto import study

GROUP = "crypto"
#: Partition label of the unpartitioned crypto checks in quality.check_results.
ALL = "all"


def md(frame: pd.DataFrame, floatfmt: str = ".4f") -> dg.MetadataValue:
    """A frame as a Markdown table for the UI."""
    if frame.empty:
        return dg.MetadataValue.md("_empty_")
    return dg.MetadataValue.md(frame.to_markdown(index=False, floatfmt=floatfmt))


def replace(
    db: DuckDBWarehouse, table: str, frame: pd.DataFrame, keys: Mapping[str, object] | None = None
) -> int:
    """Replace ``table``'s rows matching ``keys`` (all rows by default) with ``frame``."""
    with db.writer() as conn:
        return warehouse.replace_keys(conn, table, frame, keys or {})


def read(db: DuckDBWarehouse, sql: str, params: list[object] | None = None) -> pd.DataFrame:
    """A query's result with its date columns as timestamps."""
    with db.reader() as conn:
        frame = conn.execute(sql, params or []).df()
    for col in ("month", "data_end", "date", "close_date"):
        if col in frame.columns:
            frame[col] = pd.to_datetime(frame[col])
    return frame


def save_png(artifacts: ArtifactStore, name: str, png: bytes, alt: str) -> dict[str, object]:
    """Write ``crypto/<name>.png`` and return its metadata entries (image and file)."""
    path = artifacts.path("crypto", f"{name}.png")
    path.write_bytes(png)
    return {name: png_metadata(png, alt), f"{name}_file": dg.MetadataValue.path(str(path))}


def crypto_span(db: DuckDBWarehouse) -> tuple[pd.Timestamp, pd.Timestamp]:
    """First and last date of crypto.prices (a failure when it is empty)."""
    span = read(db, "SELECT min(date) AS lo, max(date) AS hi FROM crypto.prices")
    lo, hi = span["lo"].iloc[0], span["hi"].iloc[0]
    if pd.isna(lo):
        raise dg.Failure(description="crypto.prices is empty: materialize crypto_prices first")
    return pd.Timestamp(lo), pd.Timestamp(hi)


def panel(db: DuckDBWarehouse) -> tuple[pd.DataFrame, list[str]]:
    """The study's months x assets log returns and its coins (see ``study.study_panel``)."""
    frame = read(db, "SELECT * FROM crypto.monthly_returns")
    if frame.empty:
        raise dg.Failure(description="crypto.monthly_returns is empty: run the crypto group")
    return study.study_panel(frame)


def best_configs(db: DuckDBWarehouse) -> pd.DataFrame:
    """crypto.best_configs by config (a failure when the grid has not run)."""
    best = read(db, "SELECT * FROM crypto.best_configs ORDER BY config")
    if best.empty:
        raise dg.Failure(description="crypto.best_configs is empty: run crypto_neural_betas")
    return best


def all_betas(db: DuckDBWarehouse) -> pd.DataFrame:
    """The MLP betas and the baseline betas in one long frame."""
    return read(
        db, "SELECT * FROM crypto.betas UNION ALL BY NAME SELECT * FROM crypto.baseline_betas"
    )
