"""``beta-pipeline``: run the pipeline through Dagster, query the warehouse, open the UI."""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path

import pandas as pd

from beta_pipeline.defs.recovery import (
    _run_label,
    _short,
    cli_run_tags,
    free_run_slots,
    owner_gone,
    pool_info,
    recover_dead_runs,
)
from beta_pipeline.settings import ensure_home, get_settings, use_range_run_events

#: NeuralBeta models trained by the main command (each ~2.5 CPU-minutes at the quick
#: budget); ``--nb-models all`` trains the four architectures of Table 1.
DEFAULT_NB_MODELS = "gru_nbi"
#: The main command leaves out the constant scenario (a null check: nothing beats OLS
#: there) to stay near 15 minutes on 2 cores; ``--nb-experiments all`` adds it.
DEFAULT_NB_EXPERIMENTS = "stepwise,cyclical,univariate,multivariate"
#: The main command's walk-forward: every 5th cut-off year (the newest always), 600 updates
#: each (~1 CPU-minute on the embedded data); yearly retraining is ``--nb-walkforward-every 1``.
DEFAULT_WALKFORWARD_EVERY = 5
DEFAULT_WALKFORWARD_STEPS = 600


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
    run.add_argument(
        "--nb-market-study",
        choices=["walkforward", "table1", "both"],
        default="walkforward",
        help="how the market experiments train: walkforward (one model per cut-off year, "
        "betas out of sample for every year after the first; default), table1 (one 8/2/4 "
        "split, Table 1's market rows) or both",
    )
    run.add_argument(
        "--nb-walkforward-every",
        type=int,
        default=DEFAULT_WALKFORWARD_EVERY,
        help="retrain every N-th cut-off year, counted back from the newest (1: yearly; "
        f"default {DEFAULT_WALKFORWARD_EVERY}); a date uses the newest earlier cut-off",
    )
    run.add_argument(
        "--nb-walkforward-steps",
        type=int,
        default=DEFAULT_WALKFORWARD_STEPS,
        help="updates per walk-forward training (0: the budget's own; default "
        f"{DEFAULT_WALKFORWARD_STEPS})",
    )

    query = sub.add_parser(
        "query",
        help="read-only SQL on the warehouse (SELECT, EXPLAIN, read PRAGMAs; no file access)",
    )
    query.add_argument("sql", help="SQL text, or @file.sql")
    query.add_argument("--format", choices=["table", "csv", "markdown"], default="table")
    query.add_argument("--max-rows", type=int, default=50)
    query.add_argument(
        "--output",
        metavar="FILE",
        help="write every row to FILE.csv or FILE.parquet (written by Python, not DuckDB)",
    )
    query.add_argument(
        "--lock-timeout",
        type=float,
        metavar="S",
        help="seconds to wait while a run writes (default $BETA_PIPELINE_LOCK_TIMEOUT_S or 120)",
    )

    ui = sub.add_parser("ui", help="start the Dagster UI (dagster dev) on 127.0.0.1")
    ui.add_argument("--port", type=int, default=3000)

    sub.add_parser("info", help="show settings, source binding and source coverage")

    runs = sub.add_parser("runs", help="list recent runs of the instance, newest first")
    runs.add_argument("--limit", type=int, default=20, help="how many runs (default 20)")
    runs.add_argument(
        "--status",
        help="only runs in these statuses, comma-separated: FAILED, SUCCESS, STARTED, "
        "CANCELED, QUEUED, ... (Dagster's names or FAILED/SUCCEEDED/RUNNING)",
    )
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

    from beta_pipeline.defs.jobs import OPT_IN_GROUPS

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


