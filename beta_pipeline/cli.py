"""``beta-pipeline``: run the pipeline through Dagster, query the warehouse, open the UI."""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from beta_pipeline.settings import ensure_home, get_settings

JOB_ORDER = ("static_job", "daily_job", "monthly_job", "analytics_job")


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="beta-pipeline",
        description="Time-varying betas with full lineage: Dagster assets over a DuckDB warehouse.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="materialize assets over a date range (one run per job)")
    run.add_argument(
        "--select",
        default="*",
        help="comma-separated asset names or 'group:<name>' (default: every asset)",
    )
    run.add_argument("--start", help="first date (default: the source's first date)")
    run.add_argument("--end", help="last date, inclusive (default: the source's last date)")
    run.add_argument("--source", help="embedded | csv | yfinance (overrides BETA_PIPELINE_SOURCE)")
    run.add_argument("--config", help="YAML file of the csv source (BETA_PIPELINE_CSV_CONFIG)")
    run.add_argument("--verbose", action="store_true", help="show Dagster's debug events")

    query = sub.add_parser("query", help="read-only SQL on the warehouse, printed as a table")
    query.add_argument("sql", help="SQL text, or @file.sql")
    query.add_argument("--format", choices=["table", "csv", "markdown"], default="table")
    query.add_argument("--max-rows", type=int, default=50)

    ui = sub.add_parser("ui", help="start the Dagster UI (dagster dev) on 127.0.0.1")
    ui.add_argument("--port", type=int, default=3000)

    sub.add_parser("info", help="show settings, source coverage and warehouse tables")
    return parser.parse_args(argv)


def _apply_source_overrides(args: argparse.Namespace) -> None:
    if getattr(args, "source", None):
        os.environ["BETA_PIPELINE_SOURCE"] = args.source
    if getattr(args, "config", None):
        os.environ["BETA_PIPELINE_CSV_CONFIG"] = str(Path(args.config).resolve())


def _selected_keys(select: str, all_assets) -> set:
    import dagster as dg

    if select.strip() in ("", "*"):
        return {a.key for a in all_assets}
    keys: set = set()
    known = {a.key.to_user_string(): a for a in all_assets}
    for token in (t.strip() for t in select.split(",") if t.strip()):
        if token.startswith("group:"):
            group = token.split(":", 1)[1]
            found = {a.key for a in all_assets if a.group_names_by_key.get(a.key) == group}
            if not found:
                raise SystemExit(f"no asset in group {group!r}")
            keys |= found
        elif token in known:
            keys.add(dg.AssetKey.from_user_string(token))
        else:
            raise SystemExit(f"unknown asset {token!r}; known: {', '.join(sorted(known))}")
    return keys


def _partition_range(job_name: str, start: pd.Timestamp, end: pd.Timestamp):
    """First and last partition keys of a job's partitions inside [start, end]."""
    from beta_pipeline.defs.partitions import monthly_partitions, weekday_partitions

    if job_name == "daily_job":
        days = pd.bdate_range(start, end)
        if days.empty:
            return None
        keys = weekday_partitions.get_partition_keys()
        first, last = days[0].strftime("%Y-%m-%d"), days[-1].strftime("%Y-%m-%d")
    elif job_name == "monthly_job":
        keys = monthly_partitions.get_partition_keys()
        first = start.to_period("M").to_timestamp().strftime("%Y-%m-%d")
        last = end.to_period("M").to_timestamp().strftime("%Y-%m-%d")
    else:
        return ()
    inside = [k for k in keys if first <= k <= last]
    if not inside:
        return None
    return inside[0], inside[-1]


def _default_range() -> tuple[pd.Timestamp, pd.Timestamp]:
    from beta_pipeline.defs.resources import default_resources

    source = default_resources()["prices"].get()
    coverage = source.describe()
    equity = coverage["prices"]["equity"]
    first = pd.Timestamp(equity["first_date"])
    last = pd.Timestamp(equity["last_date"])
    return first, last


