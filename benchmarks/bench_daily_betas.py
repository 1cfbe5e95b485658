"""End-to-end benchmark of the ``daily_betas`` backfill: DuckDB read -> pivot -> estimators ->
Arrow batches -> DuckDB write, the path the asset runs, on a synthetic panel.

Run from the repository root::

    python benchmarks/bench_daily_betas.py                 # 5,000 stocks x 6,000 days
    python benchmarks/bench_daily_betas.py --quick         # 1,000 x 2,000, about a minute
    python benchmarks/bench_daily_betas.py --estimators ols --models capm,ff3

Steps (each in a fresh child process, so peak RSS is per step):

1. ``setup`` (not timed): a synthetic panel of daily excess returns (drifting betas, 30 %
   late listings, 10 % delistings, 0.5 % missing days) written into ``returns.daily`` and
   the Fama-French-like series into ``raw.market`` of a temporary DuckDB file with the
   project's warehouse module.
2. ``run`` per estimator set (timed): the asset's core path over the whole history with
   fixed parameters (EW half-life and Kalman q/h given, no tuning):
   ``beta_tables.read_returns_wide``, ``factor_frame`` + ``Panel.from_wide``,
   ``beta_tables.estimate_arrow`` and ``warehouse.replace_window_chunks`` into
   ``betas.daily``. Phases are timed from the outside (wall, process CPU, peak RSS): the
   calls above, each ``next()`` of ``estimate_arrow`` (one estimator), each record batch
   DuckDB pulls from a piece (in the insert thread) and each statement the write executes
   (a pass-through connection).
3. ``leaderboard``: ``hedging_sql.leaderboard`` on the written table.
4. ``tune``: the asset's tuning work (EW half-life grid, Kalman MLE on the training rows of
   the tuning span), timed separately.

``--checksum FILE`` writes per (model, estimator, factor) row counts and an exact hash of
every written value (and a sample of rows) so two code versions can be compared bit for bit;
``--compare FILE`` checks against such a file (and measures the sampled rows' differences).
Results go to ``benchmarks/results/daily_betas[_quick][_TAG].md`` and ``.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from harness import (  # noqa: E402
    Meter,
    effective_cores,
    gib,
    in_child,
    machine,
    md_table,
    write_results,
)

from beta_pipeline.lib import beta_tables, hedging_sql, warehouse  # noqa: E402

FF_SERIES = ("mkt_rf", "smb", "hml", "rmw", "cma")
EW_HALF_LIFE = 42.0  # fixed half-life in the timed run (the asset tunes it once, then stores)
KALMAN_Q, KALMAN_H = 2e-6, 4e-4  # fixed Kalman variances in the timed run
#: the tuning step's settings: DailyBetasConfig's defaults (ewm_half_life_grid, tuning_sessions)
EW_GRID, TUNING_SESSIONS = [5.0, 10.0, 21.0, 42.0, 63.0, 126.0, 252.0], 504
SETS = {"ols": "ols_60, ols_252", "full": "beta_tables.daily_specs() (9 estimators)"}
TARGET_S, TARGET_GB = 60.0, 8.0
READ = "read (beta_tables.read_returns_wide + raw.market)"
PIVOT = "pivot (factor_frame + Panel.from_wide)"
BATCHES = "arrow batches (cut from the arrays, in the insert thread)"
WRITE_REST = (
    "write: replace_window_chunks in the main thread, generator excluded (DELETE, COMMIT, "
    "waits for the insert thread)"
)
GENERATOR = "(pieces generator)"
TOTAL = "total"
#: table order of the phases (by prefix); others follow in the order they were recorded
ORDER = ("read", "pivot", "estimate: ", "arrow batches", "write: connect", "write: BEGIN",
         "write: DELETE", "write: INSERT", "write: COMMIT", "write: repl", "write: ")


# ----------------------------------------------------------------------------- data


def synthetic(n: int, t: int, seed: int = 0) -> dict[str, Any]:
    """(T, N) excess returns on five factors with drifting market betas and gaps."""
    rng = np.random.default_rng(seed)
    f = rng.normal(0.0, 1.0, (t, len(FF_SERIES))) * np.array([0.01, 0.005, 0.005, 0.004, 0.004])
    f[:, 0] += 0.0003
    load = rng.normal(0.0, 0.3, (n, len(FF_SERIES) - 1)).astype(np.float32)
    y = np.cumsum(rng.normal(0, 0.002, (t, n)), axis=0)  # beta drift, in place below
    y += rng.normal(1.0, 0.4, n)
    y *= f[:, :1]
    y += f[:, 1:] @ load.T.astype(np.float64)
    y += rng.normal(0, 1, (t, n)) * rng.uniform(0.01, 0.03, n)
    start = np.where(rng.random(n) < 0.3, rng.integers(0, t // 2, n), 0)
    stop = np.where(rng.random(n) < 0.1, rng.integers(t // 2, t, n), t)
    rows = np.arange(t)[:, None]
    y[(rows < start) | (rows >= stop)] = np.nan
    y[rng.random((t, n)) < 0.005] = np.nan
    return {"y": y, "f": f, "dates": pd.bdate_range("1995-01-02", periods=t)}


def setup(db: str, stocks: int, days: int) -> dict[str, Any]:
    """Write returns.daily and raw.market into ``db`` with the warehouse module."""
    t0 = time.perf_counter()
    d = synthetic(stocks, days)
    y, f, dates = d["y"], d["f"], d["dates"]
    rf = 0.0001
    # long rows in (symbol, date) order: prev_date is the symbol's previous observed date
    s_idx, t_idx = np.nonzero(np.isfinite(y.T))
    del d
    ret_excess = y.T[s_idx, t_idx]
    del y
    first = np.r_[True, s_idx[1:] != s_idx[:-1]]
    prev = np.r_[0, t_idx[:-1]]
    prev_date = dates.to_numpy()[prev].astype("datetime64[ns]")
    prev_date[first] = np.datetime64("NaT")
    ret = ret_excess + rf
    frame = pd.DataFrame(
        {
            "date": dates.to_numpy()[t_idx],
            "symbol": pd.Categorical.from_codes(
                s_idx.astype(np.int32), categories=[f"S{i:05d}" for i in range(stocks)]
            ),
            "prev_date": prev_date,
            "ret": ret,
            "log_ret": np.log1p(ret),
            "ret_excess": ret_excess,
            "mkt_excess": f[:, 0][t_idx],
        }
    )
    n_rows = len(frame)
    market = pd.DataFrame(
        {
            "date": np.tile(dates.to_numpy(), len(FF_SERIES)),
            "series": np.repeat(np.array(FF_SERIES, dtype=object), days),
            "value": f.T.reshape(-1),
        }
    )
    lo, hi = dates[0], dates[-1] + pd.Timedelta(days=1)
    with warehouse.open_warehouse(db) as conn:
        warehouse.replace_window(conn, "returns.daily", frame, lo, hi)
        warehouse.replace_window(conn, "raw.market", market, lo, hi)
        conn.execute("CHECKPOINT")
    return {
        "rows": n_rows,
        "cells": stocks * days,
        "start": str(lo.date()),
        "end": str(hi.date()),
        "seconds": time.perf_counter() - t0,
        "db_mib": Path(db).stat().st_size / 2**20,
    }


def specs_for(which: str) -> list[beta_tables.EstimatorSpec]:
    """The estimator set with fixed (untuned) parameters."""
    specs = beta_tables.daily_specs()
    if which == "ols":
        specs = [s for s in specs if s.name in ("ols_60", "ols_252")]
    elif which != "full":
        names = which.split(",")
        specs = [s for s in specs if s.name in names]
        if not specs:
            raise SystemExit(f"no estimators named {which!r}")
    out = []
    for s in specs:
        p = dict(s.params)
        if s.kind == "ewm":
            p["half_life"] = EW_HALF_LIFE
        if s.kind == "kalman":
            p.update(q=KALMAN_Q, h=KALMAN_H, alpha=0.0)
        out.append(beta_tables.EstimatorSpec(s.name, s.kind, p, s.single_factor))
    return out


# ----------------------------------------------------------------------------- steps


class TimedConn:
    """Pass-through DuckDB connection timing ``execute()`` by statement kind (the write's
    BEGIN, DELETE, INSERT (in the insert thread), COMMIT and memory settings)."""

    def __init__(self, conn: Any, meter: Meter) -> None:
        self._conn, self._meter = conn, meter

    def execute(self, sql: str, *args: Any) -> Any:
        kind = sql.split(None, 1)[0].upper()
        name = "write: DELETE window" if kind == "DELETE" else f"write: {kind}"
        with self._meter.phase(name):
            return self._conn.execute(sql, *args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conn, name)


def run(
    db: str, which: str, models: list[str], start: str, end: str,
    overlap: bool | None = None, abort_gib: float | None = None,
) -> dict[str, Any]:
    """The asset's core path on the whole history, timed per phase (see the docstring)."""
    meter = Meter(abort_gib=abort_gib)
    lo, hi = pd.Timestamp(start), pd.Timestamp(end)
    specs = specs_for(which)
    load0 = os.getloadavg()
    total = meter.start(TOTAL)
    with meter.phase(READ) as ph:
        with warehouse.open_warehouse(db, read_only=True) as conn:
            wide = beta_tables.read_returns_wide(conn, hi)
            market = warehouse.read_window(conn, "raw.market", None, hi)
        ph.rows = n_in = wide.rows
    calendar = wide.date_frame()
    written: list[warehouse.ArrowPiece] = []

    def pieces() -> Iterator[warehouse.ArrowPiece]:
        for model in models:
            with meter.phase(PIVOT, n_in):
                factors = beta_tables.factor_frame(model, calendar, market)
                panel = None if factors is None else beta_tables.Panel.from_wide(wide, factors)
            if panel is None:
                continue
            # each next() runs one estimator; its batches are cut while DuckDB inserts them
            for piece in meter.iterate(
                lambda p: f"estimate: {p.label}",
                beta_tables.estimate_arrow(panel, model, specs, lo, hi),
                rows=lambda p: n_in,
            ):
                timed = warehouse.ArrowPiece(
                    meter.iterate(BATCHES, piece.batches, rows=lambda b: b.num_rows),
                    piece.schema, piece.first, piece.last, label=piece.label,
                )
                del piece
                written.append(timed)
                yield timed

    kw = {} if overlap is None else {"overlap": overlap}
    with meter.phase("write: connect (warehouse.connect)"):
        conn = warehouse.connect(db)
    try:
        with meter.phase(WRITE_REST) as ph:
            ph.rows = n_out = warehouse.replace_window_chunks(
                TimedConn(conn, meter), "betas.daily", meter.iterate(GENERATOR, pieces()),
                lo, hi, **kw,
            )
    finally:
        with meter.phase("write: close (checkpoint)"):
            conn.close()
    # the generator ran inside replace_window_chunks: take its time out of the write
    gen = meter.phases.pop(GENERATOR)
    meter.phases[WRITE_REST]["wall"] -= gen["wall"]
    meter.phases[WRITE_REST]["cpu"] -= gen["cpu"]
    total.rows = n_in
    meter.stop(total)

    # the asset's reads after the write (preview and example-plot query), not in the total
    with meter.phase("after: preview + example-plot queries"):
        with warehouse.open_warehouse(db) as conn:
            conn.execute(
                "SELECT * FROM betas.daily WHERE date >= ? AND date < ? LIMIT 10",
                [lo.date(), hi.date()],
            ).df()
        with warehouse.open_warehouse(db, read_only=True) as conn:
            conn.execute(
                """
                WITH pick AS (
                    SELECT symbol FROM betas.daily
                    WHERE model = 'capm' AND estimator = 'ols_252' AND date >= ? AND date < ?
                    GROUP BY symbol ORDER BY count(*) DESC, symbol LIMIT 4
                )
                SELECT date, symbol, estimator, beta FROM betas.daily
                WHERE model = 'capm' AND estimator IN ('ols_252', 'ewm', 'kalman')
                  AND symbol IN (SELECT symbol FROM pick) AND date >= ? AND date < ?
                """,
                [lo.date(), hi.date(), lo.date(), hi.date()],
            ).df()
    out = meter.close()
    out.update(
        rows_in=n_in,
        rows_out=n_out,
        counts={p.label: p.rows for p in written if p.rows},
        load_start=load0,
        load_end=os.getloadavg(),
        specs=[s.name for s in specs],
        models=models,
    )
    return out


