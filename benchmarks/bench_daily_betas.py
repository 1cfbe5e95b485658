"""End-to-end benchmark of the ``daily_betas`` backfill: DuckDB read -> pivot -> estimators ->
long rows -> DuckDB write, exactly the path the asset runs, on a synthetic panel.

Run from the repository root::

    python benchmarks/bench_daily_betas.py                 # 5,000 stocks x 6,000 days
    python benchmarks/bench_daily_betas.py --quick         # 1,000 x 2,000, about a minute
    python benchmarks/bench_daily_betas.py --estimators ols --models capm,ff3

Steps (each in a fresh child process, so peak RSS is per step):

1. ``setup`` (not timed): a synthetic panel of daily excess returns (drifting betas, 30 %
   late listings, 10 % delistings, 0.5 % missing days) written into ``returns.daily`` and
   the Fama-French-like series into ``raw.market`` of a temporary DuckDB file with the
   project's warehouse module.
2. ``run`` per estimator set (timed): the asset's core path with fixed parameters (EW
   half-life and Kalman q/h given, no tuning): ``beta_tables.read_returns_wide``,
   ``factor_frame`` + ``Panel.from_wide``, ``beta_tables.estimate_arrow`` and
   ``warehouse.replace_window_chunks`` into ``betas.daily`` over the whole history
   (``--path frames``: the earlier path, ``.df()``, ``Panel.build`` and ``estimate``'s long
   frames), timed per phase (wall and process CPU) with the peak RSS of each phase (a
   sampling thread on /proc/self/status) and of the process.
3. ``leaderboard``: ``hedging_sql.leaderboard`` on the written table.
4. ``tune``: the asset's tuning work (EW half-life grid, Kalman MLE on the training rows),
   timed separately.

``--checksum FILE`` writes per (model, estimator, factor) row counts and an exact hash of
every written value (and a sample of rows) so two code versions can be compared bit for bit;
``--compare FILE`` checks against such a file. Results go to ``benchmarks/results/
daily_betas[_quick].md`` and ``.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from beta_pipeline.lib import beta_tables, hedging_sql, warehouse  # noqa: E402

FF_SERIES = ("mkt_rf", "smb", "hml", "rmw", "cma")
EW_HALF_LIFE = 42.0  # fixed half-life in the timed run (the asset tunes it once, then stores)
KALMAN_Q, KALMAN_H = 2e-6, 4e-4  # fixed Kalman variances in the timed run
SETS = {"ols": "ols_60, ols_252", "full": "beta_tables.daily_specs() (9 estimators)"}
TARGET_S, TARGET_GB = 60.0, 8.0


# ----------------------------------------------------------------------------- measuring


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


class Meter:
    """Wall/CPU seconds and peak RSS per named phase (phases may repeat and accumulate).

    A daemon thread samples VmRSS every ``interval`` seconds and raises the peak of every
    open phase; the process peak is VmHWM (kernel high-water mark) at the end.
    """

    def __init__(self, interval: float = 0.02, abort_gib: float | None = None) -> None:
        self.abort_kib = abort_gib * 2**20 if abort_gib else None
        self.phases: dict[str, dict[str, float]] = {}
        self.open: dict[str, int] = {}
        self.interval = interval
        self.peak_kib = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        while not self._stop.wait(self.interval):
            kib = _status_kib("VmRSS")
            self._bump(kib)
            if self.abort_kib and kib > self.abort_kib:  # protect a shared machine
                open_now = ", ".join(self.open)
                print(f"ABORT: RSS {kib / 2**20:.1f} GiB > --rss-abort in {open_now}", flush=True)
                out = os.environ.get("BENCH_OUT")
                if out:
                    with open(out, "w") as fh:
                        json.dump({"failed": 3, "aborted_in": open_now,
                                   "abort_rss_kib": kib, "partial": self.phases}, fh)
                os._exit(3)

    def _bump(self, kib: int) -> None:
        with self._lock:
            self.peak_kib = max(self.peak_kib, kib)
            for name in self.open:
                ph = self.phases[name]
                ph["rss_kib"] = max(ph["rss_kib"], kib)

    def _get(self, name: str) -> dict[str, float]:
        return self.phases.setdefault(
            name, {"wall": 0.0, "cpu": 0.0, "rss_kib": 0, "rows": 0, "calls": 0}
        )

    def start(self, name: str) -> tuple[str, float, float]:
        with self._lock:
            self._get(name)
            self.open[name] = self.open.get(name, 0) + 1
        self._bump(_status_kib("VmRSS"))
        return name, time.perf_counter(), time.process_time()

    def stop(self, token: tuple[str, float, float], rows: int = 0) -> float:
        name, w0, c0 = token
        wall, cpu = time.perf_counter() - w0, time.process_time() - c0
        self._bump(_status_kib("VmRSS"))
        with self._lock:
            ph = self.phases[name]
            ph["wall"] += wall
            ph["cpu"] += cpu
            ph["rows"] += rows
            ph["calls"] += 1
            self.open[name] -= 1
            if not self.open[name]:
                del self.open[name]
        return wall

    def add(self, name: str, wall: float, cpu: float, rows: int = 0) -> None:
        """Account time measured elsewhere (e.g. a remainder) to a phase."""
        with self._lock:
            ph = self._get(name)
            ph["wall"] += wall
            ph["cpu"] += cpu
            ph["rows"] += rows

    def phase(self, name: str):
        meter = self

        class _Ctx:
            rows = 0

            def __enter__(self):
                self.tok = meter.start(name)
                return self

            def __exit__(self, *exc):
                meter.stop(self.tok, self.rows)

        return _Ctx()

    def close(self) -> dict[str, Any]:
        self._stop.set()
        self._thread.join()
        return {
            "phases": self.phases,
            "peak_sampled_kib": self.peak_kib,
            "vmhwm_kib": _status_kib("VmHWM"),
            "ru_maxrss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
        }


class TimedConn:
    """Pass-through DuckDB connection that times execute() by statement kind."""

    def __init__(self, conn, meter: Meter) -> None:
        self._conn, self._meter = conn, meter

    def execute(self, sql: str, *args: Any):
        kind = sql.split(None, 1)[0].upper()
        name = {
            "DELETE": "write: DELETE window",
            "INSERT": "write: INSERT",
            "COMMIT": "write: COMMIT",
            "BEGIN": "write: BEGIN",
        }.get(kind, f"write: {kind}")
        tok = self._meter.start(name)
        try:
            return self._conn.execute(sql, *args)
        finally:
            self._meter.stop(tok)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conn, name)


def _burn(seconds: float) -> int:
    end, n = time.perf_counter() + seconds, 0
    while time.perf_counter() < end:
        n += 1
    return n


def effective_cores(seconds: float = 1.0) -> float:
    """CPU capacity this process gets right now: the work two busy processes do in
    ``seconds`` over the work one does (2.0 on two free cores; other jobs lower it)."""
    import multiprocessing as mp

    one = _burn(seconds)
    with mp.get_context("fork").Pool(2) as pool:
        two = sum(pool.map(_burn, [seconds, seconds]))
    return round(two / one, 2)


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


def setup(db: Path, n: int, t: int) -> dict[str, Any]:
    """Write returns.daily and raw.market into ``db`` with the warehouse module."""
    t0 = time.perf_counter()
    d = synthetic(n, t)
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
    mkt_excess = f[:, 0]
    frame = pd.DataFrame(
        {
            "date": dates.to_numpy()[t_idx],
            "symbol": pd.Categorical.from_codes(
                s_idx.astype(np.int32), categories=[f"S{i:05d}" for i in range(n)]
            ),
            "prev_date": prev_date,
            "ret": ret,
            "log_ret": np.log1p(ret),
            "ret_excess": ret_excess,
            "mkt_excess": mkt_excess[t_idx],
        }
    )
    n_rows = len(frame)
    market = pd.DataFrame(
        {
            "date": np.tile(dates.to_numpy(), len(FF_SERIES)),
            "series": np.repeat(np.array(FF_SERIES, dtype=object), t),
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
        "cells": n * t,
        "start": str(lo.date()),
        "end": str(hi.date()),
        "seconds": time.perf_counter() - t0,
        "db_mib": db.stat().st_size / 2**20,
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

READ_SQL = (
    "SELECT date, symbol, ret_excess, mkt_excess FROM returns.daily WHERE date < ? "
    "ORDER BY date, symbol"
)


def run(
    db: Path, which: str, models: list[str], start: str, end: str,
    overlap: bool | None = None, read: str = "asset", path: str = "arrow",
) -> dict[str, Any]:
    """The asset's core path on the whole history, instrumented per phase.

    ``path="arrow"`` (what daily_betas does): ``read_returns_wide`` + ``Panel.from_wide`` +
    ``estimate_arrow`` (record batches cut from the estimators' arrays inside the insert);
    ``path="frames"`` (the asset before): ``read`` ("asset": ``.df()``, or "arrow":
    ``read_returns``) + ``Panel.build`` + ``estimate``'s long frames."""
    if path == "arrow":
        read = "wide"
    meter = Meter(abort_gib=_abort_gib())
    lo, hi = pd.Timestamp(start), pd.Timestamp(end)
    specs = specs_for(which)
    load0 = os.getloadavg()
    tok_total = meter.start("total")

    # estimator and unpivot time inside beta_tables.estimate (module-level names)
    unpivot_name = "_unpivot" if hasattr(beta_tables, "_unpivot") else "unpivot"
    orig_run, orig_unpivot = beta_tables._run, getattr(beta_tables, unpivot_name)

    observed: dict[int, int] = {}

    def timed_run(panel, spec, *a, **kw):
        tok = meter.start(f"estimate: {spec.name}")
        try:
            return orig_run(panel, spec, *a, **kw)
        finally:
            meter.stop(tok, observed.get(id(panel), 0))

    def timed_unpivot(*a, **kw):
        tok = meter.start("unpivot (wide arrays -> long columns)")
        out = orig_unpivot(*a, **kw)
        meter.stop(tok, len(out))
        return out

    beta_tables._run = timed_run
    setattr(beta_tables, unpivot_name, timed_unpivot)
    orig_batches = getattr(beta_tables, "_arrow_batches", None)
    batches_name = "arrow batches (cut from the arrays, in the insert thread)"

    def timed_batches(*a, **kw):
        gen = orig_batches(*a, **kw)
        while True:
            tok = meter.start(batches_name)
            try:
                batch = next(gen)
            except StopIteration:
                meter.stop(tok)
                return
            meter.stop(tok, batch.num_rows)
            yield batch

    if orig_batches is not None:
        beta_tables._arrow_batches = timed_batches

    if read == "wide":
        tok = meter.start("read (asset: beta_tables.read_returns_wide: codes, numpy pivot)")
    elif read == "asset":
        tok = meter.start("read (asset: SELECT ... ORDER BY, .df(), to_datetime)")
    else:
        tok = meter.start("read (beta_tables.read_returns: Arrow, categorical symbol)")
    with warehouse.open_warehouse(db, read_only=True) as conn:
        if read == "wide":
            wide = beta_tables.read_returns_wide(conn, hi)
        elif read == "asset":
            returns = conn.execute(READ_SQL, [hi.date()]).df()
        else:
            returns = beta_tables.read_returns(conn, hi)
        market = warehouse.read_window(conn, "raw.market", None, hi)
    if read == "wide":
        returns = wide.date_frame()
        n_in = wide.rows
    else:
        if read == "asset":
            returns["date"] = pd.to_datetime(returns["date"])
        n_in = len(returns)
    meter.stop(tok, n_in)
    pieces_out: list[Any] = []

    gen_wall = [0.0, 0.0]
    counts: dict[str, int] = {}

    def pieces() -> Iterator[pd.DataFrame]:
        for model in models:
            tok = meter.start("pivot (factor_frame + Panel.from_wide | Panel.build)")
            factors = beta_tables.factor_frame(model, returns, market)
            if factors is None:
                meter.stop(tok)
                continue
            if read == "wide":
                panel = beta_tables.Panel.from_wide(wide, factors)
            else:
                panel = beta_tables.Panel.build(returns, factors)
            meter.stop(tok, n_in)
            observed[id(panel)] = int(np.isfinite(panel.y).sum())
            if path == "arrow":
                it = beta_tables.estimate_arrow(panel, model, specs, lo, hi)
            else:
                it = beta_tables.estimate(panel, model, specs, lo, hi)
            while True:
                w0, c0 = time.perf_counter(), time.process_time()
                r0 = sum(p["wall"] for k, p in meter.phases.items() if _inner(k))
                rc0 = sum(p["cpu"] for k, p in meter.phases.items() if _inner(k))
                try:
                    frame = next(it)
                except StopIteration:
                    frame = None
                w, c = time.perf_counter() - w0, time.process_time() - c0
                r1 = sum(p["wall"] for k, p in meter.phases.items() if _inner(k))
                rc1 = sum(p["cpu"] for k, p in meter.phases.items() if _inner(k))
                gen_wall[0] += w
                gen_wall[1] += c
                # what estimate() does besides the estimator and unpivot: the frame work
                if path != "arrow":
                    meter.add(
                        "long frame (estimate() after unpivot)",
                        w - (r1 - r0),
                        c - (rc1 - rc0),
                        0 if frame is None else len(frame),
                    )
                if frame is None:
                    break
                if path == "arrow":
                    pieces_out.append(frame)
                else:
                    counts[f"{model}/{frame['estimator'].iloc[0]}"] = len(frame)
                yield frame

    sub = "write: replace_window_chunks outside the generator (main thread)"
    kw = {} if overlap is None else {"overlap": overlap}
    tok = meter.start("write: connect (warehouse.connect)")
    conn = warehouse.connect(db)
    meter.stop(tok)
    try:
        tok = meter.start(sub)
        n_out = warehouse.replace_window_chunks(
            TimedConn(conn, meter), "betas.daily", pieces(), lo, hi, **kw
        )
        meter.stop(tok, n_out)
    finally:
        tok = meter.start("write: close (checkpoint)")
        conn.close()
        meter.stop(tok)
    beta_tables._run = orig_run
    setattr(beta_tables, unpivot_name, orig_unpivot)
    if orig_batches is not None:
        beta_tables._arrow_batches = orig_batches
    counts.update({p.label: p.rows for p in pieces_out if p.rows})
    # the generator ran inside replace_window_chunks: take its time out of the write
    meter.phases[sub]["wall"] -= gen_wall[0]
    meter.phases[sub]["cpu"] -= gen_wall[1]
    meter.stop(tok_total, n_in)

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
        counts=counts,
        load_start=load0,
        load_end=os.getloadavg(),
        specs=[s.name for s in specs],
        models=models,
    )
    return out


