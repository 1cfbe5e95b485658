"""One scheduled incremental day on a synthetic CRSP-like panel: flat in history length?

Issue 12, part "synthetic 3,000 x 8,300 panel". Run from the repository root::

    python benchmarks/bench_incremental_synthetic.py                  # 3,000 stocks, 10 and 33 y
    python benchmarks/bench_incremental_synthetic.py --stocks 200 --years 3,6   # ~4 minutes
    python benchmarks/bench_incremental_synthetic.py --code head --profile      # as measured

For each history length (``--years``, default 10 and 33, ending at ``--end``) it builds a
warehouse in a temporary ``BETA_PIPELINE_HOME`` and times the last sessions as scheduled
days, each a fresh ``beta-pipeline run`` process (``python -m beta_pipeline.cli run
--select daily_returns,daily_betas --start D --end D --verbose``), so that interpreter start,
imports, Dagster set-up, the two assets and their quality checks are all counted.

The warehouse (written with the project's own DDL: ``warehouse.open_warehouse`` creates
every table of ``warehouse.TABLES`` with its primary keys; rows go in by DuckDB bulk
inserts of Arrow record batches, in (date, symbol) order as the pipeline writes them):

* ``raw.prices``: N stocks (default 3,000) on every XNYS session of the span, through the
  last timed session. Returns follow five factors with a time-varying market beta per stock
  (its mean ~ N(1, 0.35) plus an AR(1) drift, persistence 0.996), constant SMB/HML/RMW/CMA
  loadings, fat-tailed (t5) idiosyncratic noise of 1-4 % a day; 25 % of the stocks list late
  (uniformly over the span), 10 % delist, 0.3 % of stock-days have no price (halts);
* ``raw.market``: daily ``mkt_rf`` (volatility regimes), ``smb``, ``hml``, ``rmw``, ``cma``
  and ``rf`` (no ``mkt_level``, so ``daily_returns`` takes the factor file's market return,
  as with the Fama-French csv source: CAPM, FF3 and FF5 are all estimated);
* ``returns.daily``: every return before the first timed session, computed from those
  prices exactly as ``lib.returns.daily_returns`` does (previous observed price, excess over
  ``rf``, ``mkt_excess = mkt_rf``); the timed days compute theirs with the asset itself;
* ``betas.daily``: the ``--betas-sessions`` (default 504, two years: the span the asset's
  example plot reads) sessions before the first timed one hold placeholder rows (hashed
  values, not estimates) with the asset's (model, estimator, factor) set, so that the day's
  date-windowed DELETE, sanity check and plot query run against a table of realistic size
  for that span (older beta history is not synthesised: at 33 years it would be ~1.8
  billion rows; every read and delete of the day on ``betas.daily`` is date-windowed).

Why not the ingestion assets: ``raw_prices``/``raw_market`` read a source (embedded, csv
files, yfinance), whose cost is the source's, not the history's (they are timed on the
Kaggle file by ``bench_incremental_day.py``). Selecting only ``daily_returns`` and
``daily_betas`` touches no source, so the warehouse stays unbound (``meta.source_binding``
empty, ``raw.prices.source = 'synthetic'``); an ingestion from a real source into it would be
refused by the binding check, as it should.

Steps (sessions at the end of the span, all after the written returns):

1. ``prime`` (cold day): the first timed session. Nothing is stored yet, so ``daily_betas``
   reads the whole history, tunes the EW half-life and fits the Kalman variances on the
   first ``tuning_sessions`` (504), filters from the first day and stores
   ``betas.estimator_state``;
2. ``day`` (``--days``, default 3, consecutive sessions): the steady state. ``daily_betas``
   must read only the trailing window and resume the Kalman state (its log line
   ``daily_betas: read N return rows from D (trailing)`` says which);
3. ``day (cProfile)`` (``--profile``): one more steady day under ``python -m cProfile``;
   its top functions go into the report (its wall time includes the profiler's overhead);
4. ``listing`` (default on, ``--no-listing``): the last session, on which one new stock
   has its first return (its first price was the session before): the symbol set changes,
   which the library treats as a stale Kalman state (full-history read, Kalman MLE refit on
   the stored training span and a filter from the first day).

Reading the numbers: a steady day's windowed estimators read their window plus the part of
the 256-row tile (``regression.CHUNK_ROWS``, aligned to the history's first row) the day
falls in, so their cost varies up to ~2x with the history length modulo 256 sessions, not
with its length; the panel's rows ("panel days") are reported to show it.

Code under test (``--code``): ``tree`` (default) runs the CLI from a copy of the working
tree's ``beta_pipeline/`` and ``dbt_like_sql/`` taken once at the start, so that every
history length and step runs the same code even while files change; ``head`` from the
committed code (``git archive HEAD``, read-only), e.g. while the tree is half-edited;
``live`` from the working tree itself. The commit and the uncommitted changes under
``beta_pipeline/`` are recorded.

Reported per history length: the whole CLI process's wall time, Dagster's step times
(``Finished execution of step`` lines: ``daily_returns``, ``daily_betas`` and the check
steps), the return rows ``daily_betas`` read and from where, and the CLI process's peak RSS (its
``VmHWM``, the kernel's high-water mark, read from ``/proc`` every 50 ms while it runs; the
sampled ``VmRSS`` says in which step the peak falls);
then the ratios longest/shortest history (flatness) and day/prime. Targets (issue 12): a
day <= 30 s at 3,000 stocks x 33 years, flat in history length, peak RSS of the day
<= 1.5 GB. Results go to ``benchmarks/results/incremental_synthetic.md`` and ``.json``.

Measured (``--code head --profile``, commit 5c73167, 2 cores shared with other sessions at a
load of 6-9): a steady day 26-31 s wall (16-19 s CPU) at 33 years, 32-37 s (16-21 s CPU) at
10 years (a later tile phase: 462 panel rows against 371), peak RSS 0.9-1.0 GiB; the cold
day 183 s / 9.4 GiB at 33 years, the listing day 128 s / 9.5 GiB. The build takes 2-3.5
minutes and 2-3.5 GB of disk per history; the whole default run ~18 minutes.
"""