def leaderboard(
    db: str, memory_limit: str | None = None, abort_gib: float | None = None
) -> dict[str, Any]:
    meter = Meter(abort_gib=abort_gib)
    load0 = os.getloadavg()
    with meter.phase("hedging_sql.leaderboard"):
        with warehouse.open_warehouse(db) as conn:
            if memory_limit:
                conn.execute(f"SET memory_limit = '{memory_limit}'")
            table = hedging_sql.leaderboard(conn)
    out = meter.close()
    out.update(load_start=load0, load_end=os.getloadavg(), rows=len(table))
    overall = table[table["period"] == "all"]
    out["overall"] = overall[["model", "estimator", "n", "rmse", "improvement_pct"]].to_dict(
        "records"
    )
    return out


def tune(db: str, models: list[str], end: str, abort_gib: float | None = None) -> dict[str, Any]:
    """The asset's tuning work (not part of the timed core) with ``DailyBetasConfig``'s
    defaults: the EW half-life grid and the Kalman MLE on the tuning span's training rows."""
    meter = Meter(abort_gib=abort_gib)
    hi = pd.Timestamp(end)
    with warehouse.open_warehouse(db, read_only=True) as conn:
        wide = beta_tables.read_returns_wide(conn, hi)
        market = warehouse.read_window(conn, "raw.market", None, hi)
    specs = {s.kind: s for s in beta_tables.daily_specs()}
    span = TUNING_SESSIONS
    train, _ = beta_tables.split_rows(span)
    found: dict[str, Any] = {"tuning_sessions": span}
    for model in models:
        factors = beta_tables.factor_frame(model, wide.date_frame(), market)
        if factors is None:
            continue
        p = beta_tables.Panel.from_wide(wide, factors)
        panel = beta_tables.Panel(p.dates[:span], p.symbols, p.factors, p.y[:span], p.x[:span])
        grid = EW_GRID
        with meter.phase(f"tune: EW half-life grid ({model}, {len(grid)} half-lives)"):
            best, _ = beta_tables.tune_ewm(panel, specs["ewm"], grid)
        found[f"{model}_half_life"] = best
        if len(panel.factors) == 1:
            n = train.stop
            with meter.phase(f"tune: Kalman MLE on {n} training rows ({model})"):
                fit = beta_tables.fit_kalman(
                    beta_tables.Panel(panel.dates[:n], panel.symbols, panel.factors,
                                      panel.y[:n], panel.x[:n]),
                    train_rows=n,
                )
            found[f"{model}_q_over_h"] = float(np.nanmedian(fit["q"] / fit["h"]))
    out = meter.close()
    out["found"] = found
    return out


