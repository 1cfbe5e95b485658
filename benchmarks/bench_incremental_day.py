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
   ``--day`` (each timed: whole process wall time, and per step from Dagster's
   ``STEP_SUCCESS`` events, ``--verbose``);
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
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
SELECT = "raw_prices,raw_market,daily_returns,daily_betas"
READ_RE = re.compile(r"daily_betas: read ([\d,]+) return rows from (\S+) \(([^)]*)\)")
STEP_RE = re.compile(r'Finished execution of step "([\w.]+)" in ([\d.]+)(ms|s)\.')
TARGET_BETAS_S, TARGET_DAY_S = 2.0, 12.0
#: the csv source config ``shared_data`` (the repository's copy)
CONFIG = ROOT / "beta_pipeline" / "configs" / "shared_data.yaml"
FIRST = "2013-02-08"  # the Kaggle file's first date


def _cli(args: list[str], env: dict[str, str]) -> tuple[float, dict[str, float], str]:
    """Wall seconds of one ``beta-pipeline run`` process, its step times, its output."""
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "beta_pipeline.cli", "run", "--select", SELECT,
         "--source", "csv", "--config", str(CONFIG), "--verbose", *args],
        cwd=ROOT, env=env, capture_output=True, text=True,
    )
    wall = time.perf_counter() - t0
    out = proc.stdout + proc.stderr
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
    return wall, steps, out


def _import_probe(env: dict[str, str]) -> dict[str, object]:
    code = (
        "import json, sys, time; t = time.perf_counter(); import beta_pipeline.definitions; "
        "print(json.dumps({'import_s': time.perf_counter() - t, **{m: m in sys.modules for m "
        "in ('torch', 'lightning', 'matplotlib')}}))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, check=True,
                         capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


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
    with tempfile.TemporaryDirectory(prefix="bench_incr_") as tmp:
        env = {**os.environ, "BETA_PIPELINE_HOME": tmp, "DAGSTER_HOME": f"{tmp}/dagster_home"}
        data = os.environ.get("BETA_PIPELINE_DATA_DIR") or str(ROOT.parent / "shared" / "data")
        env["BETA_PIPELINE_DATA_DIR"] = str(Path(data).resolve())
        env.pop("BETA_PIPELINE_SOURCE", None)
        env.pop("BETA_PIPELINE_CSV_CONFIG", None)
        probe = _import_probe(env)
        print(f"import beta_pipeline.definitions: {probe}", flush=True)
        print(f"backfill {FIRST}..{before} ...", flush=True)
        back_wall, back_steps, _ = _cli(["--start", FIRST, "--end", before], env)
        print(f"  {back_wall:.1f} s; steps {back_steps}", flush=True)
        runs = []
        for day in days:
            wall, steps, out = _cli(["--start", day, "--end", day], env)
            read = READ_RE.findall(out)
            rows, read_from, mode = read[-1] if read else ("?", "?", "?")
            runs.append({"day": day, "wall_s": wall, "steps": steps, "return_rows_read": rows,
                         "read_from": read_from, "read_mode": mode})
            print(f"day {day}: {wall:.1f} s; steps {steps}; read {rows} return rows from "
                  f"{read_from} ({mode})", flush=True)
    last = runs[-1]
    betas_day = last["steps"].get("daily_betas", float("nan"))
    betas_back = back_steps.get("daily_betas", float("nan"))
    result = {
        "day": days, "backfill": {"start": FIRST, "end": before, "wall_s": back_wall,
                                  "steps": back_steps},
        "days": runs, "import": probe,
        "ratio_day_over_backfill": {"wall": last["wall_s"] / back_wall,
                                    "daily_betas": betas_day / betas_back},
        "targets": {"daily_betas_s": TARGET_BETAS_S, "day_s": TARGET_DAY_S},
    }
    out = Path(opts.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(result, indent=2, default=str))
    lines = [
        "# One incremental day after a backfill (Kaggle S&P 500, csv source `shared_data`)",
        "",
        "| run | wall s | raw_prices s | raw_market s | daily_returns s | daily_betas s |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for label, wall, steps in [(f"backfill {FIRST}..{before}", back_wall, back_steps)] + [
        (f"day {r['day']} (read {r['return_rows_read']} rows, {r['read_mode']})", r["wall_s"],
         r["steps"]) for r in runs
    ]:
        cells = [f"{steps.get(s, float('nan')):.2f}"
                 for s in ("raw_prices", "raw_market", "daily_returns", "daily_betas")]
        lines.append(f"| {label} | {wall:.1f} | " + " | ".join(cells) + " |")
    lines += [
        "",
        f"Ratio day/backfill: wall {result['ratio_day_over_backfill']['wall']:.3f}, "
        f"daily_betas {result['ratio_day_over_backfill']['daily_betas']:.3f}. "
        f"Targets: daily_betas <= {TARGET_BETAS_S} s, day <= {TARGET_DAY_S} s. "
        f"`import beta_pipeline.definitions`: {probe['import_s']:.2f} s (torch loaded: "
        f"{probe['torch']}, lightning: {probe['lightning']}, matplotlib: {probe['matplotlib']}).",
        "",
    ]
    out.with_suffix(".md").write_text("\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