from __future__ import annotations

import argparse
import json
import os
import pstats
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
# beta_pipeline is imported inside the functions, after main() put the code under test
# (--code) first on sys.path, so the generator uses the same tables and calendar as the CLI
sys.path.insert(0, str(ROOT))

SELECT = "daily_returns,daily_betas"
READ_RE = re.compile(r"daily_betas: read ([\d,]+) return rows from (.+?) \(([^)]*)\)")
MODEL_RE = re.compile(r"daily_betas: (\w+) on \d+ symbols x (\d+) days in ([\d.]+)s")
RUN_RE = re.compile(r"\[daily_job\] (?:ok|FAILED) in ([\d,.]+)s")
STEP_RE = re.compile(r'Finished execution of step "([\w.]+)" in ([\dhms.]+)\.')
#: console lines worth echoing while a step runs (the rest stays in the step's log file)
ECHO_RE = re.compile(
    r"daily_(?:betas|returns): |Finished execution of step|\[daily_job\]|Error|error:"
)
FACTORS = ("mkt_rf", "smb", "hml", "rmw", "cma")
TARGET_DAY_S, TARGET_RSS_GB = 30.0, 1.5
BLOCK = 256  # sessions generated and inserted per block


# ----------------------------------------------------------------------------- data


def _say(msg: str) -> None:
    print(msg, flush=True)


def _arrow_table(columns: dict[str, Any]) -> Any:
    import pyarrow as pa

    return pa.table(columns)


def _insert(conn: Any, table: str, data: Any) -> None:
    cols = ", ".join(data.column_names)
    conn.register("_synthetic", data)
    try:
        conn.execute(f"INSERT INTO {table} ({cols}) SELECT {cols} FROM _synthetic")
    finally:
        conn.unregister("_synthetic")


