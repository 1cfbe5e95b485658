"""Helpers shared by the ``test_defs_*`` modules: build definitions bound to test resources,
run a job over a partition or a range, read the warehouse, write tiny csv sources.

The jobs are run restricted to the ingestion and returns assets (and their checks), the layer
these tests cover, so that a run does not depend on other domains' assets sharing the same
jobs.
"""

from __future__ import annotations

import contextlib
import logging
import textwrap
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd
import pytest

from beta_pipeline.definitions import ASSETS, build_definitions
from beta_pipeline.defs.resources import ArtifactStore, DuckDBWarehouse, PriceSourceResource
from beta_pipeline.lib.warehouse import TABLES, open_warehouse
from beta_pipeline.settings import ensure_home
from beta_pipeline_tests.support.tags import partition_range_tags

#: Groups whose assets the runs of these tests materialize.
GROUPS = ("ingestion", "returns")
PIPELINE_KEYS: frozenset[dg.AssetKey] = frozenset(
    k for a in ASSETS for k in a.keys if a.group_names_by_key.get(k) in GROUPS
)

#: Console logger at WARNING: the DEBUG event lines cost time and are captured anyway
#: (the instance's event log still stores every event and user log message).
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}

#: Tables written by the ingestion and returns assets (and their checks).
PIPELINE_TABLES = (
    "raw.prices",
    "raw.market",
    "raw.market_monthly",
    "raw.securities",
    "returns.daily",
    "returns.monthly",
    "quality.check_results",
)


def build(
    warehouse_path: Path,
    tmp: Path,
    kind: str = "embedded",
    config: Path | str | None = None,
) -> dg.Definitions:
    """The project's definitions bound to a per-test warehouse, source and artifact folder."""
    return build_definitions(
        {
            "warehouse_db": DuckDBWarehouse(path=str(warehouse_path)),
            "prices": PriceSourceResource(
                kind=kind, config_path=str(config) if config is not None else None
            ),
            "artifacts": ArtifactStore(root=str(tmp / "artifacts")),
        }
    )


def run(
    defs: dg.Definitions,
    job_name: str,
    first: str | None = None,
    last: str | None = None,
    *,
    key: str | None = None,
    instance: dg.DagsterInstance | None = None,
    keys: Iterable[dg.AssetKey] | None = None,
) -> dg.ExecuteInProcessResult:
    """Execute ``job_name`` for one partition (``key``), a range (``first``..``last``) or,
    for an unpartitioned job, once; restricted to ``keys`` (default: ingestion + returns)."""
    job = defs.resolve_job_def(job_name)
    wanted = set(PIPELINE_KEYS if keys is None else keys)
    selection = [k for k in job.asset_layer.executable_asset_keys if k in wanted]
    assert selection, f"{job_name} has none of {sorted(k.to_user_string() for k in wanted)}"
    tags: dict[str, str] = {}
    if first is not None:
        tags = partition_range_tags(first, last)
    return job.execute_in_process(
        instance=instance or dg.DagsterInstance.ephemeral(),
        partition_key=key,
        tags=tags,
        asset_selection=selection,
        raise_on_error=False,
        run_config=QUIET,
    )


def query(path: Path, sql: str, params: list[object] | None = None) -> pd.DataFrame:
    """A read-only query on the warehouse file."""
    with open_warehouse(path, read_only=True) as conn:
        return conn.execute(sql, params or []).df()


def table(path: Path, name: str) -> pd.DataFrame:
    """All rows of a registered table in primary-key order (``checked_at`` dropped)."""
    t = TABLES[name]
    order = ", ".join(t.primary_key) if t.primary_key else "1"
    frame = query(path, f"SELECT * FROM {name} ORDER BY {order}")
    return frame.drop(columns=["checked_at"], errors="ignore").reset_index(drop=True)


def duplicate_keys(path: Path, name: str) -> int:
    """Rows in ``name`` beyond one per primary key."""
    t = TABLES[name]
    keys = ", ".join(t.primary_key)
    return int(
        query(path, f"SELECT count(*) - count(DISTINCT ({keys})) AS n FROM {name}")["n"].iloc[0]
    )


