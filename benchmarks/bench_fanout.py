"""Walk-forward training fan-out: the same partitions serially in one process, then on 1 and
2 Celery workers (issue 14). Run from the repository root::

    python benchmarks/bench_fanout.py                          # 2 cut-offs x 2 models
    python benchmarks/bench_fanout.py --workers 1,2,4 --max-steps 600 --cutoffs 2014,2015,2016

It builds one small warehouse (embedded source, ``--first``..``--last``: prices, market
series, daily returns), copies it into a fresh ``BETA_PIPELINE_HOME`` per mode and trains the
partitions of ``neuralbeta_walkforward_job`` (``--cutoffs`` x ``--specs``, budget ``--budget``
with ``--max-steps`` updates, one torch thread each):

* ``serial``: one fresh interpreter runs every partition in-process, one after the other
  (:func:`serial_child`): what a single machine does without an executor (its wall time
  includes its imports, once);
* ``celery xN``: a throwaway PostgreSQL (the instance) and Redis (broker and result
  backend), N ``dagster-celery`` workers (one task at a time each, started and ready before
  the clock starts), then every partition launched at once as its own ``dagster job
  execute`` process with ``BETA_PIPELINE_EXECUTOR=celery``: the wall time from the launch to
  the last run's end (each run process's imports, the queue, the training on the workers,
  the events written to PostgreSQL).

Reported: wall seconds per mode, the speed-up over 1 worker and over serial, the training
steps' own durations (their ``STEP_SUCCESS`` events), the machine's load and effective cores
(:func:`harness.effective_cores`) before the modes. On a machine shared with other jobs the
numbers move with the load: compare modes of one run, not runs of different days. Needs the
Debian packages ``postgresql`` and ``redis-server`` (``scripts/system_packages.sh``).
Results go to ``benchmarks/results/fanout.md`` and ``.json``.

Measured once (defaults, 2026-12, 2 cores shared with other sessions, 1.1 effective cores):
serial 97.9 s, 1 worker 106.4 s, 2 workers 84.5 s (1.26x over 1 worker, 1.16x over serial);
docs/distributed.md has the table.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import harness  # noqa: E402

JOB = "neuralbeta_walkforward_job"
OP = "neuralbeta_walkforward_model"
MODE_TAG = "beta_pipeline/bench_mode"


def _training(budget: str, max_steps: int) -> dict[str, Any]:
    return {"budget": budget, "threads": 1, "max_steps": max_steps, "accelerator": "cpu"}


def _partitions(cutoffs: list[str], specs: list[str]) -> list[str]:
    import dagster as dg

    return [str(dg.MultiPartitionKey({"cutoff": c, "model": m})) for c in cutoffs for m in specs]


def build_warehouse(folder: Path, first: str, last: str) -> Path:
    """Prices, market series and daily returns of the embedded source in ``folder``."""
    import dagster as dg

    from beta_pipeline_tests.support.defs import build, run
    from beta_pipeline_tests.support.storage import instance_at

    os.environ.pop("BETA_PIPELINE_INSTANCE_STORAGE", None)
    os.environ["DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS"] = "1"
    path = folder / "warehouse.duckdb"
    keys = [dg.AssetKey(a) for a in ("raw_prices", "raw_market", "daily_returns")]
    instance = instance_at(folder / "dagster_home")
    try:
        result = run(build(path, folder), "daily_job", first, last, keys=keys, instance=instance)
    finally:
        instance.dispose()
    if not result.success:
        raise SystemExit("building the warehouse failed")
    return path


def _home(root: Path, warehouse: Path) -> Path:
    (root / "dagster_home").mkdir(parents=True)
    shutil.copyfile(warehouse, root / "warehouse.duckdb")
    return root


def serial_child(home: str, partitions: list[str], training: dict[str, Any]) -> dict[str, Any]:
    """In a fresh interpreter: every partition in-process, one after the other."""
    t0 = time.perf_counter()
    import dagster as dg

    from beta_pipeline_tests.support.defs import QUIET, build

    root = Path(home)
    job = build(root / "warehouse.duckdb", root).resolve_job_def(JOB)
    instance = dg.DagsterInstance.ephemeral()
    imports = time.perf_counter() - t0
    steps = []
    for key in partitions:
        result = job.execute_in_process(
            instance=instance,
            partition_key=key,
            raise_on_error=False,
            run_config={**QUIET, "ops": {OP: {"config": training}}},
        )
        if not result.success:
            raise SystemExit(f"{key} failed")
        steps += [
            e.event_specific_data.duration_ms / 1000
            for e in result.all_events
            if e.event_type_value == "STEP_SUCCESS"
        ]
    return {"imports_s": imports, "step_s": steps}


def celery_mode(
    n_workers: int,
    home: Path,
    pg_url: str,
    redis_url: str,
    partitions: list[str],
    training: dict[str, Any],
) -> dict[str, Any]:
    """Train the partitions on ``n_workers`` Celery workers; the wall time of the runs."""
    import dagster as dg
    import yaml

    from beta_pipeline.defs.neuralbeta.walkforward import walkforward_partitions
    from beta_pipeline_tests.support.celery_workers import celery_workers, execute_partitions
    from beta_pipeline_tests.support.storage import instance_at

    mode = f"celery x{n_workers}"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BETA_PIPELINE_", "DAGSTER_"))}
    env |= {
        "BETA_PIPELINE_HOME": str(home),
        "DAGSTER_HOME": str(home / "dagster_home"),
        "BETA_PIPELINE_INSTANCE_STORAGE": "postgres",
        "BETA_PIPELINE_POSTGRES_URL": pg_url,
        "BETA_PIPELINE_EXECUTOR": "celery",
        "BETA_PIPELINE_CELERY_BROKER": redis_url,
        "BETA_PIPELINE_AUTOMATION": "off",
    }
    os.environ["BETA_PIPELINE_INSTANCE_STORAGE"] = "postgres"
    os.environ["BETA_PIPELINE_POSTGRES_URL"] = pg_url
    instance = instance_at(home / "dagster_home")
    config = home / "run_config.yaml"
    config.write_text(yaml.safe_dump({"ops": {OP: {"config": training}}}))
    tags = [
        {**walkforward_partitions.get_tags_for_partition_key(k), MODE_TAG: mode} for k in partitions
    ]
    try:
        with celery_workers(n_workers, broker=redis_url, env=env, folder=home / "workers"):
            t0 = time.perf_counter()
            launched = execute_partitions(
                JOB, tags, env=env, run_config=config, folder=home / "runs", timeout=3600
            )
            wall = time.perf_counter() - t0
        failed = [r.partition for r in launched if r.returncode != 0]
        if failed:
            raise SystemExit(f"{mode}: runs failed: {failed} (logs in {home / 'runs'})")
        steps, nodes = [], set()
        for record in instance.get_run_records(dg.RunsFilter(tags={MODE_TAG: mode})):
            for entry in instance.all_logs(record.dagster_run.run_id):
                event = entry.dagster_event
                if event is None:
                    continue
                if event.event_type_value == "STEP_SUCCESS":
                    steps.append(event.event_specific_data.duration_ms / 1000)
                if event.event_type_value == "ENGINE_EVENT" and "Celery worker" in (
                    event.event_specific_data.metadata or {}
                ):
                    nodes.add(str(event.event_specific_data.metadata["Celery worker"].value))
    finally:
        instance.dispose()
    return {"wall_s": wall, "step_s": steps, "workers_used": sorted(nodes)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cutoffs", default="2015,2016")
    parser.add_argument("--specs", default="univariate.gru_nbi,univariate.gru_nb")
    parser.add_argument("--budget", default="tiny")
    parser.add_argument("--max-steps", type=int, default=300)
    parser.add_argument("--workers", default="1,2", help="worker counts, e.g. 1,2,4")
    parser.add_argument("--no-serial", action="store_true", help="skip the in-process mode")
    parser.add_argument("--first", default="2014-01-02")
    parser.add_argument("--last", default="2017-01-31")
    parser.add_argument("--out", default="fanout")
    args = parser.parse_args()

    from beta_pipeline_tests.support import pg_server
    from beta_pipeline_tests.support.redis_server import find_redis_server, redis_server

    if find_redis_server() is None or pg_server.find_bin_dir() is None:
        raise SystemExit("needs redis-server and postgresql (bash scripts/system_packages.sh)")
    partitions = _partitions(args.cutoffs.split(","), args.specs.split(","))
    training = _training(args.budget, args.max_steps)
    counts = [int(n) for n in args.workers.split(",")]
    info = harness.machine("dagster", "dagster-celery", "celery", "torch")
    info["effective_cores"] = harness.effective_cores()
    print(f"machine: {info}", flush=True)
    results: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="bench_fanout_") as tmp:
        tmp_path = Path(tmp)
        t0 = time.perf_counter()
        warehouse = build_warehouse(tmp_path / "source", args.first, args.last)
        print(f"warehouse built in {time.perf_counter() - t0:.1f}s", flush=True)
        if not args.no_serial:
            out = harness.in_child(
                __file__,
                "serial_child",
                home=str(_home(tmp_path / "serial", warehouse)),
                partitions=partitions,
                training=training,
            )
            if out.get("failed"):
                raise SystemExit(f"serial mode failed: {out}")
            results["serial"] = {**out, "wall_s": out["child_wall_s"], "workers_used": []}
            print(f"serial: {results['serial']['wall_s']:.1f}s", flush=True)
        with pg_server.postgres_server() as pg_url, redis_server() as redis_url:
            for n in counts:
                mode = f"celery x{n}"
                home = _home(tmp_path / f"celery{n}", warehouse)
                results[mode] = celery_mode(n, home, pg_url, redis_url, partitions, training)
                print(f"{mode}: {results[mode]['wall_s']:.1f}s", flush=True)
    info["load_after"] = [round(x, 2) for x in os.getloadavg()]
    base = results.get(f"celery x{counts[0]}", {}).get("wall_s")
    serial = results.get("serial", {}).get("wall_s")
    rows = []
    for mode, res in results.items():
        steps = res["step_s"]
        rows.append(
            [
                mode,
                f"{res['wall_s']:.1f}",
                f"{base / res['wall_s']:.2f}" if base and mode != "serial" else "",
                f"{serial / res['wall_s']:.2f}" if serial else "",
                f"{sum(steps):.1f}",
                f"{min(steps):.1f}-{max(steps):.1f}" if steps else "",
                ", ".join(res["workers_used"]),
            ]
        )
    header = [
        "mode",
        "wall s",
        f"speed-up vs {counts[0]} worker(s)",
        "speed-up vs serial",
        "sum of step s",
        "step s",
        "workers used",
    ]
    lines = [
        "# Walk-forward training fan-out (benchmarks/bench_fanout.py)",
        "",
        f"{len(partitions)} partitions ({', '.join(partitions)}), budget {args.budget}, "
        f"{args.max_steps} updates, 1 torch thread each; data {args.first}..{args.last}.",
        "",
        *harness.md_table(header, rows, "lrrrrrl"),
        "",
        f"Machine: {info}. A shared machine: compare the modes of one run.",
    ]
    markdown = "\n".join(lines)
    print(markdown)
    harness.write_results(
        args.out,
        markdown,
        {"args": vars(args), "partitions": partitions, "machine": info, "results": results},
    )


if __name__ == "__main__":
    main()