def _partition_range(partitions_def, start: pd.Timestamp, end: pd.Timestamp):
    """First and last keys of a job's weekday or month partitions inside [start, end]
    (``()`` for an unpartitioned job, None when no partition falls inside)."""
    from beta_pipeline.defs.partitions import monthly_partitions, session_partitions

    if partitions_def is session_partitions:
        days = pd.bdate_range(start, end)
        if days.empty:
            return None
        keys = session_partitions.get_partition_keys()
        first, last = days[0].strftime("%Y-%m-%d"), days[-1].strftime("%Y-%m-%d")
    elif partitions_def is monthly_partitions:
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
    equity = coverage["prices"].get("equity") or {}
    if not equity.get("first_date") or not equity.get("last_date"):
        raise SystemExit(
            f"the {coverage.get('kind', 'configured')!r} source has no equity dates: "
            "pass --start and --end"
        )
    # yfinance: through the last complete trading session (its describe() says so)
    return pd.Timestamp(equity["first_date"]), pd.Timestamp(equity["last_date"])


def cmd_run(args: argparse.Namespace) -> int:
    """Materialize the selection; SIGINT/SIGTERM stop it cleanly (exit code 128 + signal)."""
    with _stop_signals() as got:
        try:
            return _run_jobs(args)
        except RunInterrupted as stop:
            return 128 + stop.signum
        except KeyboardInterrupt:
            signum = got.get("signum", signal.SIGINT)
            print(f"beta-pipeline run: stopped by {signal.Signals(signum).name}", file=sys.stderr)
            return 128 + signum


def _run_jobs(args: argparse.Namespace) -> int:
    _apply_source_overrides(args)
    use_range_run_events()
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

    from beta_pipeline.defs.jobs import JOBS, opt_in_keys

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
    if not _binding_allows(settings, wanted, ASSETS):
        return 2
    recover_dead_runs(instance)
    span = f"{start.date()}..{end.date()}" if start is not None else "their whole history"
    print(f"beta_pipeline: source={settings.source} home={settings.home}")
    print(f"beta_pipeline: materializing {len(wanted)} assets for {span}")
    log_level = "DEBUG" if args.verbose else "INFO"
    ok = True
    for decl in JOBS:  # in their declared order (defs/jobs.py)
        job_name = decl.name
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
            if decl.training_config_op:
                nb_config = _nb_config(args, walkforward=decl.cli_keys == "walkforward")
                run_config["ops"] = {decl.training_config_op: {"config": nb_config}}
            if not part_keys:
                print(f"[{job_name}] no partition selected; skipped")
                continue
            for pk in part_keys:
                ok = _execute(job, job_name, names, instance, keys, {}, run_config, pk) and ok
            continue  # a failed model or scenario does not stop the unrelated jobs after it
        if decl.needs_market_model and not _has_market_model(args):
            print(f"[{job_name}] no market NeuralBeta model selected; skipped")
            continue
        if decl.cli_keys == "walkforward" and args.nb_market_study == "table1":
            print(f"[{job_name}] --nb-market-study table1: skipped")
            continue
        rng = _partition_range(job.partitions_def, start, end)
        if rng is None:
            print(f"[{job_name}] no partitions inside the range; skipped")
            continue
        tags = {}
        if rng:
            tags = {ASSET_PARTITION_RANGE_START_TAG: rng[0], ASSET_PARTITION_RANGE_END_TAG: rng[1]}
        span = f" partitions {rng[0]}..{rng[1]}" if rng else ""
        ok = _execute(job, job_name, names + span, instance, keys, tags, run_config) and ok
        if not ok and decl.stops_later_jobs:
            break  # the later jobs read its tables
    _print_summary(settings.warehouse_path)
    return 0 if ok else 1