def checksum(db: str) -> dict[str, Any]:
    """Counts and exact hashes of every written value per (model, estimator, factor), and
    the rows of a fixed sample of (symbol, date)."""
    with warehouse.open_warehouse(db, read_only=True) as conn:
        agg = conn.execute(
            """
            SELECT model, estimator, factor, count(*) AS n,
                   CAST(sum(hash(date, symbol, beta, alpha, r2, resid_std, n_obs)
                            % 1000000007) AS BIGINT) AS h,
                   min(date)::VARCHAR AS first, max(date)::VARCHAR AS last
            FROM betas.daily GROUP BY ALL ORDER BY ALL
            """
        ).df()
        sample = conn.execute(
            """
            SELECT date::VARCHAR AS date, symbol, model, estimator, factor, beta, alpha, r2,
                   resid_std, n_obs
            FROM betas.daily WHERE hash(symbol, date) % 20011 = 0 ORDER BY ALL
            """
        ).df()
        dtypes = conn.execute(
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = 'betas' AND table_name = 'daily' ORDER BY ordinal_position"
        ).fetchall()
    return {
        "groups": agg.to_dict("records"),
        "sample": sample.astype(str).to_dict("records"),  # str(float) round-trips exactly
        "dtypes": dtypes,
    }


KEY = ["model", "estimator", "factor"]
VALUES = ["beta", "alpha", "r2", "resid_std", "n_obs"]