def build_warehouse(
    db: Path,
    n: int,
    sessions: pd.DatetimeIndex,
    first_timed: int,
    listing: bool,
    betas_sessions: int,
    seed: int,
) -> dict[str, Any]:
    """Write the synthetic panel into ``db`` (see the module docstring); returns row counts
    and timings. ``first_timed``: the row of ``sessions`` from which returns are left to
    the timed runs; ``listing``: one extra stock whose first price is the last session but
    one (so its first return is on the last session)."""
    import pyarrow as pa

    from beta_pipeline.lib import warehouse

    t0 = time.perf_counter()
    rng = np.random.default_rng(seed)
    t_len = len(sessions)
    m = n + 1 if listing else n
    symbols = pa.array([f"S{i:05d}" for i in range(m)], pa.string())
    days = sessions.to_numpy().astype("datetime64[D]").astype(np.int32)

    # factors: market with volatility regimes (AR(1) log-vol), the others iid; rf slow
    logvol = np.zeros(t_len)
    shocks = rng.normal(0.0, 0.08, t_len)
    for i in range(1, t_len):
        logvol[i] = 0.985 * logvol[i - 1] + shocks[i]
    f = rng.standard_normal((t_len, len(FACTORS))) * np.array([0.0, 0.005, 0.005, 0.004, 0.004])
    f[:, 0] = 0.0003 + 0.01 * np.exp(logvol) * rng.standard_normal(t_len)
    f = np.round(f, 6)
    cycle = np.arange(t_len) / (252 * 7)
    rf = np.round(np.maximum(0.00012 * (1 + 0.9 * np.sin(2 * np.pi * cycle)), 0.0), 7)

    # stocks: beta mean and drift, other loadings, noise scale, listing and delisting rows
    beta_mean = rng.normal(1.0, 0.35, m)
    load = rng.normal(0.0, 0.3, (m, len(FACTORS) - 1))
    alpha = rng.normal(0.0, 0.0002, m)
    sigma = np.clip(rng.lognormal(np.log(0.018), 0.35, m), 0.008, 0.045)
    last_row = t_len - 1
    # late listings and delistings stay clear of the timed sessions (the listing step adds
    # its own stock), so the steady days see the prime day's symbols
    quiet = max(first_timed - 5, 2)
    list_row = np.where(rng.random(m) < 0.25, rng.integers(1, quiet, m), 0)
    delist = rng.random(m) < 0.10
    span = np.maximum(quiet - list_row - 300, 1)
    end_row = np.where(delist, np.minimum(list_row + 300 + rng.integers(0, span), quiet), t_len)
    if listing:
        list_row[-1], end_row[-1] = last_row - 1, t_len
    dev = rng.normal(0.0, 0.15, m)
    last_px = np.full(m, np.nan)
    last_day = np.zeros(m, dtype=np.int32)
    logp = np.log(rng.uniform(10.0, 120.0, m))

    counts = {"raw.prices": 0, "returns.daily": 0, "raw.market": 0, "betas.daily": 0}
    timing: dict[str, float] = {}
    with warehouse.open_warehouse(db) as conn:
        conn.execute("SET preserve_insertion_order = true")
        series = [*FACTORS, "rf"]
        values = np.column_stack([f, rf])
        market = _arrow_table(
            {
                "date": pa.array(np.tile(days, len(series)), pa.int32()).cast(pa.date32()),
                "series": pa.array(np.repeat(series, t_len), pa.string()),
                "value": pa.array(values.T.reshape(-1), pa.float64()),
            }
        )
        _insert(conn, "raw.market", market)
        counts["raw.market"] = market.num_rows
        t_gen = t_ins = 0.0
        for b0 in range(0, t_len, BLOCK):
            g0 = time.perf_counter()
            b1 = min(b0 + BLOCK, t_len)
            rows = np.arange(b0, b1)
            b = b1 - b0
            innov = rng.normal(0.0, 0.013, (b, m))
            beta = np.empty((b, m))
            for i in range(b):
                dev = 0.996 * dev + innov[i]
                beta[i] = beta_mean + dev
            eps = rng.standard_t(5, (b, m)) * (sigma * np.sqrt(3 / 5))
            ret = alpha + beta * f[b0:b1, :1] + f[b0:b1, 1:] @ load.T + rf[b0:b1, None] + eps
            np.clip(ret, -0.9, 2.0, out=ret)
            px = np.exp(logp + np.cumsum(np.log1p(ret), axis=0))
            logp = np.log(px[-1])
            live = (rows[:, None] >= list_row) & (rows[:, None] < end_row)
            present = live & (rng.random((b, m)) >= 0.003)
            # a stock's first listed day always has its price (its listing)
            present |= rows[:, None] == list_row
            r_obs = np.full((b, m), np.nan)
            prev_day = np.zeros((b, m), dtype=np.int32)
            for i in range(b):
                p = present[i]
                has = p & np.isfinite(last_px)
                r_obs[i, has] = px[i, has] / last_px[has] - 1.0
                prev_day[i] = last_day
                last_px[p] = px[i, p]
                last_day[p] = days[b0 + i]
            r_i, s_i = np.nonzero(present)  # row-major: (date, symbol) order
            close = px[r_i, s_i]
            noise = rng.standard_normal((3, len(close)))
            open_ = close * (1 + 0.004 * noise[0])
            high = np.maximum(open_, close) * (1 + np.abs(0.004 * noise[1]))
            low = np.minimum(open_, close) * (1 - np.abs(0.004 * noise[2]))
            day_col = pa.array(days[b0:b1][r_i], pa.int32()).cast(pa.date32())
            sym_col = pa.DictionaryArray.from_arrays(pa.array(s_i.astype(np.int32)), symbols)
            prices = _arrow_table(
                {
                    "date": day_col,
                    "symbol": sym_col,
                    "open": open_,
                    "high": high,
                    "low": low,
                    "close": close,
                    "adj_close": close,
                    "volume": np.round(rng.lognormal(12.0, 1.0, len(close))),
                    "source": pa.DictionaryArray.from_arrays(
                        pa.array(np.zeros(len(close), np.int8)), pa.array(["synthetic"])
                    ),
                }
            )
            keep = np.isfinite(r_obs[r_i, s_i]) & (rows[r_i] < first_timed)
            r_ret = r_obs[r_i, s_i][keep]
            r_rf = rf[b0:b1][r_i[keep]]
            returns = _arrow_table(
                {
                    "date": day_col.filter(pa.array(keep)),
                    "symbol": sym_col.filter(pa.array(keep)),
                    "prev_date": pa.array(prev_day[r_i, s_i][keep], pa.int32()).cast(pa.date32()),
                    "ret": r_ret,
                    "log_ret": np.log1p(r_ret),
                    "ret_excess": r_ret - r_rf,
                    "mkt_excess": f[b0:b1, 0][r_i[keep]],
                }
            )
            del beta, eps, ret, px, r_obs, prev_day, noise
            g1 = time.perf_counter()
            _insert(conn, "raw.prices", prices)
            if returns.num_rows:
                _insert(conn, "returns.daily", returns)
            t_gen += g1 - g0
            t_ins += time.perf_counter() - g1
            counts["raw.prices"] += prices.num_rows
            counts["returns.daily"] += returns.num_rows
            if b1 % (BLOCK * 8) < BLOCK or b1 == t_len:
                _say(
                    f"  generated {b1:,}/{t_len:,} sessions ({sessions[b1 - 1].date()}): "
                    f"{counts['raw.prices']:,} prices, {counts['returns.daily']:,} returns "
                    f"[{time.perf_counter() - t0:.0f} s]"
                )
        timing.update(generate_s=t_gen, insert_s=t_ins)
        if betas_sessions > 0:
            b0 = time.perf_counter()
            lo = sessions[max(first_timed - betas_sessions, 0)]
            counts["betas.daily"] = _placeholder_betas(conn, lo, sessions[first_timed])
            timing["betas_s"] = time.perf_counter() - b0
            _say(
                f"  betas.daily: {counts['betas.daily']:,} placeholder rows from {lo.date()} "
                f"[{timing['betas_s']:.0f} s]"
            )
        c0 = time.perf_counter()
        conn.execute("CHECKPOINT")
        timing["checkpoint_s"] = time.perf_counter() - c0
    timing["total_s"] = time.perf_counter() - t0
    return {
        "rows": counts,
        "timing": timing,
        "db_gib": db.stat().st_size / 2**30,
        "symbols": m,
        "late_listings": int((list_row > 0).sum()),
        "delistings": int((end_row < t_len).sum()),
    }


def _estimator_rows() -> list[tuple[str, str, str]]:
    """(model, estimator, factor) of every row ``daily_betas`` writes per stock and day."""
    from beta_pipeline.lib import beta_tables

    out = []
    for model, factors in beta_tables.MODEL_FACTORS.items():
        for spec in beta_tables.daily_specs():
            if spec.single_factor and len(factors) != 1:
                continue
            out += [(model, spec.name, factor) for factor in factors]
    return out