def _inner(name: str) -> bool:
    return name.startswith("estimate: ") or name == "unpivot (wide arrays -> long columns)"


def _abort_gib() -> float | None:
    return float(os.environ.get("BENCH_RSS_ABORT_GIB", "0")) or None


def leaderboard(db: Path, memory_limit: str | None = None) -> dict[str, Any]:
    meter = Meter(abort_gib=_abort_gib())
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


def tune(db: Path, models: list[str], end: str) -> dict[str, Any]:
    """The asset's tuning work (not part of the timed core): EW grid and Kalman MLE."""
    meter = Meter(abort_gib=_abort_gib())
    hi = pd.Timestamp(end)
    with warehouse.open_warehouse(db, read_only=True) as conn:
        returns = conn.execute(READ_SQL, [hi.date()]).df()
        market = warehouse.read_window(conn, "raw.market", None, hi)
    returns["date"] = pd.to_datetime(returns["date"])
    grid = [5, 10, 21, 42, 63, 126, 252]  # DailyBetasConfig.ewm_half_life_grid
    specs = {s.kind: s for s in beta_tables.daily_specs()}
    found: dict[str, Any] = {}
    for model in models:
        factors = beta_tables.factor_frame(model, returns, market)
        if factors is None:
            continue
        panel = beta_tables.Panel.build(returns, factors)
        with meter.phase(f"tune: EW half-life grid ({model}, {len(grid)} half-lives)"):
            best, _ = beta_tables.tune_ewm(panel, specs["ewm"], grid)
        found[f"{model}_half_life"] = best
        if len(panel.factors) == 1:
            train, _ = beta_tables.split_rows(len(panel.dates))
            with meter.phase(f"tune: Kalman MLE on training rows ({model})"):
                fit = beta_tables.fit_kalman(
                    beta_tables.Panel(
                        panel.dates[: train.stop], panel.symbols, panel.factors,
                        panel.y[: train.stop], panel.x[: train.stop],
                    )
                )
            found[f"{model}_q_over_h"] = float(np.nanmedian(fit["q"] / fit["h"]))
    out = meter.close()
    out["found"] = found
    return out