def compare_checksums(ref: dict[str, Any], cur: dict[str, Any]) -> dict[str, Any]:
    """Whether two :func:`checksum` results are identical; per (model, estimator, factor)
    of either: rows and hash equal or not, and over the sampled rows both have the largest
    absolute difference of each value (NULL vs number counts as a mismatch)."""
    a, b = pd.DataFrame(ref["groups"]), pd.DataFrame(cur["groups"])
    groups = a.merge(b, on=KEY, how="outer", suffixes=("_ref", "_new"), indicator=True)
    sa, sb = pd.DataFrame(ref["sample"]), pd.DataFrame(cur["sample"])
    keys = ["date", "symbol", *KEY]
    both = sa.merge(sb, on=keys, suffixes=("_ref", "_new")) if len(sa) and len(sb) else None
    rows = []
    for d in groups.to_dict("records"):
        row = {k: d[k] for k in KEY}
        row["in"] = {"both": "both", "left_only": "ref only", "right_only": "new only"}[
            str(d["_merge"])
        ]
        row["rows_equal"] = d["n_ref"] == d["n_new"]
        row["hash_equal"] = row["rows_equal"] and d["h_ref"] == d["h_new"]
        if both is not None and row["in"] == "both":
            part = both[(both[KEY] == pd.Series(row)[KEY]).all(axis=1)]
            row["sampled_rows"] = len(part)
            for v in VALUES:
                x = pd.to_numeric(part[f"{v}_ref"].replace("<NA>", "nan"), errors="coerce")
                y = pd.to_numeric(part[f"{v}_new"].replace("<NA>", "nan"), errors="coerce")
                diff = (x - y).abs()
                row[f"max_abs_diff_{v}"] = float(diff.max()) if diff.notna().any() else 0.0
                row[f"null_mismatch_{v}"] = int((x.isna() != y.isna()).sum())
        rows.append(row)
    identical = (
        ref["groups"] == cur["groups"] and ref["sample"] == cur["sample"]
        and ref.get("dtypes") == cur.get("dtypes")
    )
    return {"identical": identical, "groups": rows}