def _placeholder_betas(conn: Any, lo: pd.Timestamp, hi: pd.Timestamp) -> int:
    """betas.daily rows (hashed placeholder values) for every return row in [lo, hi)."""
    from beta_pipeline.lib import warehouse

    keys = _estimator_rows()
    values = ", ".join(f"('{m}', '{e}', '{f}', {i})" for i, (m, e, f) in enumerate(keys))
    cols = ", ".join(warehouse.TABLES["betas.daily"].column_names)
    conn.execute(
        f"""
        INSERT INTO betas.daily ({cols})
        WITH est(model, estimator, factor, k) AS (VALUES {values})
        SELECT date, symbol, model, estimator, factor,
               0.3 + (h % 20000)::DOUBLE / 12500.0 AS beta,
               (((h >> 16) % 2001)::BIGINT - 1000) / 2.5e6 AS alpha,
               ((h >> 32) % 1000)::DOUBLE / 1000.0 AS r2,
               0.01 + ((h >> 40) % 3000)::DOUBLE / 1.0e5 AS resid_std,
               (252 - ((h >> 52) % 5)::INTEGER) AS n_obs
        FROM (
            SELECT r.date, r.symbol, e.model, e.estimator, e.factor,
                   hash(r.symbol, r.date, e.k) AS h
            FROM returns.daily AS r CROSS JOIN est AS e
            WHERE r.date >= ? AND r.date < ?
        )
        """,
        [lo.date(), hi.date()],
    )
    return int(
        conn.execute(
            "SELECT count(*) FROM betas.daily WHERE date >= ? AND date < ?",
            [lo.date(), hi.date()],
        ).fetchone()[0]
    )


# ----------------------------------------------------------------------------- CLI steps


def _seconds(text: str) -> float:
    """Dagster's ``format_duration`` back to seconds (``533ms``, ``2.1s``, ``4m52s``, ``1h4m``)."""
    if text.endswith("ms"):
        return float(text[:-2]) / 1000.0
    total = 0.0
    for value, unit in re.findall(r"([\d.]+)([hms])", text):
        total += float(value) * {"h": 3600.0, "m": 60.0, "s": 1.0}[unit]
    return total


CODE_PATHS = ("beta_pipeline", "dbt_like_sql", "workspace.yaml", "pyproject.toml")


def snapshot(dest: Path, head: bool = False) -> Path:
    """Copy the code the CLI needs (``CODE_PATHS``) from the working tree, or from the
    commit ``HEAD`` (``git archive``, read-only), to ``dest``; run with ``cwd=dest`` so
    ``-m beta_pipeline.cli`` imports the copy (the editable install's finder comes after
    ``sys.path``)."""
    dest.mkdir(parents=True)
    if head:
        archive = subprocess.run(["git", "archive", "--format=tar", "HEAD", *CODE_PATHS],
                                 cwd=ROOT, capture_output=True, check=True).stdout
        subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
        return dest
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in ("beta_pipeline", "dbt_like_sql"):
        shutil.copytree(ROOT / name, dest / name, ignore=ignore)
    for name in ("workspace.yaml", "pyproject.toml"):
        if (ROOT / name).exists():
            shutil.copy2(ROOT / name, dest / name)
    return dest


def provenance() -> dict[str, Any]:
    """The commit and whether ``beta_pipeline/`` differs from it (read-only git calls)."""

    def git(*args: str) -> str:
        try:
            return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True,
                                  check=True).stdout.strip()
        except (OSError, subprocess.CalledProcessError):
            return "?"

    changed = git("status", "--porcelain", "--", "beta_pipeline")
    return {"commit": git("rev-parse", "HEAD"),
            "beta_pipeline_changes": changed.splitlines() if changed != "?" else "?"}