def _execute(job, job_name, label, instance, keys, tags, run_config, partition_key=None) -> bool:
    """One in-process run (recorded in the instance); prints its status and wall time."""
    where = f" [{partition_key}]" if partition_key else ""
    print(f"[{job_name}]{where} {label}", flush=True)
    t0 = time.perf_counter()
    run_id = str(uuid.uuid4())
    with RunWatch(instance, run_id, job_name) as watch:
        try:
            result = job.execute_in_process(
                instance=instance,
                asset_selection=keys,
                tags={**tags, **cli_run_tags()},
                partition_key=partition_key,
                raise_on_error=False,
                run_config=run_config,
                run_id=run_id,
            )
        except KeyboardInterrupt:  # the watch's kick, or a signal between Dagster's handlers
            result = None
    # (leaving the watch read any signal it had not seen yet)
    if watch.interrupted is not None or result is None:
        signum = watch.interrupted or signal.SIGINT
        end_interrupted_run(instance, run_id, job_name, signum)
        raise RunInterrupted(signum)
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
    from beta_pipeline.lib.neuralbeta.experiments import EXPERIMENTS, MARKET_EXPERIMENTS

    chosen = _choice(args.nb_experiments, EXPERIMENTS, "NeuralBeta experiment")
    return any(e in MARKET_EXPERIMENTS for e in chosen)


def _static_keys(job_name: str, partitions_def, args: argparse.Namespace) -> list[str]:
    """Partition keys of a static/multi-partitioned job (its declaration's ``cli_keys``),
    narrowed by --nb-experiments and --nb-models (synthetic scenarios: the chosen synthetic
    experiments plus kalman_step)."""
    import dagster as dg

    from beta_pipeline.defs.jobs import job_decl
    from beta_pipeline.lib.neuralbeta.experiments import EXPERIMENTS, MARKET_EXPERIMENTS, MODELS

    experiments = _choice(args.nb_experiments, EXPERIMENTS, "NeuralBeta experiment")
    cli_keys = job_decl(job_name).cli_keys
    if cli_keys == "walkforward":
        return _walkforward_keys(experiments, args) if args.nb_market_study != "table1" else []
    if cli_keys == "experiment_models":
        if args.nb_market_study == "walkforward":
            experiments = [e for e in experiments if e not in MARKET_EXPERIMENTS]
        models = _choice(args.nb_models, MODELS, "NeuralBeta model")
        return [
            str(dg.MultiPartitionKey({"experiment": e, "model": m}))
            for e in experiments
            for m in models
        ]
    keys = partitions_def.get_partition_keys()
    return [k for k in keys if k in experiments or k == "kalman_step"]


def _walkforward_keys(experiments: list[str], args: argparse.Namespace) -> list[str]:
    """Cut-off year x market model keys the warehouse's data supports (every
    ``--nb-walkforward-every``-th year, newest first kept), oldest cut-off first."""
    import dagster as dg

    from beta_pipeline.lib.neuralbeta import store, walkforward
    from beta_pipeline.lib.neuralbeta.experiments import MARKET_EXPERIMENTS, MODELS
    from beta_pipeline.lib.warehouse import open_warehouse

    market = [e for e in experiments if e in MARKET_EXPERIMENTS]
    models = _choice(args.nb_models, MODELS, "NeuralBeta model")
    path = get_settings().warehouse_path
    if not market or not path.exists():
        return []
    with open_warehouse(path, read_only=True) as conn:
        returns, factors = store.read_market(conn)
    keys = []
    for experiment in market:
        years = walkforward.available_cutoffs(
            returns, factors, experiment, window=64, every=args.nb_walkforward_every
        )
        if not years:
            print(f"walk-forward {experiment}: the data has no complete year to train on")
        keys += [
            (year, str(dg.MultiPartitionKey({"cutoff": str(year), "model": spec})))
            for year in years
            for spec in (walkforward.spec_key(experiment, m) for m in models)
        ]
    return [k for _, k in sorted(keys)]


def _nb_config(args: argparse.Namespace, walkforward: bool = False) -> dict:
    config = {"budget": args.nb_budget, "threads": args.nb_threads}
    if walkforward and args.nb_walkforward_steps > 0:
        config["max_steps"] = args.nb_walkforward_steps
    return {**config, "progress": sys.stderr.isatty()}


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