def evaluations(result: dg.ExecuteInProcessResult) -> dict[str, dg.AssetCheckEvaluation]:
    """Asset check evaluations of a run by check name (names are unique in this project)."""
    out: dict[str, dg.AssetCheckEvaluation] = {}
    for ev in result.get_asset_check_evaluations():
        name = ev.asset_check_key.name
        assert name not in out, f"check {name} evaluated twice in one run"
        out[name] = ev
    return out


def meta_text(ev: dg.AssetCheckEvaluation, key: str) -> str:
    """A metadata entry of a check evaluation as text (details, preview Markdown, ...)."""
    return str(ev.metadata[key].value)


def executed_steps(result: dg.ExecuteInProcessResult) -> set[str]:
    """Step keys that started in the run."""
    return {e.step_key for e in result.all_events if e.event_type_value == "STEP_START"}


def materialized(result: dg.ExecuteInProcessResult) -> set[str]:
    return {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}


def failure_text(result: dg.ExecuteInProcessResult) -> str:
    """Messages of every step failure, with the chain of causes (the user's exception)."""
    parts: list[str] = []
    for event in result.get_step_failure_events():
        error = event.event_specific_data.error
        while error is not None:
            parts.append(error.message)
            error = error.cause
    return "\n".join(parts)


def log_messages(
    instance: dg.DagsterInstance, run_id: str, level: int = logging.WARNING
) -> list[str]:
    """User log messages of a run at ``level`` or above."""
    return [
        e.user_message
        for e in instance.all_logs(run_id)
        if e.level is not None and int(e.level) >= level and e.user_message
    ]


# --- tiny csv sources ------------------------------------------------------------------------


def weekdays(start: str, end: str) -> pd.DatetimeIndex:
    """The trading sessions in [start, end] (synthetic data has no rows on holidays)."""
    from beta_pipeline.lib import calendar

    return calendar.sessions(start, end)


def make_prices(
    symbols: Iterable[str], start: str, end: str, seed: int = 0
) -> pd.DataFrame:
    """Long prices (date, symbol, close) on every weekday, random-walk closes."""
    days = weekdays(start, end)
    rng = np.random.default_rng(seed)
    parts = []
    for sym in symbols:
        close = 50.0 * np.cumprod(1.0 + rng.normal(0.0, 0.01, len(days)))
        parts.append(pd.DataFrame({"date": days, "symbol": sym, "close": close.round(4)}))
    frame = pd.concat(parts, ignore_index=True)
    return frame.sort_values(["date", "symbol"], kind="mergesort").reset_index(drop=True)


def make_market(start: str, end: str, seed: int = 1) -> pd.DataFrame:
    """Index level, market excess return and rf (percent) on every weekday."""
    days = weekdays(start, end)
    rng = np.random.default_rng(seed)
    level = 3000.0 * np.cumprod(1.0 + rng.normal(0.0, 0.01, len(days)))
    return pd.DataFrame(
        {
            "date": days,
            "level": level.round(3),
            "mkt_rf": rng.normal(0.0, 1.0, len(days)).round(3),
            "rf": 0.006,
        }
    )


def write_frame(path: Path, frame: pd.DataFrame) -> Path:
    """Write a frame as CSV with ISO dates."""
    out = frame.copy()
    if "date" in out.columns and pd.api.types.is_datetime64_any_dtype(out["date"]):
        out["date"] = out["date"].dt.strftime("%Y-%m-%d")
    path.parent.mkdir(parents=True, exist_ok=True)
    out.to_csv(path, index=False)
    return path


def csv_config(folder: Path, prices_file: str, market_file: str, name: str = "cfg.yaml") -> Path:
    """YAML config of the csv source: one long equity file and one market file."""
    path = folder / name
    path.write_text(
        textwrap.dedent(
            f"""
            version: 1
            universes:
              equity:
                - path: {prices_file}
                  layout: long
                  date_format: "%Y-%m-%d"
            market:
              - path: {market_file}
                date_format: "%Y-%m-%d"
                units: percent
                series: {{mkt_level: level, mkt_rf: mkt_rf, rf: rf}}
            """
        ).lstrip()
    )
    return path