def import_probe(env: dict[str, str], cwd: Path) -> dict[str, Any]:
    """Import time of ``beta_pipeline.definitions`` in a bare process (fails fast when the
    code does not import) and which heavy modules it loads."""
    code = (
        "import json, sys, time; t = time.perf_counter(); import beta_pipeline.definitions; "
        "print(json.dumps({'import_s': time.perf_counter() - t, 'file': "
        "beta_pipeline.definitions.__file__, **{m: m in sys.modules for m in ('torch', "
        "'lightning', 'matplotlib', 'statsmodels', 'great_expectations')}}))"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True,
                          text=True)
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr[-4000:])
        raise SystemExit("import beta_pipeline.definitions failed (code under test broken?)")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def run_cli(
    label: str,
    day: str,
    env: dict[str, str],
    log_dir: Path,
    profile: Path | None = None,
    cwd: Path = ROOT,
) -> dict[str, Any]:
    """One ``beta-pipeline run`` process for ``day``: wall time, step times, rows read and
    the process's peak RSS (its VmHWM, see :class:`RssSampler`)."""
    cli = ["-m", "beta_pipeline.cli", "run", "--select", SELECT, "--start", day, "--end", day,
           "--verbose"]
    # python -m cProfile -o FILE -m beta_pipeline.cli run ...
    pre = ["-m", "cProfile", "-o", str(profile)] if profile is not None else []
    cmd = [sys.executable, *pre, *cli]
    log = log_dir / f"{label.replace(' ', '_').replace('(', '').replace(')', '')}_{day}.log"
    _say(f"  [{label}] {day}: {' '.join(cmd[1:])}")
    load = os.getloadavg()[0]
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        bufsize=1,
    )
    lines: list[str] = []
    stamps: list[float] = []
    sampler = RssSampler(proc.pid, t0)
    assert proc.stdout is not None
    with log.open("w") as fh:
        for line in proc.stdout:
            lines.append(line)
            stamps.append(time.perf_counter() - t0)
            fh.write(line)
            if ECHO_RE.search(line):
                text = line.strip().split(" - ")[-1]
                _say(f"    {stamps[-1]:7.1f}s  {text[:150]}")
    sampler.stop()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    out = "".join(lines)
    steps: dict[str, float] = {}
    for name, value in STEP_RE.findall(out):
        steps[name] = steps.get(name, 0.0) + _seconds(value)
    run_s = sum(float(v.replace(",", "")) for v in RUN_RE.findall(out))
    read = READ_RE.findall(out)
    rows, read_from, mode = read[-1] if read else ("?", "?", "?")
    notes = [
        line.strip().split(" - ")[-1]
        for line in lines
        if "daily_betas: " in line and (" on " in line or "wrote" in line)
    ]
    models = MODEL_RE.findall(out)
    result = {
        "label": label,
        "day": day,
        # rows (sessions) of the panel daily_betas built, and its estimators' seconds per
        # model (the rest of the step: reads, parameter/state writes, the example plot)
        "panel_days": max((int(d) for _, d, _ in models), default=None),
        "estimators_s": {m: float(sec) for m, _, sec in models},
        "wall_s": wall,
        "run_s": run_s,  # the in-process Dagster run (steps, events, checks)
        "returncode": proc.returncode,
        "steps": steps,
        "return_rows_read": int(rows.replace(",", "")) if rows != "?" else None,
        "read_from": read_from,
        "read_mode": mode,
        # the child's VmHWM (its own address space's high-water mark, KiB)
        "peak_rss_gib": (sampler.hwm_kib or usage.ru_maxrss) / 2**20,
        "ru_maxrss_gib": usage.ru_maxrss / 2**20,  # not used: see RssSampler
        # sampled VmRSS (every 50 ms) per phase: before the first step, each step, after
        "rss_by_phase_gib": sampler.by_phase(lines, stamps),
        "cpu_s": usage.ru_utime + usage.ru_stime,
        "loadavg_1m_before": load,  # the machine's load when the step started (shared cores)
        "notes": notes,
        "log": str(log),
    }
    betas = steps.get("daily_betas")
    _say(
        f"  [{label}] {day}: {wall:.1f} s wall, daily_betas "
        f"{betas if betas is None else f'{betas:.2f} s'}, read {rows} rows from {read_from} "
        f"({mode}), peak RSS {result['peak_rss_gib']:.2f} GiB, CPU {result['cpu_s']:.1f} s, "
        f"load before {load:.2f}, exit {proc.returncode}"
    )
    if proc.returncode != 0:
        missing = [a for a in SELECT.split(",") if a not in steps]
        sys.stderr.write(out[-6000:])
        if missing:
            raise SystemExit(f"beta-pipeline run {day} failed ({proc.returncode}); see {log}")
        _say(f"  [{label}] the run failed after writing both assets (a check?); see {log}")
    return result


class RssSampler:
    """Samples a child's VmRSS and VmHWM every ``interval`` s from this process (a thread).

    VmHWM is the kernel's high-water mark of the child's own address space (no spike is
    missed; the last reading before the exit is the peak); VmRSS puts the peak on a phase
    of the run (the steps' start and finish lines). ``os.wait4``'s ``ru_maxrss`` is not
    used: the kernel folds the pre-exec address space into it, and a child started by
    vfork (``subprocess`` does) borrows this process's, so it reports at least this
    process's own peak (the warehouse generation: GBs)."""

    def __init__(self, pid: int, t0: float, interval: float = 0.05) -> None:
        import threading

        self.samples: list[tuple[float, int]] = []
        self.hwm_kib = 0
        self._path = f"/proc/{pid}/status"
        self._t0, self._interval = t0, interval
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._done.is_set():
            try:
                with open(self._path) as fh:
                    for line in fh:
                        if line.startswith("VmHWM:"):
                            self.hwm_kib = max(self.hwm_kib, int(line.split()[1]))
                        elif line.startswith("VmRSS:"):
                            self.samples.append(
                                (time.perf_counter() - self._t0, int(line.split()[1]))
                            )
                            break
            except OSError:
                return
            self._done.wait(self._interval)

    def stop(self) -> None:
        self._done.set()
        self._thread.join()

    def by_phase(self, lines: list[str], stamps: list[float]) -> dict[str, float]:
        """Peak sampled RSS (GiB) per phase: ``start-up`` (to the first step), each step
        (its ``Started``/``Finished execution of step`` lines), ``end`` (after the last)."""
        bounds: list[tuple[float, str]] = []
        for line, t in zip(lines, stamps, strict=True):
            m = re.search(r'(Started|Finished) execution of step "([\w.]+)"', line)
            if m:
                bounds.append((t, m.group(2) if m.group(1) == "Started" else "between steps"))
        out: dict[str, float] = {}
        for t, kib in self.samples:
            phase = "start-up"
            for tb, name in bounds:
                if tb <= t:
                    phase = name
            if bounds and t >= bounds[-1][0]:
                phase = "end"
            out[phase] = max(out.get(phase, 0.0), kib / 2**20)
        return out