def _read_binding(path: Path):
    """The warehouse's source binding (None before the first ingestion); raises duckdb.Error
    when another process holds the file."""
    from beta_pipeline.lib.warehouse import open_warehouse, read_source_binding

    if not path.exists():
        return None
    with open_warehouse(path, read_only=True, timeout_s=2) as conn:  # busy: say so, fast
        return read_source_binding(conn)


def _binding_text(path: Path) -> str:
    import duckdb

    try:
        bound = _read_binding(path)
    except duckdb.Error as err:
        return f"(warehouse busy: {str(err).splitlines()[0]})"
    return bound.describe() if bound else "none yet (the first ingestion binds the warehouse)"


def _binding_allows(settings, wanted: set, all_assets) -> bool:
    """Before any run: refuse an ingestion from another source than the warehouse's (the
    ingestion assets check it too; this only fails early, with the same message)."""
    import duckdb

    from beta_pipeline.defs.resources import source_binding
    from beta_pipeline.lib.warehouse import binding_conflict

    ingests = any(
        a.group_names_by_key.get(k) == "ingestion"
        for a in all_assets
        for k in a.keys
        if k in wanted
    )
    if not ingests:
        return True
    try:
        bound = _read_binding(settings.warehouse_path)
    except duckdb.Error:
        return True  # busy: the assets check it under the writer lock
    if bound is None:
        return True
    mine = source_binding(settings.source, settings.csv_config)
    if bound.same_as(mine):
        return True
    message = binding_conflict(bound, mine, str(settings.warehouse_path))
    print(f"beta-pipeline run: {message}", file=sys.stderr)
    return False


def cmd_query(args: argparse.Namespace) -> int:
    """Run read-only SQL: statements allow-listed by DuckDB's own parser, then run on a
    read-only connection without file/network access and with its settings locked."""
    import duckdb

    from beta_pipeline.lib.warehouse import open_sandboxed, read_only_statements

    sql = args.sql
    output = Path(args.output) if getattr(args, "output", None) else None
    if output is not None and output.suffix.lower() not in (".csv", ".parquet"):
        print("beta-pipeline query: --output must end in .csv or .parquet", file=sys.stderr)
        return 1
    try:
        if sql.startswith("@"):
            sql = Path(sql[1:]).read_text()
        statements = read_only_statements(sql)
        path = get_settings().warehouse_path
        with open_sandboxed(path, timeout_s=getattr(args, "lock_timeout", None)) as conn:
            frame = pd.DataFrame()
            for statement in statements:
                frame = conn.execute(statement).df()
        if output is not None:
            output.parent.mkdir(parents=True, exist_ok=True)
            if output.suffix.lower() == ".csv":
                frame.to_csv(output, index=False)
            else:
                frame.to_parquet(output, index=False)
            print(f"wrote {len(frame):,} rows to {output}")
            return 0
    except (duckdb.Error, OSError, ValueError) as err:  # ReadOnlyQueryError is a ValueError
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
    print(f"binding:   {_binding_text(settings.warehouse_path)}")
    from beta_pipeline.defs.resources import default_resources

    coverage = default_resources()["prices"].get().describe()
    for name, value in coverage.items():
        print(f"{name}: {value}")
    return 0


# --- operation: run ownership, recovery of killed runs, pool waits, stopping -------------------

#: A step waiting this long for the writer pool is reported, then every WAIT_NOTICE_EVERY_S.
WAIT_NOTICE_AFTER_S = 3.0
WAIT_NOTICE_EVERY_S = 15.0
#: Seconds between two looks at the writer pool while a run executes.
POOL_POLL_S = 2.0
#: After SIGINT/SIGTERM, seconds the run gets to stop by itself before the CLI ends it.
STOP_GRACE_S = 10.0