def checksum(db: Path) -> dict[str, Any]:
    """Counts and exact hashes of every written value per (model, estimator, factor)."""
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


# ----------------------------------------------------------------------------- driver


def _load_code(folder: Path) -> None:
    """Replace beta_tables / warehouse (module objects used here and by hedging_sql) with
    the files of the same name in ``folder``."""
    import importlib.util

    global beta_tables, warehouse
    for name in ("warehouse", "beta_tables"):
        path = folder / f"{name}.py"
        if not path.exists():
            continue
        full = f"beta_pipeline.lib.{name}"
        spec = importlib.util.spec_from_file_location(full, path)
        mod = importlib.util.module_from_spec(spec)
        sys.modules[full] = mod
        spec.loader.exec_module(mod)
        setattr(sys.modules["beta_pipeline.lib"], name, mod)
        globals()[name] = mod
        print(f"  (using {path})", flush=True)


def child(step: str, **kw: Any) -> dict[str, Any]:
    """Run one step in a fresh interpreter (its own peak RSS); returns its JSON result."""
    with tempfile.NamedTemporaryFile("r", suffix=".json", delete=False) as fh:
        out_path = fh.name
    cmd = [sys.executable, __file__, "--_step", step, "--_out", out_path]
    for key, value in kw.items():
        cmd += [f"--_{key}", str(value)]
    env = dict(os.environ, PYTHONUNBUFFERED="1", BENCH_OUT=out_path)
    proc = subprocess.run(cmd, env=env)
    if proc.returncode:
        data = {"failed": proc.returncode}
        with open(out_path) as fh:
            text = fh.read()
        if text:
            data = json.loads(text)
        os.unlink(out_path)
        return data
    with open(out_path) as fh:
        data = json.load(fh)
    os.unlink(out_path)
    return data