def cmd_run(args: argparse.Namespace) -> int:
    _apply_source_overrides(args)
    ensure_home()
    import dagster as dg
    from dagster._core.storage.tags import (
        ASSET_PARTITION_RANGE_END_TAG,
        ASSET_PARTITION_RANGE_START_TAG,
    )

    from beta_pipeline.definitions import ASSETS, build_definitions

    # bound to the environment now (--source/--config, BETA_PIPELINE_HOME), not to the one
    # seen when beta_pipeline.definitions was first imported in this process
    defs = build_definitions()

    if args.start and args.end:
        start, end = pd.Timestamp(args.start), pd.Timestamp(args.end)
    else:
        first, last = _default_range()
        start = pd.Timestamp(args.start) if args.start else first
        end = pd.Timestamp(args.end) if args.end else last
    wanted = _selected_keys(args.select, ASSETS)
    instance = dg.DagsterInstance.get()
    settings = get_settings()
    print(f"beta_pipeline: source={settings.source} home={settings.home}")
    print(f"beta_pipeline: materializing {len(wanted)} assets for {start.date()}..{end.date()}")
    log_level = "DEBUG" if args.verbose else "INFO"
    ok = True
    for job_name in JOB_ORDER:
        job = defs.resolve_job_def(job_name)
        keys = [k for k in job.asset_layer.executable_asset_keys if k in wanted]
        if not keys:
            continue
        rng = _partition_range(job_name, start, end)
        if rng is None:
            print(f"[{job_name}] no partitions inside the range; skipped")
            continue
        tags = {}
        if rng:
            tags = {ASSET_PARTITION_RANGE_START_TAG: rng[0], ASSET_PARTITION_RANGE_END_TAG: rng[1]}
        names = ", ".join(k.to_user_string() for k in keys)
        span = f" partitions {rng[0]}..{rng[1]}" if rng else ""
        print(f"[{job_name}] {names}{span}", flush=True)
        t0 = time.perf_counter()
        result = job.execute_in_process(
            instance=instance,
            asset_selection=keys,
            tags=tags,
            raise_on_error=False,
            run_config={"loggers": {"console": {"config": {"log_level": log_level}}}},
        )
        took = time.perf_counter() - t0
        status = "ok" if result.success else "FAILED"
        print(f"[{job_name}] {status} in {took:,.1f}s (run {result.run_id})", flush=True)
        ok = ok and result.success
        if not result.success:
            break
    _print_summary(settings.warehouse_path)
    return 0 if ok else 1


def _print_summary(path: Path) -> None:
    from beta_pipeline.lib.warehouse import open_warehouse

    if not path.exists():
        return
    with open_warehouse(path, read_only=True) as conn:
        tables = conn.execute(
            "SELECT schema_name || '.' || table_name AS table_name, estimated_size AS rows "
            "FROM duckdb_tables() ORDER BY 1"
        ).df()
        failed = conn.execute(
            "SELECT asset, partition, check_name, severity, details FROM quality.check_results "
            "WHERE NOT passed ORDER BY severity, asset, check_name"
        ).df()
    print("\nwarehouse tables:")
    print(tables.to_string(index=False))
    if len(failed):
        print(f"\nquality checks not passed ({len(failed)}):")
        print(failed.to_string(index=False, max_colwidth=90))


def cmd_query(args: argparse.Namespace) -> int:
    from beta_pipeline.lib.warehouse import open_warehouse

    sql = args.sql
    if sql.startswith("@"):
        sql = Path(sql[1:]).read_text()
    import duckdb

    try:
        with open_warehouse(get_settings().warehouse_path, read_only=True) as conn:
            frame = conn.execute(sql).df()
    except (duckdb.Error, FileNotFoundError) as err:
        print(f"beta-pipeline query: {err}", file=sys.stderr)
        return 1
    if args.format == "csv":
        frame.to_csv(sys.stdout, index=False)
    elif args.format == "markdown":
        print(frame.head(args.max_rows).to_markdown(index=False))
    else:
        with pd.option_context("display.width", 200, "display.max_columns", 50):
            print(frame.head(args.max_rows).to_string(index=False))
        if len(frame) > args.max_rows:
            print(f"... {len(frame) - args.max_rows:,} more rows ({len(frame):,} in all)")
    return 0


def cmd_ui(args: argparse.Namespace) -> int:
    ensure_home()
    dagster = shutil.which("dagster") or str(Path(sys.executable).with_name("dagster"))
    workspace = Path.cwd() / "workspace.yaml"
    target = ["-w", str(workspace)] if workspace.exists() else ["-m", "beta_pipeline.definitions"]
    cmd = [dagster, "dev", *target, "-h", "127.0.0.1", "-p", str(args.port)]
    print("starting:", " ".join(cmd), flush=True)
    return subprocess.call(cmd)


def cmd_info(_: argparse.Namespace) -> int:
    settings = get_settings()
    print(f"home:      {settings.home}")
    print(f"warehouse: {settings.warehouse_path}")
    print(f"source:    {settings.source}  config={settings.csv_config}")
    from beta_pipeline.defs.resources import default_resources

    coverage = default_resources()["prices"].get().describe()
    for name, value in coverage.items():
        print(f"{name}: {value}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse_args(argv)
    handlers = {"run": cmd_run, "query": cmd_query, "ui": cmd_ui, "info": cmd_info}
    return handlers[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
