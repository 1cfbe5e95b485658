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

JOB_ORDER = (
    "static_job",
    "daily_job",
    "synthetic_scenarios_job",
    "synthetic_baselines_job",
    "neuralbeta_model_job",
    "neuralbeta_daily_job",
    "monthly_job",
    "analytics_job",
    "crypto_job",  # opt-in group: only with --select group:crypto (or its asset names)
)
#: NeuralBeta models trained by the main command (each ~2.5 CPU-minutes at the quick
#: budget); ``--nb-models all`` trains the four architectures of Table 1.
DEFAULT_NB_MODELS = "gru_nbi"
#: The main command leaves out the constant scenario (a null check: nothing beats OLS
#: there) to stay near 15 minutes on 2 cores; ``--nb-experiments all`` adds it.
DEFAULT_NB_EXPERIMENTS = "stepwise,cyclical,univariate,multivariate"


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
    run.add_argument(
        "--nb-experiments",
        default=DEFAULT_NB_EXPERIMENTS,
        help="NeuralBeta experiments to train: all or a comma list of constant, stepwise, "
        f"cyclical, univariate, multivariate (default {DEFAULT_NB_EXPERIMENTS})",
    )
    run.add_argument(
        "--nb-models",
        default=DEFAULT_NB_MODELS,
        help=f"NeuralBeta models: all or a comma list of gru_nb, gru_nbi, attn_nb, attn_nbi "
        f"(default {DEFAULT_NB_MODELS})",
    )
    run.add_argument(
        "--nb-budget", default="quick", help="quick (CPU, default), paper (GPU) or tiny"
    )
    run.add_argument("--nb-threads", type=int, default=2, help="torch threads per training")

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
        # a file becomes an absolute path; a shipped config's name ("shared_data") stays one
        path = Path(args.config)
        os.environ["BETA_PIPELINE_CSV_CONFIG"] = (
            str(path.resolve()) if path.is_file() else args.config
        )


def _selected_keys(select: str, all_assets) -> set:
    import dagster as dg

    from beta_pipeline.defs.schedules import OPT_IN_GROUPS

    if select.strip() in ("", "*"):  # every asset but the opt-in groups (crypto)
        return {
            k
            for a in all_assets
            for k in a.keys
            if a.group_names_by_key.get(k) not in OPT_IN_GROUPS
        }
    keys: set = set()
    known = {k.to_user_string(): a for a in all_assets for k in a.keys}
    for token in (t.strip() for t in select.split(",") if t.strip()):
        if token.startswith("group:"):
            group = token.split(":", 1)[1]
            found = {k for a in all_assets for k, g in a.group_names_by_key.items() if g == group}
            if not found:
                raise SystemExit(f"no asset in group {group!r}")
            keys |= found
        elif token in known:
            asset = known[token]
            # a multi-asset that cannot be split (neuralbeta_betas + nbi_weights) runs whole
            keys |= {dg.AssetKey.from_user_string(token)} if asset.can_subset else set(asset.keys)
        else:
            raise SystemExit(f"unknown asset {token!r}; known: {', '.join(sorted(known))}")
    return keys