# ----------------------------------------------------------------------------- report


def fmt_rate(rows: float, wall: float) -> str:
    return f"{rows / wall / 1e6:,.1f} M" if wall > 0 and rows else ""


def phase_table(res: dict[str, Any]) -> list[str]:
    ph = res["phases"]
    order = [k for g in ORDER for k in ph if k.startswith(g)]
    order = list(dict.fromkeys(order))
    order += [k for k in ph if k not in order and k != TOTAL and not k.startswith("after:")]
    rows = []
    for k in order:
        p = ph[k]
        rss = f"{gib(p['rss_kib']):.2f}" if p["calls"] else "(interleaved)"
        rows.append([k, f"{p['wall']:.2f}", f"{p['cpu']:.2f}", f"{int(p['rows']):,}",
                     fmt_rate(p["rows"], p["wall"]), rss])
    tot = ph[TOTAL]
    rows.append([
        "**total (read → write committed)**", f"**{tot['wall']:.2f}**", f"{tot['cpu']:.2f}",
        f"{int(res['rows_in']):,} in / {int(res['rows_out']):,} out",
        f"{fmt_rate(res['rows_in'], tot['wall'])} in, "
        f"{fmt_rate(res['rows_out'], tot['wall'])} out",
        f"**{gib(res['vmhwm_kib']):.2f}** (VmHWM)",
    ])
    for k in ph:
        if k.startswith("after:"):
            p = ph[k]
            rows.append([f"{k} (not in total)", f"{p['wall']:.2f}", f"{p['cpu']:.2f}", "", "",
                         f"{gib(p['rss_kib']):.2f}"])
    return md_table(
        ["phase", "wall s", "CPU s", "rows", "rows/s (wall)", "peak RSS in phase GiB"], rows,
        "lrrrrr",
    )