def top_functions(profile: Path, n: int = 20) -> dict[str, list[dict[str, Any]]]:
    """From a cProfile file: the project's functions by cumulative time (where the day's
    time goes, by caller) and every function by own time (where it is spent); the
    cumulative time of all imports is under ``imports``."""
    stats = pstats.Stats(str(profile))
    rows = []
    table: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]
    for (file, line, func), (_, calls, tottime, cumtime, _) in table.items():
        inside = "/beta_pipeline/" in file
        name = file.split("/beta_pipeline/")[-1] if inside else Path(file).name
        rows.append({"function": f"{name}:{line}({func})", "calls": calls,
                     "tottime_s": tottime, "cumtime_s": cumtime, "project": inside})
    imports = max((r["cumtime_s"] for r in rows if "(_find_and_load)" in r["function"]),
                  default=0.0)
    ours = sorted((r for r in rows if r["project"]), key=lambda r: -r["cumtime_s"])
    own = sorted(rows, key=lambda r: -r["tottime_s"])
    return {"project_by_cumtime": ours[:n], "all_by_tottime": own[:n],
            "imports": [{"function": "imports (_find_and_load)", "calls": 0,
                         "tottime_s": 0.0, "cumtime_s": imports}]}


# ----------------------------------------------------------------------------- driver


def plan(years: float, end: str, days: int, profile: bool, listing: bool) -> dict[str, Any]:
    """The sessions of a ``years``-long history ending at ``end`` and the timed sessions
    (not before the first daily partition, ``calendar.CALENDAR_START``)."""
    from beta_pipeline.lib import calendar

    last = pd.Timestamp(end)
    first = max(last - pd.DateOffset(years=int(years), days=int(round((years % 1) * 365))),
                pd.Timestamp(calendar.CALENDAR_START))
    sessions = calendar.sessions(first, last)
    timed = 1 + days + int(profile) + int(listing)
    if len(sessions) < timed + 300:
        raise SystemExit(f"{years} years to {end}: too few sessions ({len(sessions)})")
    if len(sessions) - timed < 504:
        _say(f"warning: {years:g} years hold fewer than tuning_sessions (504) sessions before "
             "the prime day: EW-WLS and Kalman are not produced and every day reads it all")
    first_timed = len(sessions) - timed
    labels = ["prime"] + ["day"] * days + ["day (cProfile)"] * int(profile)
    labels += ["listing"] * int(listing)
    steps = [(lab, sessions[first_timed + i].strftime("%Y-%m-%d")) for i, lab in enumerate(labels)]
    return {"sessions": sessions, "first_timed": first_timed, "steps": steps}


def one_history(
    years: float, opts: argparse.Namespace, base: Path | None, code: Path
) -> dict[str, Any]:
    p = plan(years, opts.end, opts.days, opts.profile, not opts.no_listing)
    sessions = p["sessions"]
    home = Path(tempfile.mkdtemp(prefix=f"bench_incr_synth_{years:g}y_", dir=base))
    env = {**os.environ, "BETA_PIPELINE_HOME": str(home), "DAGSTER_HOME": f"{home}/dagster_home"}
    for var in ("BETA_PIPELINE_SOURCE", "BETA_PIPELINE_CSV_CONFIG", "BETA_PIPELINE_AUTOMATION"):
        env.pop(var, None)
    logs = home / "bench_logs"
    logs.mkdir()
    _say(
        f"\n== {years:g} years: {opts.stocks:,} stocks x {len(sessions):,} sessions "
        f"{sessions[0].date()}..{sessions[-1].date()} in {home}"
    )
    try:
        probe = import_probe(env, code)
        _say(f"  import beta_pipeline.definitions: {probe}")
        built = build_warehouse(
            home / "warehouse.duckdb", opts.stocks, sessions, p["first_timed"],
            not opts.no_listing, opts.betas_sessions, opts.seed,
        )
        _say(
            f"  warehouse: {built['rows']['returns.daily']:,} returns, "
            f"{built['rows']['raw.prices']:,} prices, {built['db_gib']:.2f} GiB, "
            f"{built['timing']['total_s']:.0f} s"
        )
        runs = []
        for label, day in p["steps"]:
            prof = logs / f"profile_{day}.pstats" if label == "day (cProfile)" else None
            res = run_cli(label, day, env, logs, prof, cwd=code)
            if prof is not None and prof.exists():
                res["top_functions"] = top_functions(prof)
            runs.append(res)
        built["db_gib_after"] = (home / "warehouse.duckdb").stat().st_size / 2**30
    finally:
        if opts.keep:
            _say(f"  kept {home}")
        else:
            shutil.rmtree(home, ignore_errors=True)
    return {
        "years": years,
        "stocks": opts.stocks,
        "sessions": len(sessions),
        "first": str(sessions[0].date()),
        "last": str(sessions[-1].date()),
        "warehouse": built,
        "runs": runs,
        "import": probe,
        "home": str(home) if opts.keep else None,
    }


def _day_runs(h: dict[str, Any]) -> list[dict[str, Any]]:
    return [r for r in h["runs"] if r["label"] == "day"]


def _median(values: list[float]) -> float:
    return float(np.median(values)) if values else float("nan")