def _partition_range(job_name: str, start: pd.Timestamp, end: pd.Timestamp):
    """First and last partition keys of a job's partitions inside [start, end]."""
    from beta_pipeline.defs.partitions import monthly_partitions, weekday_partitions

    if job_name in ("daily_job", "neuralbeta_daily_job"):
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

    from beta_pipeline.defs.schedules import opt_in_keys

    wanted = _selected_keys(args.select, ASSETS)
    opt_in = {k for keys in opt_in_keys(ASSETS).values() for k in keys}
    if args.start and args.end:
        start, end = pd.Timestamp(args.start), pd.Timestamp(args.end)
    elif wanted <= opt_in:  # unpartitioned opt-in groups (crypto): no date range needed
        start = end = None
    else:
        first, last = _default_range()
        start = pd.Timestamp(args.start) if args.start else first
        end = pd.Timestamp(args.end) if args.end else last
    instance = dg.DagsterInstance.get()
    settings = get_settings()
    span = f"{start.date()}..{end.date()}" if start is not None else "their whole history"
    print(f"beta_pipeline: source={settings.source} home={settings.home}")
    print(f"beta_pipeline: materializing {len(wanted)} assets for {span}")
    log_level = "DEBUG" if args.verbose else "INFO"
    ok = True
    for job_name in JOB_ORDER:
        job = defs.resolve_job_def(job_name)
        keys = [k for k in job.asset_layer.executable_asset_keys if k in wanted]
        if not keys:
            continue
        names = ", ".join(k.to_user_string() for k in keys)
        run_config: dict = {"loggers": {"console": {"config": {"log_level": log_level}}}}
        if job.partitions_def is not None and not isinstance(
            job.partitions_def, dg.TimeWindowPartitionsDefinition
        ):
            # static / experiment x model partitions: one run per key, in order
            part_keys = _static_keys(job_name, job.partitions_def, args)
            if job_name == "neuralbeta_model_job":
                run_config["ops"] = {"neuralbeta_model": {"config": _nb_config(args)}}
            for pk in part_keys:
                ok = _execute(job, job_name, names, instance, keys, {}, run_config, pk) and ok
            continue  # a failed model or scenario does not stop the unrelated jobs after it
        if job_name == "neuralbeta_daily_job" and not _has_market_model(args):
            print(f"[{job_name}] no market NeuralBeta model selected; skipped")
            continue
        rng = _partition_range(job_name, start, end)
        if rng is None:
            print(f"[{job_name}] no partitions inside the range; skipped")
            continue
        tags = {}
        if rng:
            tags = {ASSET_PARTITION_RANGE_START_TAG: rng[0], ASSET_PARTITION_RANGE_END_TAG: rng[1]}
        span = f" partitions {rng[0]}..{rng[1]}" if rng else ""
        ok = _execute(job, job_name, names + span, instance, keys, tags, run_config) and ok
        if not ok and job_name in ("static_job", "daily_job"):
            break  # everything after needs prices and returns
    _print_summary(settings.warehouse_path)
    return 0 if ok else 1


def _execute(job, job_name, label, instance, keys, tags, run_config, partition_key=None) -> bool:
    """One in-process run (recorded in the instance); prints its status and wall time."""
    where = f" [{partition_key}]" if partition_key else ""
    print(f"[{job_name}]{where} {label}", flush=True)
    t0 = time.perf_counter()
    result = job.execute_in_process(
        instance=instance,
        asset_selection=keys,
        tags=tags,
        partition_key=partition_key,
        raise_on_error=False,
        run_config=run_config,
    )
    took = time.perf_counter() - t0
    status = "ok" if result.success else "FAILED"
    print(f"[{job_name}]{where} {status} in {took:,.1f}s (run {result.run_id})", flush=True)
    for event in result.get_step_failure_events():  # the reason, once, after Dagster's log
        message = event.event_specific_data.error.message.strip()
        message = message.removeprefix("dagster._core.definitions.events.Failure: ")
        print(f"[{job_name}] {event.step_key} failed: {message}", file=sys.stderr, flush=True)
    return result.success


def _choice(value: str, allowed: Sequence[str], what: str) -> list[str]:
    if value.strip() in ("", "all", "*"):
        return list(allowed)
    chosen = [v.strip() for v in value.split(",") if v.strip()]
    unknown = [v for v in chosen if v not in allowed]
    if unknown:
        raise SystemExit(f"unknown {what} {unknown}; choose from {', '.join(allowed)}")
    return chosen


def _has_market_model(args: argparse.Namespace) -> bool:
    from beta_pipeline.lib.neuralbeta_eval import EXPERIMENTS, MARKET_EXPERIMENTS

    chosen = _choice(args.nb_experiments, EXPERIMENTS, "NeuralBeta experiment")
    return any(e in MARKET_EXPERIMENTS for e in chosen)


def _static_keys(job_name: str, partitions_def, args: argparse.Namespace) -> list[str]:
    """Partition keys of a static/multi-partitioned job, narrowed by --nb-experiments and
    --nb-models (synthetic scenarios: the chosen synthetic experiments plus kalman_step)."""
    import dagster as dg

    from beta_pipeline.lib.neuralbeta_eval import EXPERIMENTS, MODELS

    experiments = _choice(args.nb_experiments, EXPERIMENTS, "NeuralBeta experiment")
    if job_name == "neuralbeta_model_job":
        models = _choice(args.nb_models, MODELS, "NeuralBeta model")
        return [
            str(dg.MultiPartitionKey({"experiment": e, "model": m}))
            for e in experiments
            for m in models
        ]
    keys = partitions_def.get_partition_keys()
    return [k for k in keys if k in experiments or k == "kalman_step"]


def _nb_config(args: argparse.Namespace) -> dict:
    return {"budget": args.nb_budget, "threads": args.nb_threads, "progress": sys.stderr.isatty()}


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