def report(results: dict[str, Any], quick: bool) -> str:
    info = results["info"]
    s = info["setup"]
    lines = [
        f"# daily_betas backfill benchmark{' (--quick)' if quick else ''}",
        "",
        f"{info['stocks']:,} stocks × {info['days']:,} days ({s['rows']:,} observed return "
        f"rows), models {info['models']}; {info['cores']} cores; duckdb {info['duckdb']}, "
        f"numpy {info['numpy']}, pandas {info['pandas']}; code {info.get('code', '?')}.",
        "",
    ]
    rows = []
    for which, res in results["runs"].items():
        if "failed" in res:
            rss = gib(res.get("abort_rss_kib", 0))
            rows.append([which, f"failed (exit {res['failed']}) in "
                         f"{res.get('aborted_in', '?')}, RSS {rss:.1f} GiB", *[""] * 8, "no"])
            continue
        tot = res["phases"][TOTAL]
        gb = res["vmhwm_kib"] * 1024 / 1e9
        rows.append([
            f"{which}: {', '.join(res['specs'])}", f"{res['rows_out']:,}", f"{tot['wall']:.1f}",
            f"{tot['cpu']:.1f}", fmt_rate(res["rows_in"], tot["wall"]),
            fmt_rate(res["rows_out"], tot["wall"]), f"{gib(res['vmhwm_kib']):.2f}",
            f"{res['load_start'][0]:.1f}→{res['load_end'][0]:.1f}",
            f"{res['effective_cores_before']}/{res['effective_cores_after']}",
            "yes" if tot["wall"] <= TARGET_S else "no", "yes" if gb <= TARGET_GB else "no",
        ])
    lines += md_table(
        ["estimator set", "output rows", "total wall s", "total CPU s", "input rows/s",
         "output rows/s", "peak RSS GiB (VmHWM)", "load avg start→end",
         "effective cores before/after", "≤ 60 s", "≤ 8 GB"],
        rows, "lrrrrrr",
    )
    for which, res in results["runs"].items():
        if "failed" not in res:
            lines += ["", f"## Phases: {which}", "", *phase_table(res)]
    lb = results.get("leaderboard")
    if lb is not None:
        lines += ["", "## hedging_sql.leaderboard on the last set", ""]
        if "failed" in lb:
            lines.append(f"failed (exit {lb['failed']}): RSS "
                         f"{gib(lb.get('abort_rss_kib', 0)):.1f} GiB.")
        else:
            p = lb["phases"]["hedging_sql.leaderboard"]
            lines.append(
                f"{p['wall']:.1f} s wall, {p['cpu']:.1f} s CPU, peak RSS "
                f"{gib(lb['vmhwm_kib']):.2f} GiB, {lb['rows']} leaderboard rows; load "
                f"{lb['load_start'][0]:.1f}→{lb['load_end'][0]:.1f}."
            )
    tu = results.get("tune")
    if tu is not None and "failed" not in tu:
        lines += ["", "## Tuning (separate, not in the totals)", ""]
        lines += md_table(["step", "wall s", "CPU s"],
                          [[k, f"{p['wall']:.1f}", f"{p['cpu']:.1f}"]
                           for k, p in tu["phases"].items()], "lrr")
        lines.append(f"\nfound: {tu['found']}; peak RSS {gib(tu['vmhwm_kib']):.2f} GiB")
    c = results.get("compare")
    if c is not None:
        lines += ["", f"## Output compared with {c['file']}: "
                  f"{'identical' if c['identical'] else 'DIFFERENT'}", ""]
        lines += md_table(
            ["model/estimator/factor", "in", "rows equal", "hash equal", "sampled rows",
             "max |Δ beta|", "max |Δ alpha|", "max |Δ r2|", "max |Δ resid_std|",
             "NULL mismatches"],
            [[f"{g['model']}/{g['estimator']}/{g['factor']}", g["in"], g["rows_equal"],
              g["hash_equal"], g.get("sampled_rows", ""),
              *(f"{g[f'max_abs_diff_{v}']:.3g}" if f"max_abs_diff_{v}" in g else ""
                for v in VALUES[:4]),
              sum(g.get(f"null_mismatch_{v}", 0) for v in VALUES)]
             for g in c["groups"]],
            "llllrrrrrr",
        )
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------- driver