@contextlib.contextmanager
def module_home(home: Path) -> Iterator[Path]:
    """A fresh BETA_PIPELINE_HOME and DAGSTER_HOME at ``home`` for a module-scoped fixture
    (the ``home`` fixture is per test)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("BETA_PIPELINE_HOME", str(home))
        mp.setenv("DAGSTER_HOME", str(home / "dagster_home"))
        for var in ("BETA_PIPELINE_SOURCE", "BETA_PIPELINE_CSV_CONFIG", "BETA_PIPELINE_SQL_DIR"):
            mp.delenv(var, raising=False)
        ensure_home()
        yield home


#: csv-source config of the slices written by :func:`write_shared_slices` (with ``ff5``,
#: :data:`FF5_MARKET` follows the FF3 entry).
SHARED_SLICE_CONFIG = """
version: 1
description: slices of shared/data (Kaggle S&P 500, ^GSPC, FF3 daily)
universes:
  equity:
    - path: stocks.csv
      layout: long
      date_format: "%Y-%m-%d"
      columns: {date: date, symbol: Name, open: open, high: high, low: low,
                close: close, adj_close: null, volume: volume}
market:
  - path: ff3.csv
    date_format: "%Y-%m-%d"
    units: percent
    series: {mkt_rf: Mkt-RF, smb: SMB, hml: HML, rf: RF}
  - path: gspc.csv
    columns: {date: Date}
    date_format: "%Y-%m-%d"
    series: {mkt_level: Adj Close}
"""
#: The market entry of the daily FF5 slice (the factors FF3 lacks).
FF5_MARKET = """
  - path: ff5.csv
    date_format: "%Y-%m-%d"
    units: percent
    series: {rmw: RMW, cma: CMA}
"""


def shared_slice_config(ff5: bool = False) -> str:
    """:data:`SHARED_SLICE_CONFIG`, with the FF5 market entry after FF3's when ``ff5``."""
    if not ff5:
        return SHARED_SLICE_CONFIG.lstrip()
    head, gspc = SHARED_SLICE_CONFIG.split("  - path: gspc.csv\n")
    head = head.replace("FF3 daily)", "FF3 and FF5 daily)")
    return (head + FF5_MARKET.lstrip("\n") + "  - path: gspc.csv\n" + gspc).lstrip()


def write_shared_slices(
    data: Path,
    folder: Path,
    windows: Sequence[tuple[str, str]],
    symbols: Sequence[str] | None = None,
    *,
    ff5: bool = False,
) -> Path:
    """The Kaggle stocks (all, or ``symbols``), ^GSPC and daily FF3 (and FF5 when ``ff5``)
    inside the inclusive date ``windows``, as CSVs in the files' own layouts under
    ``folder``, and the csv-source config reading them (returned)."""

    def keep(dates: pd.Series) -> pd.Series:
        inside = pd.Series(False, index=dates.index)
        for lo, hi in windows:
            inside |= dates.between(lo, hi)
        return inside

    stocks = pd.read_csv(data / "all_stocks_5yr.csv.gz", dtype={"date": str, "Name": str})
    if symbols is not None:
        stocks = stocks.loc[stocks["Name"].isin(list(symbols))]
    stocks.loc[keep(stocks["date"])].to_csv(folder / "stocks.csv", index=False)
    gspc = pd.read_csv(data / "gspc_daily.csv.gz", dtype={"Date": str})
    gspc.loc[keep(gspc["Date"])].to_csv(folder / "gspc.csv", index=False)
    for name in ("ff3", "ff5") if ff5 else ("ff3",):
        frame = pd.read_csv(data / f"{name}_daily.csv.gz", dtype={"date": str})
        frame.loc[keep(frame["date"])].to_csv(folder / f"{name}.csv", index=False)
    config = folder / "shared_slice.yaml"
    config.write_text(shared_slice_config(ff5))
    return config