class RunInterrupted(Exception):
    """``beta-pipeline run`` was stopped by SIGINT or SIGTERM (the run is ended, slot freed)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


class RunWatch:
    """Watches one in-process run from a small thread: reports (and unblocks) waits for the
    writer pool, and turns SIGINT/SIGTERM into a prompt, clean stop.

    Dagster's in-process executor defers SIGINT/SIGTERM to its next step boundary, and a step
    that waits for a pool slot sleeps without ever looking: Ctrl-C was swallowed. The watch
    sees every signal through ``signal.set_wakeup_fd``, marks the run CANCELING, kicks a
    waiting main thread with SIGUSR1 (whose handler raises KeyboardInterrupt there), and ends
    the run itself (canceled, slots freed) if it has not stopped after STOP_GRACE_S.
    """

    def __init__(self, instance, run_id: str, job_name: str) -> None:
        self.instance = instance
        self.run_id = run_id
        self.job_name = job_name
        self.interrupted: int | None = None
        self._signal_at = 0.0
        self._kicked = False
        self._done = threading.Event()
        self._thread: threading.Thread | None = None
        self._signals = threading.current_thread() is threading.main_thread()
        self._rsock: socket.socket | None = None
        self._wsock: socket.socket | None = None
        self._old_wakeup = -1
        self._old_usr1 = None
        self._waiting_since: float | None = None
        self._last_notice = 0.0
        self._next_poll = 0.0

    # -- lifecycle (main thread) ----------------------------------------------------------
    def __enter__(self) -> RunWatch:
        if self._signals:
            self._rsock, self._wsock = socket.socketpair()
            self._rsock.setblocking(False)
            self._wsock.setblocking(False)
            self._old_wakeup = signal.set_wakeup_fd(self._wsock.fileno(), warn_on_full_buffer=False)
            self._old_usr1 = signal.signal(signal.SIGUSR1, _raise_keyboard_interrupt)
        self._thread = threading.Thread(target=self._loop, name="beta-pipeline-watch", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self._signals:
            signal.set_wakeup_fd(self._old_wakeup)
            signal.signal(signal.SIGUSR1, self._old_usr1)
            # a signal that arrived in the last instant, after the thread stopped looking
            self._read_signals()
            for sock in (self._rsock, self._wsock):
                if sock is not None:
                    sock.close()

    # -- the thread -----------------------------------------------------------------------
    def _loop(self) -> None:
        while not self._done.is_set():
            if self._rsock is not None:
                select.select([self._rsock], [], [], 0.5)
                self._read_signals()
            else:
                self._done.wait(0.5)
            if self._done.is_set():
                break
            try:
                if self.interrupted is not None:
                    self._drive_stop()
                elif time.monotonic() >= self._next_poll:
                    self._next_poll = time.monotonic() + POOL_POLL_S
                    self._check_pool()
            except Exception as err:  # never let a watch problem break the run
                print(f"[{self.job_name}] (run watch: {err!r})", file=sys.stderr, flush=True)

    def _read_signals(self) -> None:
        if self._rsock is None:
            return
        try:
            data = self._rsock.recv(256)
        except (BlockingIOError, OSError):
            return
        for signum in data:
            if signum in (signal.SIGINT, signal.SIGTERM):
                self._on_signal(signum)

    def _on_signal(self, signum: int) -> None:
        name = signal.Signals(signum).name
        if self.interrupted is not None:  # a second Ctrl-C: stop now
            print(f"[{self.job_name}] {name} again: stopping now", file=sys.stderr, flush=True)
            self._hard_stop()
            return
        self.interrupted = signum
        self._signal_at = time.monotonic()
        print(
            f"[{self.job_name}] {name} received: canceling run {_short(self.run_id)} "
            f"(again to stop at once)",
            file=sys.stderr,
            flush=True,
        )
        run = self.instance.get_run_by_id(self.run_id)
        if run is not None and not run.is_finished:
            self.instance.report_run_canceling(
                run, message=f"beta-pipeline received {name}: canceling the run"
            )

    def _drive_stop(self) -> None:
        waited = time.monotonic() - self._signal_at
        if not self._kicked and waited >= 1.0 and self._waiting_for_pool():
            # the main thread sleeps in Dagster's wait for a pool slot: wake it with an error
            self._kicked = True
            signal.pthread_kill(threading.main_thread().ident, signal.SIGUSR1)
        if waited >= STOP_GRACE_S:
            print(
                f"[{self.job_name}] run {_short(self.run_id)} did not stop within "
                f"{STOP_GRACE_S:.0f}s; ending it",
                file=sys.stderr,
                flush=True,
            )
            self._hard_stop()

    def _hard_stop(self) -> None:
        signum = self.interrupted or signal.SIGINT
        end_interrupted_run(self.instance, self.run_id, self.job_name, signum)
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(128 + signum)  # the main thread may sit in C code (DuckDB): its open
        # transaction is rolled back by DuckDB, as after a crash

    def _waiting_for_pool(self) -> bool:
        info = pool_info(self.instance)
        return info is not None and any(
            p.run_id == self.run_id and p.assigned_timestamp is None for p in info.pending_steps
        )

    def _check_pool(self) -> None:
        info = pool_info(self.instance)
        if info is None:
            return
        mine = [
            p
            for p in info.pending_steps
            if p.run_id == self.run_id and p.assigned_timestamp is None
        ]
        if not mine:
            self._waiting_since = None
            return
        now = time.monotonic()
        if self._waiting_since is None:
            self._waiting_since = now
        holders = []
        for slot in info.claimed_slots:
            if slot.run_id == self.run_id:
                continue
            run = self.instance.get_run_by_id(slot.run_id)
            if run is None or run.is_finished or owner_gone(run):
                # a killed beta-pipeline run (or an ended one) holds it: free it now
                recover_dead_runs(self.instance, frozenset({self.run_id}))
                return
            holders.append(f"run {_run_label(run)} step {slot.step_key}")
        if now - self._waiting_since < WAIT_NOTICE_AFTER_S:
            return
        if self._last_notice and now - self._last_notice < WAIT_NOTICE_EVERY_S:
            return
        self._last_notice = now
        held = "; ".join(holders) or f"{info.limit} slot(s), none claimed yet"
        print(
            f"[{self.job_name}] {', '.join(p.step_key for p in mine)} waits "
            f"{now - self._waiting_since:,.0f}s for the {info.concurrency_key} slot, held by "
            f"{held}",
            flush=True,
        )


def _raise_keyboard_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def end_interrupted_run(instance, run_id: str, job_name: str, signum: int) -> None:
    """After SIGINT/SIGTERM: the run ends CANCELED (unless it already ended) and its pool slots
    are freed."""
    name = signal.Signals(signum).name
    run = instance.get_run_by_id(run_id)
    if run is not None and not run.is_finished:
        instance.report_run_canceled(run, message=f"beta-pipeline stopped by {name}")
        run = instance.get_run_by_id(run_id)
    free_run_slots(instance, run_id)
    status = run.status.value if run is not None else "not started"
    print(
        f"[{job_name}] run {_short(run_id)} stopped by {name}: {status}, pool slots freed",
        file=sys.stderr,
        flush=True,
    )


@contextlib.contextmanager
def _stop_signals() -> Iterator[dict[str, int]]:
    """SIGTERM (and SIGINT) raise KeyboardInterrupt outside Dagster's runs, recording which."""
    got: dict[str, int] = {}
    if threading.current_thread() is not threading.main_thread():
        yield got
        return

    def handler(signum: int, frame: object) -> None:
        got["signum"] = signum
        raise KeyboardInterrupt

    old = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield got
    finally:
        for s, h in old.items():
            signal.signal(s, h)


