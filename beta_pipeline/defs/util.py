"""Small helpers shared by the Dagster layer."""

from __future__ import annotations

import base64
from pathlib import Path

import dagster as dg
import pandas as pd


def window(
    context: dg.AssetExecutionContext | dg.AssetCheckExecutionContext,
) -> tuple[pd.Timestamp, pd.Timestamp]:
    """The run's partition time window [start, end) as naive timestamps.

    Works for one partition and for a single-run backfill of a range alike: assets never
    read ``context.partition_key``.
    """
    ctx = getattr(context, "op_execution_context", context)
    tw = ctx.partition_time_window
    start = pd.Timestamp(tw.start).tz_localize(None)
    end = pd.Timestamp(tw.end).tz_localize(None)
    return start, end


def ingestion_window(
    context: dg.AssetExecutionContext | dg.AssetCheckExecutionContext,
) -> tuple[pd.Timestamp, pd.Timestamp]:
    """The window an ingestion run reads and replaces: the run's sessions plus the
    non-session days after its last one (a Friday's runs to Monday), so that a source row
    dated on a weekend or holiday lands in a partition and fails its check, in a one-day
    run exactly as in a range run."""
    from beta_pipeline.lib import calendar

    start, end = window(context)
    return start, calendar.next_session(end - pd.Timedelta(days=1))


def partition_label(start: pd.Timestamp, end: pd.Timestamp, monthly: bool = False) -> str:
    """Human label of a partition range, e.g. ``2013-02-08..2018-02-07``.

    A weekday window ends at the next weekday's midnight, so a Friday's ends on Monday:
    its label names the last weekday (``2019-12-27``, not ``2019-12-27..2019-12-29``).
    """
    last = end - pd.Timedelta(days=1)
    if not monthly:
        last = max(start, pd.offsets.BDay().rollback(last))
    fmt = "%Y-%m" if monthly else "%Y-%m-%d"
    first_s, last_s = start.strftime(fmt), last.strftime(fmt)
    return first_s if first_s == last_s else f"{first_s}..{last_s}"


def preview(frame: pd.DataFrame, rows: int = 10) -> dg.MetadataValue:
    """First rows of a frame as Markdown for the UI."""
    if frame.empty:
        return dg.MetadataValue.md("_no rows_")
    return dg.MetadataValue.md(frame.head(rows).to_markdown(index=False, floatfmt=".6g"))


def frame_metadata(frame: pd.DataFrame, date_column: str = "date") -> dict[str, object]:
    """Row count, symbols and date span of a written frame (small: copied per partition)."""
    meta: dict[str, object] = {"dagster/row_count": len(frame)}
    if len(frame) and "symbol" in frame.columns:
        meta["symbols"] = int(frame["symbol"].nunique())
    if len(frame) and date_column in frame.columns:
        meta["first_date"] = str(pd.Timestamp(frame[date_column].min()).date())
        meta["last_date"] = str(pd.Timestamp(frame[date_column].max()).date())
    return meta


def png_metadata(png: bytes, alt: str = "plot") -> dg.MetadataValue:
    """A PNG for the UI: Markdown with a data-URI image.

    Dagster's UI renders a Markdown value of 1,000 characters or more as a
    ``[Show Markdown]`` link on the asset page, the event log and the run page; the link
    opens a dialog with the rendered image (its Markdown renderer allows ``data:`` images).
    """
    return dg.MetadataValue.md(f"![{alt}](data:image/png;base64,{base64.b64encode(png).decode()})")


def plot_entries(name: str, png: bytes, path: Path, alt: str | None = None) -> dict[str, object]:
    """Write ``png`` to ``path`` (under the artifacts) and return the metadata entries
    ``{name: the image, name_file: its path}``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(png)
    return {
        name: png_metadata(png, alt or name),
        f"{name}_file": dg.MetadataValue.path(str(path)),
    }


def materialize_result(
    context: dg.AssetExecutionContext,
    metadata: dict[str, object],
    rich: dict[str, object] | None = None,
    asset_key: str | dg.AssetKey | None = None,
) -> dg.MaterializeResult:
    """A result whose small ``metadata`` lands on every partition's materialization.

    Dagster copies a range run's metadata onto each partition's event (8,600 for a
    33-year weekday backfill), so previews and plots (``rich``) go on the materialization
    of the run's LAST partition only (``context.add_asset_metadata``): that event is the
    asset's latest materialization, the one the UI's asset page shows, whatever the range.
    ``asset_key`` names the asset of a multi-asset (default: the context's one asset).
    """
    rich = rich or {}
    key = dg.AssetKey.from_coercible(asset_key) if asset_key is not None else None
    if not context.has_partition_key_range or len(context.partition_keys) <= 1:
        return dg.MaterializeResult(asset_key=key, metadata={**metadata, **rich})
    if rich:
        keys = context.partition_keys
        rich = {**rich, "run_partitions": f"{keys[0]}..{keys[-1]}"}
        context.add_asset_metadata(rich, asset_key=key, partition_key=keys[-1])
    return dg.MaterializeResult(asset_key=key, metadata=metadata)
