"""One scheduled weekday after a backfill, on the Kaggle S&P 500 file (issue 12).

Run from the repository root (reads ``../shared/data`` through the csv source config
``shared_data``; ``BETA_PIPELINE_DATA_DIR`` elsewhere)::

    python benchmarks/bench_incremental_day.py                    # day 2018-02-07
    python benchmarks/bench_incremental_day.py --day 2017-06-01 --days 3

Steps, each a fresh ``beta-pipeline run`` process (so imports are counted, as for the
scheduled CLI day) in a temporary BETA_PIPELINE_HOME:

1. backfill: ``raw_prices, raw_market, daily_returns, daily_betas`` from the file's first
   date through the session before ``--day`` (timed, as the reference);
2. day: the same selection ``--start D --end D`` for ``--days`` consecutive sessions from
   ``--day`` (each timed: the whole process's wall and CPU time and peak RSS, and per step
   from Dagster's ``STEP_SUCCESS`` events, ``--verbose``);
3. the import time of ``beta_pipeline.definitions`` (a bare process) and whether torch /
   lightning / matplotlib were loaded by it.

Reports the day's wall time, ``daily_betas``' step time, and the ratios day/backfill, in
``benchmarks/results/incremental_day.md`` and ``.json``. Targets (issue 12): daily_betas
<= 2 s, whole CLI day <= 12 s at 505 stocks.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd
from harness import ProcessRun, gib, machine, md_table, run_process, write_results

ROOT = Path(__file__).resolve().parents[1]
SELECT = "raw_prices,raw_market,daily_returns,daily_betas"
READ_RE = re.compile(r"daily_betas: read ([\d,]+) return rows from (\S+) \(([^)]*)\)")
STEP_RE = re.compile(r'Finished execution of step "([\w.]+)" in ([\d.]+)(ms|s)\.')
TARGET_BETAS_S, TARGET_DAY_S = 2.0, 12.0
#: the csv source config ``shared_data`` (the repository's copy)
CONFIG = ROOT / "beta_pipeline" / "configs" / "shared_data.yaml"
FIRST = "2013-02-08"  # the Kaggle file's first date


def _cli(args: list[str], env: dict[str, str]) -> tuple[ProcessRun, dict[str, float]]:
    """One ``beta-pipeline run`` process (wall, CPU, peak RSS, output) and its step times."""
    proc = run_process(
        [sys.executable, "-m", "beta_pipeline.cli", "run", "--select", SELECT,
         "--source", "csv", "--config", str(CONFIG), "--verbose", *args],
        env=env, cwd=ROOT,
    )
    out = proc.output
    steps: dict[str, float] = {}
    for name, value, unit in STEP_RE.findall(out):
        steps[name] = steps.get(name, 0.0) + float(value) / (1000.0 if unit == "ms" else 1.0)
    # a failed blocking check (e.g. betas_within_bounds on FF factor betas of the Kaggle
    # file) fails the run after the assets were written: timed all the same, and reported
    if proc.returncode != 0 and not all(a in steps for a in SELECT.split(",")):
        sys.stderr.write(out[-6000:])
        raise SystemExit(f"beta-pipeline run {' '.join(args)} failed ({proc.returncode})")
    if proc.returncode != 0:
        failed = sorted(set(re.findall(r"(\w+): (\w+)\n", out.split("blocking asset check")[-1])))
        print(f"  (run failed on blocking checks after writing the assets: {failed})", flush=True)
    return proc, steps


def _import_probe(env: dict[str, str]) -> dict[str, Any]:
    code = (
        "import json, sys, time; t = time.perf_counter(); import beta_pipeline.definitions; "
        "print(json.dumps({'import_s': time.perf_counter() - t, **{m: m in sys.modules for m "
        "in ('torch', 'lightning', 'matplotlib')}}))"
    )
    proc = run_process([sys.executable, "-c", code], env=env, cwd=ROOT)
    if proc.returncode:
        sys.stderr.write(proc.output[-4000:])
        raise SystemExit("import beta_pipeline.definitions failed")
    probe = json.loads(proc.output.strip().splitlines()[-1])
    probe["process_max_rss_gib"] = gib(proc.max_rss_kib)
    return probe


def _record(proc: ProcessRun, steps: dict[str, float]) -> dict[str, Any]:
    return {"wall_s": proc.wall, "cpu_s": proc.cpu, "max_rss_gib": gib(proc.max_rss_kib),
            "steps": steps}


def _sessions(day: str, n: int) -> list[str]:
    from beta_pipeline.lib import calendar

    days = calendar.sessions(day, pd.Timestamp(day) + pd.Timedelta(days=7 * n + 7))
    return [d.strftime("%Y-%m-%d") for d in days[:n]]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--day", default="2018-02-07", help="first incremental session")
    ap.add_argument("--days", type=int, default=1, help="consecutive sessions to run")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "incremental_day"))
    opts = ap.parse_args()
    sys.path.insert(0, str(ROOT))
    days = _sessions(opts.day, opts.days)
    before = (pd.Timestamp(days[0]) - pd.Timedelta(days=1)).strftime("%Y-%m-%d")
    info = machine("dagster", "duckdb", "numpy", "pandas")
    with tempfile.TemporaryDirectory(prefix="bench_incr_") as tmp:
        env = {**os.environ, "BETA_PIPELINE_HOME": tmp, "DAGSTER_HOME": f"{tmp}/dagster_home"}
        data = os.environ.get("BETA_PIPELINE_DATA_DIR") or str(ROOT.parent / "shared" / "data")
        env["BETA_PIPELINE_DATA_DIR"] = str(Path(data).resolve())
        env.pop("BETA_PIPELINE_SOURCE", None)
        env.pop("BETA_PIPELINE_CSV_CONFIG", None)
        probe = _import_probe(env)
        print(f"import beta_pipeline.definitions: {probe}", flush=True)
        print(f"backfill {FIRST}..{before} ...", flush=True)
        back = _record(*_cli(["--start", FIRST, "--end", before], env))
        print(f"  {back['wall_s']:.1f} s, peak RSS {back['max_rss_gib']:.2f} GiB; "
              f"steps {back['steps']}", flush=True)
        runs = []
        for day in days:
            proc, steps = _cli(["--start", day, "--end", day], env)
            read = READ_RE.findall(proc.output)
            rows, read_from, mode = read[-1] if read else ("?", "?", "?")
            runs.append({"day": day, **_record(proc, steps), "return_rows_read": rows,
                         "read_from": read_from, "read_mode": mode})
            print(f"day {day}: {proc.wall:.1f} s, peak RSS {gib(proc.max_rss_kib):.2f} GiB; "
                  f"steps {steps}; read {rows} return rows from {read_from} ({mode})",
                  flush=True)
    last = runs[-1]
    betas_day = last["steps"].get("daily_betas", float("nan"))
    betas_back = back["steps"].get("daily_betas", float("nan"))
    result = {
        "day": days, "backfill": {"start": FIRST, "end": before, **back},
        "days": runs, "import": probe, "machine": info,
        "ratio_day_over_backfill": {"wall": last["wall_s"] / back["wall_s"],
                                    "daily_betas": betas_day / betas_back},
        "targets": {"daily_betas_s": TARGET_BETAS_S, "day_s": TARGET_DAY_S},
    }
    assets = ("raw_prices", "raw_market", "daily_returns", "daily_betas")
    table = []
    for label, rec in [(f"backfill {FIRST}..{before}", back)] + [
        (f"day {r['day']} (read {r['return_rows_read']} rows, {r['read_mode']})", r)
        for r in runs
    ]:
        table.append([label, f"{rec['wall_s']:.1f}", f"{rec['cpu_s']:.1f}",
                      f"{rec['max_rss_gib']:.2f}",
                      *(f"{rec['steps'].get(s, float('nan')):.2f}" for s in assets)])
    lines = [
        "# One incremental day after a backfill (Kaggle S&P 500, csv source `shared_data`)",
        "",
        *md_table(["run", "wall s", "CPU s", "peak RSS GiB", *(f"{a} s" for a in assets)],
                  table, "lrrrrrrr"),
        "",
        f"Ratio day/backfill: wall {result['ratio_day_over_backfill']['wall']:.3f}, "
        f"daily_betas {result['ratio_day_over_backfill']['daily_betas']:.3f}. "
        f"Targets: daily_betas <= {TARGET_BETAS_S} s, day <= {TARGET_DAY_S} s. "
        f"`import beta_pipeline.definitions`: {probe['import_s']:.2f} s (torch loaded: "
        f"{probe['torch']}, lightning: {probe['lightning']}, matplotlib: {probe['matplotlib']}). "
        f"{info['cores']} cores, load average {info['load'][0]:.1f} at the start.",
        "",
    ]
    text = "\n".join(lines)
    for path in write_results(Path(opts.out), text, result):
        print(f"written: {path}")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