def summarise(histories: list[dict[str, Any]]) -> dict[str, Any]:
    """Per history: the steady days' median (and best) wall, CPU and daily_betas time, their
    peak RSS, the prime and listing days; then longest/shortest history ratios."""
    out: dict[str, Any] = {"per_history": []}
    nan = float("nan")
    for h in histories:
        days = _day_runs(h)
        prime = next(r for r in h["runs"] if r["label"] == "prime")
        listing = next((r for r in h["runs"] if r["label"] == "listing"), None)
        p = {
            "years": h["years"],
            "day_wall_s": _median([r["wall_s"] for r in days]),
            "day_wall_min_s": min([r["wall_s"] for r in days], default=nan),
            "day_cpu_s": _median([r["cpu_s"] for r in days]),
            "day_daily_betas_s": _median([r["steps"].get("daily_betas", nan) for r in days]),
            "day_daily_betas_min_s": min([r["steps"].get("daily_betas", nan) for r in days],
                                         default=nan),
            "day_peak_rss_gib": max([r["peak_rss_gib"] for r in days], default=nan),
            "day_rows_read": [r["return_rows_read"] for r in days],
            "day_read_modes": [r["read_mode"] for r in days],
            "prime_wall_s": prime["wall_s"],
            "prime_daily_betas_s": prime["steps"].get("daily_betas", nan),
            "prime_peak_rss_gib": prime["peak_rss_gib"],
            "listing_wall_s": listing["wall_s"] if listing else nan,
            "listing_daily_betas_s": listing["steps"].get("daily_betas", nan) if listing else nan,
            "listing_read_mode": listing["read_mode"] if listing else None,
        }
        p["ratio_day_over_prime"] = {
            "wall": p["day_wall_s"] / p["prime_wall_s"],
            "daily_betas": p["day_daily_betas_s"] / p["prime_daily_betas_s"],
        }
        out["per_history"].append(p)
    per = out["per_history"]
    if len(per) >= 2:
        lo, hi = per[0], per[-1]
        out["flatness"] = {
            "histories": [lo["years"], hi["years"]],
            **{key: hi[f"{key}_s" if key != "day_peak_rss" else "day_peak_rss_gib"]
               / lo[f"{key}_s" if key != "day_peak_rss" else "day_peak_rss_gib"]
               for key in ("day_wall", "day_wall_min", "day_cpu", "day_daily_betas",
                           "day_daily_betas_min", "day_peak_rss", "prime_wall",
                           "listing_wall")},
        }
    return out


def _peak_phase(run: dict[str, Any]) -> str:
    phases = run.get("rss_by_phase_gib") or {}
    if not phases:
        return "-"
    ranked = sorted(phases.items(), key=lambda kv: -kv[1])[:2]
    return ", ".join(f"{name} {gib:.2f}" for name, gib in ranked)


def _steps_cell(steps: dict[str, float]) -> str:
    others = {k: v for k, v in steps.items() if k not in ("daily_returns", "daily_betas")}
    return ", ".join(f"{k} {v:.2f}" for k, v in sorted(others.items())) or "-"