def _gib(kib: float) -> float:
    return kib / 2**20


def fmt_rate(rows: float, wall: float) -> str:
    return f"{rows / wall / 1e6:,.1f} M" if wall > 0 and rows else ""


def phase_table(res: dict[str, Any]) -> list[str]:
    ph = res["phases"]
    total = ph["total"]
    groups = ("read", "pivot", "estimate: ", "unpivot", "long frame", "arrow batches",
              "write: connect",
              "write: BEGIN",
              "write: DELETE", "write: INSERT", "write: COMMIT", "write: repl", "write: SELECT",
              "write: RESET", "write: SET", "write: close")
    order = [k for g in groups for k in ph if k.startswith(g)]
    lines = [
        "| phase | wall s | CPU s | rows | rows/s (wall) | peak RSS in phase GiB |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for k in order:
        p = ph[k]
        rss = f"{_gib(p['rss_kib']):.2f}" if p.get("calls") else "(interleaved)"
        lines.append(
            f"| {k} | {p['wall']:.2f} | {p['cpu']:.2f} | {int(p['rows']):,} | "
            f"{fmt_rate(p['rows'], p['wall'])} | {rss} |"
        )
    lines.append(
        f"| **total (read → write committed)** | **{total['wall']:.2f}** | {total['cpu']:.2f} | "
        f"{int(res['rows_in']):,} in / {int(res['rows_out']):,} out | "
        f"{fmt_rate(res['rows_in'], total['wall'])} in, "
        f"{fmt_rate(res['rows_out'], total['wall'])} out | "
        f"**{_gib(res['vmhwm_kib']):.2f}** (VmHWM) |"
    )
    for k in ph:
        if k.startswith("after:"):
            p = ph[k]
            lines.append(
                f"| {k} (not in total) | {p['wall']:.2f} | {p['cpu']:.2f} |  |  | "
                f"{_gib(p['rss_kib']):.2f} |"
            )
    return lines


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
        help="kill a timed run whose RSS exceeds this many GiB (protects a shared machine)",
    )
    ap.add_argument("--tag", default="", help="suffix of the results file names")
    ap.add_argument(
        "--code-from",
        help="folder with other versions of beta_tables.py and/or warehouse.py to time "
        "instead of the package's (before/after comparisons)",
    )
    ap.add_argument(
        "--overlap", choices=("default", "on", "off"), default="default",
        help="replace_window_chunks(overlap=...): insert piece k while piece k+1 is computed "
        "(default: the function's default)",
    )
    ap.add_argument(
        "--path", choices=("arrow", "frames"), default="arrow",
        help="'arrow': what daily_betas does (read_returns_wide, Panel.from_wide, "
        "estimate_arrow: record batches straight from the estimators' arrays); 'frames': the "
        "asset's earlier path (--read, Panel.build, estimate's long frames)",
    )
    ap.add_argument(
        "--read", choices=("asset", "arrow"), default="asset",
        help="with --path frames: 'asset': the earlier asset's SELECT ... ORDER BY + .df(); "
        "'arrow': beta_tables.read_returns (categorical symbols)",
    )
    ap.add_argument(
        "--leaderboard-memory-limit",
        help="DuckDB memory_limit for the leaderboard query (default: DuckDB's, as the asset)",
    )
    for hidden in ("step", "out", "db_path", "which", "models_list", "start", "end",
                   "overlap", "read", "path", "memory_limit"):
        ap.add_argument(f"--_{hidden}", help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args._step:  # child process
        if os.environ.get("BENCH_CODE_FROM"):
            _load_code(Path(os.environ["BENCH_CODE_FROM"]))
        db = Path(args._db_path)
        if args._step == "setup":
            n, t = map(int, args._which.split("x"))
            res = setup(db, n, t)
        elif args._step == "run":
            overlap = None if args._overlap in (None, "default") else args._overlap == "on"
            res = run(
                db, args._which, args._models_list.split(","), args._start, args._end,
                overlap=overlap, read=args._read or "asset", path=args._path or "arrow",
            )
        elif args._step == "leaderboard":
            res = leaderboard(db, args._memory_limit or None)
        elif args._step == "tune":
            res = tune(db, args._models_list.split(","), args._end)
        elif args._step == "checksum":
            res = checksum(db)
        else:
            raise SystemExit(args._step)
        with open(args._out, "w") as fh:
            json.dump(res, fh, default=str)
        return

    os.environ["BENCH_RSS_ABORT_GIB"] = str(args.rss_abort)
    if args.code_from:
        os.environ["BENCH_CODE_FROM"] = str(Path(args.code_from).resolve())
    n, t = (1000, 2000) if args.quick else (args.stocks, args.days)
    items = [x.strip() for x in args.estimators.split(",") if x.strip()]
    sets = [x for x in items if x in SETS]  # each named set is one timed run
    custom = [x for x in items if x not in SETS]
    if custom:  # spec names of daily_specs(): one more run with just those
        sets.append(",".join(custom))
    tmp = tempfile.TemporaryDirectory(prefix="bench_daily_betas_")
    db = Path(args.db) if args.db else Path(tmp.name) / "warehouse.duckdb"
    info: dict[str, Any] = {
        "stocks": n, "days": t, "models": args.models, "cores": os.cpu_count(),
        "duckdb": __import__("duckdb").__version__, "numpy": np.__version__,
        "pandas": pd.__version__, "path": args.path,
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
        info["setup"] = child("setup", db_path=db, which=f"{n}x{t}")
        s = info["setup"]
        print(f"  {s['rows']:,} return rows in {s['seconds']:.1f}s, {s['db_mib']:.0f} MiB", flush=True)  # noqa: E501
    start, end = info["setup"]["start"], info["setup"]["end"]
    results: dict[str, Any] = {"info": info, "runs": {}}
    for which in sets:
        cores = effective_cores()
        print(f"run: estimators={which} models={args.models} (effective cores {cores}) ...",
              flush=True)
        res = child(
            "run", db_path=db, which=which, models_list=args.models, start=start, end=end,
            overlap=args.overlap, read=args.read, path=args.path,
        )
        res["effective_cores_before"] = cores
        res["effective_cores_after"] = effective_cores()
        results["runs"][which] = res
        if "failed" in res:
            print(f"  run failed (exit {res['failed']}) {res.get('aborted_in', '')}", flush=True)
            for k, p in res.get("partial", {}).items():
                print(f"    {k}: {p['wall']:.2f}s wall {p['cpu']:.2f}s CPU "
                      f"peak {_gib(p['rss_kib']):.2f} GiB", flush=True)
            continue
        tot = res["phases"]["total"]
        print(
            f"  total {tot['wall']:.1f}s wall, {tot['cpu']:.1f}s CPU, "
            f"{res['rows_out']:,} rows out, VmHWM {_gib(res['vmhwm_kib']):.2f} GiB, "
            f"load {res['load_start'][0]:.1f}->{res['load_end'][0]:.1f}",
            flush=True,
        )
        print("\n".join(phase_table(res)), flush=True)
    if args.checksum or args.compare:
        cs = child("checksum", db_path=db)
        if args.checksum:
            Path(args.checksum).write_text(json.dumps(cs, indent=1, default=str))
            print(f"checksum of the last set written to {args.checksum}")
        if args.compare:
            ref = json.loads(Path(args.compare).read_text())
            same = ref["groups"] == cs["groups"] and ref["sample"] == cs["sample"]
            results["compare"] = {"file": args.compare, "identical": same}
            print(f"compare with {args.compare}: {'IDENTICAL' if same else 'DIFFERENT'}")
            if not same:
                a = pd.DataFrame(ref["groups"])
                b = pd.DataFrame(cs["groups"])
                print(a.compare(b) if a.shape == b.shape else (a, b))
                sys.exit(1)
    if not args.no_leaderboard:
        print("leaderboard (hedging_sql.leaderboard on the last set) ...", flush=True)
        lb = child("leaderboard", db_path=db, memory_limit=args.leaderboard_memory_limit or "")
        results["leaderboard"] = lb
        if "failed" in lb:
            print(f"  failed (exit {lb['failed']}) {lb.get('aborted_in', '')}", flush=True)
        else:
            p = lb["phases"]["hedging_sql.leaderboard"]
            print(f"  {p['wall']:.1f}s wall, {p['cpu']:.1f}s CPU, "
                  f"VmHWM {_gib(lb['vmhwm_kib']):.2f} GiB")
    if not args.no_tune:
        print("tuning (not in the timed path) ...", flush=True)
        tu = child("tune", db_path=db, models_list=args.models, end=end)
        results["tune"] = tu
        for k, p in tu.get("phases", tu.get("partial", {})).items():
            print(f"  {k}: {p['wall']:.1f}s wall, {p['cpu']:.1f}s CPU")

    text = report(results, args.quick)
    print(text)
    out_dir = ROOT / "benchmarks" / "results"
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = "daily_betas" + ("_quick" if args.quick else "") + (f"_{args.tag}" if args.tag else "")
    (out_dir / f"{stem}.md").write_text(text)
    (out_dir / f"{stem}.json").write_text(json.dumps(results, indent=1, default=str))
    tmp.cleanup()


def report(results: dict[str, Any], quick: bool) -> str:
    info = results["info"]
    s = info["setup"]
    lines = [
        f"# daily_betas backfill benchmark{' (--quick)' if quick else ''}",
        "",
        f"{info['stocks']:,} stocks × {info['days']:,} days ({s['rows']:,} observed return rows), "
        f"models {info['models']}; {info['cores']} cores; duckdb {info['duckdb']}, "
        f"numpy {info['numpy']}, pandas {info['pandas']}; path `{info.get('path', 'frames')}`.",
        "",
        "| estimator set | output rows | total wall s | total CPU s | input rows/s | "
        "output rows/s | peak RSS GiB (VmHWM) | load avg start→end | effective cores "
        "before/after | ≤ 60 s | ≤ 8 GB |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- | --- | --- |",
    ]
    for which, res in results["runs"].items():
        if "failed" in res:
            where = res.get("aborted_in", "")
            rss = _gib(res.get("abort_rss_kib", 0))
            lines.append(
                f"| {which} | aborted: RSS {rss:.1f} GiB > --rss-abort in {where} "
                f"(exit {res['failed']}) |  |  |  |  |  |  |  |  | no |"
            )
            continue
        tot = res["phases"]["total"]
        gb = res["vmhwm_kib"] * 1024 / 1e9
        lines.append(
            f"| {which}: {', '.join(res['specs'])} | {res['rows_out']:,} | {tot['wall']:.1f} | "
            f"{tot['cpu']:.1f} | {fmt_rate(res['rows_in'], tot['wall'])} | "
            f"{fmt_rate(res['rows_out'], tot['wall'])} | {_gib(res['vmhwm_kib']):.2f} | "
            f"{res['load_start'][0]:.1f}→{res['load_end'][0]:.1f} | "
            f"{res['effective_cores_before']}/{res['effective_cores_after']} | "
            f"{'yes' if tot['wall'] <= TARGET_S else 'no'} | {'yes' if gb <= TARGET_GB else 'no'} |"
        )
    for which, res in results["runs"].items():
        if "failed" not in res:
            lines += ["", f"## Phases: {which}", "", *phase_table(res)]
    if "leaderboard" in results and "failed" in results["leaderboard"]:
        lb = results["leaderboard"]
        lines += ["", "## hedging_sql.leaderboard on the last set", "",
                  f"aborted: RSS {_gib(lb.get('abort_rss_kib', 0)):.1f} GiB > --rss-abort."]
    elif "leaderboard" in results:
        lb = results["leaderboard"]
        p = lb["phases"]["hedging_sql.leaderboard"]
        lines += [
            "",
            "## hedging_sql.leaderboard on the last set",
            "",
            f"{p['wall']:.1f} s wall, {p['cpu']:.1f} s CPU, peak RSS "
            f"{_gib(lb['vmhwm_kib']):.2f} GiB, {lb['rows']} leaderboard rows; load "
            f"{lb['load_start'][0]:.1f}→{lb['load_end'][0]:.1f}.",
        ]
    if "tune" in results and "failed" not in results["tune"]:
        tu = results["tune"]
        lines += ["", "## Tuning (separate, not in the totals)", "",
                  "| step | wall s | CPU s |", "| --- | ---: | ---: |"]
        for k, p in tu["phases"].items():
            lines.append(f"| {k} | {p['wall']:.1f} | {p['cpu']:.1f} |")
        lines.append(f"\nfound: {tu['found']}; peak RSS {_gib(tu['vmhwm_kib']):.2f} GiB")
    if "compare" in results:
        c = results["compare"]
        lines += ["", f"Output compared with {c['file']}: {'identical' if c['identical'] else 'DIFFERENT'}."]  # noqa: E501
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