# --- beta-pipeline runs -------------------------------------------------------------------------

#: Friendly names accepted by ``runs --status`` for Dagster's run statuses.
STATUS_ALIASES = {
    "FAILED": "FAILURE",
    "FAIL": "FAILURE",
    "SUCCEEDED": "SUCCESS",
    "OK": "SUCCESS",
    "RUNNING": "STARTED",
    "CANCELLED": "CANCELED",
}


def _statuses(text: str | None) -> list:
    import dagster as dg

    if not text:
        return []
    out = []
    for token in (t.strip().upper() for t in text.split(",") if t.strip()):
        name = STATUS_ALIASES.get(token, token)
        try:
            out.append(dg.DagsterRunStatus(name))
        except ValueError:
            known = ", ".join([s.value for s in dg.DagsterRunStatus] + list(STATUS_ALIASES))
            raise SystemExit(f"unknown run status {token!r}; use one of {known}") from None
    return out


def _when(ts: float | None) -> str:
    if ts is None:
        return "-"
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    minutes, sec = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{sec:02d}" if hours else f"{minutes}:{sec:02d}"


def _partitions(tags: dict[str, str]) -> str:
    from dagster._core.storage.tags import (
        ASSET_PARTITION_RANGE_END_TAG,
        ASSET_PARTITION_RANGE_START_TAG,
    )

    if ASSET_PARTITION_RANGE_START_TAG in tags:
        first = tags[ASSET_PARTITION_RANGE_START_TAG]
        last = tags.get(ASSET_PARTITION_RANGE_END_TAG, first)
        return first if first == last else f"{first}..{last}"
    return tags.get("dagster/partition", "-")