def report(result: dict[str, Any]) -> str:
    opts = result["options"]
    lines = [
        f"# One incremental day on a synthetic panel ({opts['stocks']:,} stocks, "
        f"`{SELECT}`)",
        "",
        f"Command: `{result['command']}`",
        "",
        f"Code: commit `{result['code']['commit'][:12]}`"
        + (f", uncommitted changes in beta_pipeline/: {result['code']['beta_pipeline_changes']}"
           if result["code"]["beta_pipeline_changes"] and result["code"]["code"] != "head"
           else "")
        + {"tree": " (run from a copy of the working tree)", "live": " (the live tree)",
           "head": " (run from the commit itself: `git archive HEAD`)"}[result["code"]["code"]]
        + ". `import beta_pipeline.definitions` in a bare process: "
        + ", ".join(f"{h['import']['import_s']:.2f} s" for h in result["histories"])
        + f". Machine: {result['machine']['cpus']} CPUs.",
        "",
        "| history | step | session | wall s | CPU s | load | Dagster run s | daily_returns s "
        "| daily_betas s (estimators) | check steps s | return rows read (panel days) | read "
        "| peak RSS GiB "
        "| sampled RSS peak in |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---|---:|---|---:|---|",
    ]
    for h in result["histories"]:
        for r in h["runs"]:
            s = r["steps"]
            rows = f"{r['return_rows_read']:,}" if r["return_rows_read"] is not None else "?"
            lines.append(
                f"| {h['years']:g} y ({h['sessions']:,} sessions) | {r['label']} | {r['day']} "
                f"| {r['wall_s']:.1f} | {r['cpu_s']:.1f} | {r['loadavg_1m_before']:.1f} "
                f"| {r['run_s']:.1f} "
                f"| {s.get('daily_returns', float('nan')):.2f} "
                f"| {s.get('daily_betas', float('nan')):.2f} "
                f"({sum(r['estimators_s'].values()):.1f}) | {_steps_cell(s)} "
                f"| {rows} ({r['panel_days']}) "
                f"| from {r['read_from']} ({r['read_mode']}) | {r['peak_rss_gib']:.2f} "
                f"| {_peak_phase(r)} |"
            )
    lines += ["", "| history | warehouse | returns.daily rows | raw.prices rows "
              "| betas.daily rows | DB GiB | build s |", "|---|---|---:|---:|---:|---:|---:|"]
    for h in result["histories"]:
        w = h["warehouse"]
        lines.append(
            f"| {h['years']:g} y | {h['first']}..{h['last']}, {w['symbols']:,} symbols "
            f"({w['late_listings']:,} late listings, {w['delistings']:,} delistings) "
            f"| {w['rows']['returns.daily']:,} | {w['rows']['raw.prices']:,} "
            f"| {w['rows']['betas.daily']:,} | {w['db_gib']:.2f} | {w['timing']['total_s']:.0f} |"
        )
    summary = result["summary"]
    lines += ["", "| history | day wall s median (min) | day CPU s "
              "| day daily_betas s median (min) | day peak RSS GiB | prime wall s "
              "| prime daily_betas s | prime peak RSS GiB "
              "| listing wall s | listing daily_betas s | day/prime wall | day/prime daily_betas |",
              "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for p in summary["per_history"]:
        lines.append(
            f"| {p['years']:g} y | {p['day_wall_s']:.1f} ({p['day_wall_min_s']:.1f}) "
            f"| {p['day_cpu_s']:.1f} "
            f"| {p['day_daily_betas_s']:.2f} ({p['day_daily_betas_min_s']:.2f}) "
            f"| {p['day_peak_rss_gib']:.2f} | {p['prime_wall_s']:.1f} "
            f"| {p['prime_daily_betas_s']:.2f} | {p['prime_peak_rss_gib']:.2f} "
            f"| {p['listing_wall_s']:.1f} | {p['listing_daily_betas_s']:.2f} "
            f"| {p['ratio_day_over_prime']['wall']:.3f} "
            f"| {p['ratio_day_over_prime']['daily_betas']:.3f} |"
        )
    flat = summary.get("flatness")
    if flat:
        a, b = flat["histories"]
        lines += [
            "",
            f"Flatness ({b:g} y / {a:g} y): day wall {flat['day_wall']:.3f} (best day "
            f"{flat['day_wall_min']:.3f}), day CPU {flat['day_cpu']:.3f}, day daily_betas "
            f"{flat['day_daily_betas']:.3f} (best {flat['day_daily_betas_min']:.3f}), day peak "
            f"RSS {flat['day_peak_rss']:.3f}; prime wall {flat['prime_wall']:.3f}, listing wall "
            f"{flat['listing_wall']:.3f}.",
        ]
    lines += [
        "",
        f"Targets (issue 12): day <= {TARGET_DAY_S:.0f} s at 3,000 stocks x 33 years, flat in "
        f"history length, day peak RSS <= {TARGET_RSS_GB} GB. Wall = the whole CLI process "
        "(interpreter, imports, Dagster, both assets and their checks); Dagster run = the "
        "CLI's `[daily_job] ok in N s` (wall minus it: start-up, imports, definitions, "
        "summary); CPU = user + system seconds of the CLI process; load = the machine's "
        "1-minute load average when the step started (2 shared cores: wall times are noisy); "
        "step times from "
        "Dagster's `Finished execution of step` lines; peak RSS = the CLI process's VmHWM; "
        "sampled RSS peak in = the steps with the highest sampled VmRSS. `listing`: a new "
        "stock's first return that day (the symbol set changes).",
    ]
    for h in result["histories"]:
        for r in h["runs"]:
            tops = r.get("top_functions") or {}
            for key, what in (("project_by_cumtime", "beta_pipeline functions by cumulative"),
                              ("all_by_tottime", "all functions by own")):
                if not tops.get(key):
                    continue
                imports = tops["imports"][0]["cumtime_s"]
                lines += ["", f"{h['years']:g} y, {r['label']} {r['day']}: {what} time "
                          f"(cProfile; all imports {imports:.2f} s cumulative)", "",
                          "| function | calls | own s | cumulative s |", "|---|---:|---:|---:|"]
                for f in tops[key]:
                    lines.append(f"| `{f['function']}` | {f['calls']:,} | {f['tottime_s']:.2f} "
                                 f"| {f['cumtime_s']:.2f} |")
    return "\n".join(lines) + "\n"


def _years(values: list[str] | None) -> list[float]:
    out: list[float] = []
    for v in values or ["10,33"]:
        out += [float(x) for x in v.split(",") if x.strip()]
    return sorted(set(out))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--stocks", type=int, default=3000, help="stocks in the panel")
    ap.add_argument("--years", action="append",
                    help="history length(s), repeatable or a comma list (default 10,33)")
    ap.add_argument("--end", default="2022-12-30", help="last session of the panel")
    ap.add_argument("--days", type=int, default=3, help="steady days timed after the prime")
    ap.add_argument("--betas-sessions", type=int, default=504,
                    help="sessions of placeholder betas.daily history (0: none)")
    ap.add_argument("--no-listing", action="store_true", help="skip the new-listing day")
    ap.add_argument("--profile", action="store_true", help="one more steady day under cProfile")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--keep", action="store_true", help="keep the temporary homes")
    ap.add_argument("--code", choices=("tree", "head", "live"), default="tree",
                    help="code under test: a copy of the working tree (default), the "
                    "commit HEAD, or the live tree")
    ap.add_argument("--tmp", help="folder for the temporary homes (default: the system's)")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "incremental_synthetic"))
    opts = ap.parse_args(argv)
    if opts.days < 1:
        ap.error("--days must be >= 1")
    years = _years(opts.years)
    base = Path(opts.tmp) if opts.tmp else None
    t0 = time.perf_counter()
    prov = provenance()
    _say(f"code: commit {prov['commit'][:12]}, uncommitted changes in beta_pipeline/: "
         f"{prov['beta_pipeline_changes'] or 'none'}")
    code_tmp = None
    if opts.code == "live":
        code = ROOT
    else:
        code_tmp = Path(tempfile.mkdtemp(prefix="bench_incr_synth_code_", dir=base))
        code = snapshot(code_tmp / "code", head=opts.code == "head")
        _say(f"code under test: {opts.code} copy in {code}")
    sys.path.insert(0, str(code))
    try:
        histories = [one_history(y, opts, base, code) for y in years]
    finally:
        if code_tmp is not None and not opts.keep:
            shutil.rmtree(code_tmp, ignore_errors=True)
    result = {
        "command": "python benchmarks/bench_incremental_synthetic.py "
        + " ".join(sys.argv[1:] if argv is None else argv),
        "options": {**vars(opts), "years": years},
        "histories": histories,
        "summary": summarise(histories),
        "total_s": time.perf_counter() - t0,
        "machine": {"cpus": os.cpu_count(), "platform": sys.platform},
        "code": {**prov, "code": opts.code},
    }
    out = Path(opts.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(result, indent=2, default=str))
    text = report(result)
    out.with_suffix(".md").write_text(text)
    _say("\n" + text)
    _say(f"wrote {out.with_suffix('.md')} and .json ({result['total_s']:.0f} s in all)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