def step(name: str, **kw: Any) -> dict[str, Any]:
    """One step of this file in a fresh interpreter (its own peak RSS)."""
    return in_child(__file__, name, **kw)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--stocks", type=int, default=5000)
    ap.add_argument("--days", type=int, default=6000)
    ap.add_argument(
        "--estimators",
        default="ols,full",
        help="comma list: 'ols' (ols_60, ols_252) and 'full' (daily_specs()) are one timed run "
        "each; spec names (e.g. ols_60,ewm,kalman) make one more run; '' times no run "
        "(leaderboard/tuning on an existing --db only)",
    )
    ap.add_argument("--models", default="capm", help="comma list of capm, ff3, ff5")
    ap.add_argument("--quick", action="store_true", help="1,000 x 2,000 panel, about a minute")
    ap.add_argument("--db", help="keep the warehouse here (default: a temporary folder)")
    ap.add_argument("--reuse", action="store_true", help="reuse --db's returns (skip setup)")
    ap.add_argument("--no-leaderboard", action="store_true")
    ap.add_argument("--no-tune", action="store_true")
    ap.add_argument("--checksum", help="write counts, hashes and a sample of the last set here")
    ap.add_argument("--compare", help="compare the last set with a --checksum file")
    ap.add_argument(
        "--rss-abort", type=float, default=14.0,
        help="stop a step whose RSS exceeds this many GiB (protects a shared machine)",
    )
    ap.add_argument("--tag", default="", help="suffix of the results file names")
    ap.add_argument(
        "--overlap", choices=("default", "on", "off"), default="default",
        help="replace_window_chunks(overlap=...): insert piece k while piece k+1 is computed "
        "(default: the function's default)",
    )
    ap.add_argument(
        "--leaderboard-memory-limit",
        help="DuckDB memory_limit for the leaderboard query (default: DuckDB's, as the asset)",
    )
    args = ap.parse_args()

    abort = args.rss_abort or None
    n, t = (1000, 2000) if args.quick else (args.stocks, args.days)
    items = [x.strip() for x in args.estimators.split(",") if x.strip()]
    sets = [x for x in items if x in SETS]  # each named set is one timed run
    custom = [x for x in items if x not in SETS]
    if custom:  # spec names of daily_specs(): one more run with just those
        sets.append(",".join(custom))
    models = args.models.split(",")
    tmp = tempfile.TemporaryDirectory(prefix="bench_daily_betas_")
    db = Path(args.db) if args.db else Path(tmp.name) / "warehouse.duckdb"
    info: dict[str, Any] = {
        "stocks": n, "days": t, "models": args.models, "code": _code_version(),
        **machine("duckdb", "numpy", "pandas"),
    }
    if args.reuse and db.exists():
        with warehouse.open_warehouse(db, read_only=True) as conn:
            lo, hi, rows = conn.execute(
                "SELECT min(date), max(date) + 1, count(*) FROM returns.daily"
            ).fetchone()
        info["setup"] = {"rows": rows, "start": str(lo), "end": str(hi), "reused": True}
    else:
        if db.exists():
            db.unlink()
        print(f"setup: {n:,} stocks x {t:,} days -> {db} (not timed) ...", flush=True)
        s = info["setup"] = step("setup", db=str(db), stocks=n, days=t)
        if "failed" in s:
            raise SystemExit(f"setup failed (exit {s['failed']})")
        print(f"  {s['rows']:,} return rows in {s['seconds']:.1f}s, {s['db_mib']:.0f} MiB",
              flush=True)
    start, end = info["setup"]["start"], info["setup"]["end"]
    results: dict[str, Any] = {"info": info, "runs": {}}
    for which in sets:
        cores = effective_cores()
        print(f"run: estimators={which} models={args.models} (effective cores {cores}) ...",
              flush=True)
        res = step(
            "run", db=str(db), which=which, models=models, start=start, end=end,
            overlap=None if args.overlap == "default" else args.overlap == "on",
            abort_gib=abort,
        )
        res["effective_cores_before"] = cores
        res["effective_cores_after"] = effective_cores()
        results["runs"][which] = res
        if "failed" in res:
            print(f"  run failed (exit {res['failed']}) {res.get('aborted_in', '')}", flush=True)
            for k, p in res.get("partial", {}).items():
                print(f"    {k}: {p['wall']:.2f}s wall {p['cpu']:.2f}s CPU "
                      f"peak {gib(p['rss_kib']):.2f} GiB", flush=True)
            continue
        tot = res["phases"][TOTAL]
        print(
            f"  total {tot['wall']:.1f}s wall, {tot['cpu']:.1f}s CPU, "
            f"{res['rows_out']:,} rows out, VmHWM {gib(res['vmhwm_kib']):.2f} GiB, "
            f"load {res['load_start'][0]:.1f}->{res['load_end'][0]:.1f}",
            flush=True,
        )
        print("\n".join(phase_table(res)), flush=True)
    failed = False
    if args.checksum or args.compare:
        cs = step("checksum", db=str(db))
        if "failed" in cs:
            raise SystemExit(f"checksum failed (exit {cs['failed']})")
        cs = {k: cs[k] for k in ("groups", "sample", "dtypes")}  # not the child's timings
        if args.checksum:
            Path(args.checksum).write_text(json.dumps(cs, indent=1, default=str))
            print(f"checksum of the last set written to {args.checksum}")
        if args.compare:
            cmp = compare_checksums(json.loads(Path(args.compare).read_text()), cs)
            results["compare"] = {"file": args.compare, **cmp}
            print(f"compare with {args.compare}: "
                  f"{'IDENTICAL' if cmp['identical'] else 'DIFFERENT'}")
            failed = not cmp["identical"]
    if not args.no_leaderboard:
        print("leaderboard (hedging_sql.leaderboard on the last set) ...", flush=True)
        lb = step("leaderboard", db=str(db), memory_limit=args.leaderboard_memory_limit,
                  abort_gib=abort)
        results["leaderboard"] = lb
        if "failed" in lb:
            print(f"  failed (exit {lb['failed']}) {lb.get('aborted_in', '')}", flush=True)
        else:
            p = lb["phases"]["hedging_sql.leaderboard"]
            print(f"  {p['wall']:.1f}s wall, {p['cpu']:.1f}s CPU, "
                  f"VmHWM {gib(lb['vmhwm_kib']):.2f} GiB")
    if not args.no_tune:
        print("tuning (not in the timed path) ...", flush=True)
        tu = step("tune", db=str(db), models=models, end=end, abort_gib=abort)
        results["tune"] = tu
        for k, p in tu.get("phases", tu.get("partial", {})).items():
            print(f"  {k}: {p['wall']:.1f}s wall, {p['cpu']:.1f}s CPU")

    text = report(results, args.quick)
    print(text)
    stem = "daily_betas" + ("_quick" if args.quick else "") + (f"_{args.tag}" if args.tag else "")
    for path in write_results(stem, text, results):
        print(f"written: {path}")
    tmp.cleanup()
    if failed:
        sys.exit(1)


def _code_version() -> str:
    """The commit of the code under test (and whether its tree has changes)."""
    import subprocess

    try:
        head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                              capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "--no-optional-locks", "-C", str(ROOT), "status",
                                "--porcelain", "--",
                                "beta_pipeline"], capture_output=True, text=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + (" + changes in beta_pipeline/" if dirty.strip() else "")


if __name__ == "__main__":
    main()