def first_error(instance, run_id: str) -> str:
    """The first line of a failed run's first step error (else of its failure message)."""
    import dagster as dg

    kinds = {dg.DagsterEventType.STEP_FAILURE, dg.DagsterEventType.RUN_FAILURE}
    run_message = ""
    for entry in instance.all_logs(run_id, of_type=kinds):
        event = entry.dagster_event
        if event is None:
            continue
        if event.event_type == dg.DagsterEventType.STEP_FAILURE:
            error = event.step_failure_data.error
            text = error.message if error is not None else (event.message or "")
            text = text.strip().removeprefix("dagster._core.definitions.events.Failure: ")
            return f"{event.step_key}: {text.splitlines()[0] if text else 'failed'}"
        run_message = run_message or (event.message or entry.user_message or "")
    return run_message.strip().splitlines()[0] if run_message.strip() else ""


def cmd_runs(args: argparse.Namespace) -> int:
    """Recent runs of the instance, newest first."""
    ensure_home()
    import dagster as dg

    instance = dg.DagsterInstance.get()
    statuses = _statuses(args.status)
    records = instance.get_run_records(
        filters=dg.RunsFilter(statuses=statuses) if statuses else None, limit=args.limit
    )
    rows = []
    for record in records:
        run = record.dagster_run
        status = run.status.value
        if not run.is_finished and owner_gone(run):
            status += " (process gone)"
        start, end = record.start_time, record.end_time
        took = (end or time.time()) - start if start is not None else None
        rows.append(
            {
                "run": _short(run.run_id),
                "job": run.job_name,
                "status": status,
                "partitions": _partitions(dict(run.tags)),
                "start (UTC)": _when(start),
                "end (UTC)": _when(end),
                "duration": _duration(took),
                "error": first_error(instance, run.run_id) if status == "FAILURE" else "",
            }
        )
    if not rows:
        what = f" with status {args.status}" if args.status else ""
        print(f"no runs{what} in {instance.root_directory}")
        return 0
    frame = pd.DataFrame(rows)
    if not frame["error"].any():
        frame = frame.drop(columns=["error"])
    with pd.option_context("display.width", 250, "display.max_colwidth", 120):
        print(frame.to_string(index=False))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse_args(argv)
    handlers = {
        "run": cmd_run,
        "query": cmd_query,
        "ui": cmd_ui,
        "info": cmd_info,
        "runs": cmd_runs,
    }
    return handlers[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
