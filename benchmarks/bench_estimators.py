"""Benchmark of the beta-estimator core against common alternatives.

Run from the repository root: ``python benchmarks/bench_estimators.py [--quick]``. Prints a
Markdown table and writes it to ``benchmarks/results/estimators[_quick].md`` (and ``.json``).

"rows" are (symbol, date) observations of the long return table; every method is timed in
the same run, peers that are too slow for the full panel on a subset and extrapolated
linearly (marked in the table). Each row also has the peak RSS of the process while it was
measured (the panel's arrays included).
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from harness import Clock, Meter, Timing, best_of, gib, machine, md_table, write_results  # noqa: E402

from beta_pipeline.lib.estimators import (  # noqa: E402
    estimate_betas_long,
    ew_wls,
    fit_kalman_mle,
    kalman_filter,
    rolling_ols,
)
from beta_pipeline.lib.estimators.kalman_mle import fit_kalman_panel  # noqa: E402

WINDOW, MIN_OBS = 60, 48
DATA = ROOT.parent / "shared" / "data"


def synthetic_panel(n: int, t: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(T, N) excess returns with drifting betas, late listings, delistings and gaps."""
    rng = np.random.default_rng(seed)
    x = rng.normal(0.0003, 0.01, t)
    beta = rng.normal(1.0, 0.4, n) + np.cumsum(rng.normal(0, 0.002, (t, n)), axis=0)
    y = beta * x[:, None] + rng.normal(0, 1, (t, n)) * rng.uniform(0.01, 0.03, n)
    start = np.where(rng.random(n) < 0.3, rng.integers(0, t // 2, n), 0)
    stop = np.where(rng.random(n) < 0.1, rng.integers(t // 2, t, n), t)
    rows = np.arange(t)[:, None]
    y[(rows < start) | (rows >= stop)] = np.nan
    y[rng.random((t, n)) < 0.005] = np.nan
    return y, x


def to_long(y: np.ndarray, x: np.ndarray, dates: pd.DatetimeIndex) -> pd.DataFrame:
    """Long (date, symbol, y, x) table of the observed cells."""
    t_idx, s_idx = np.nonzero(np.isfinite(y))
    return pd.DataFrame(
        {
            "date": dates[t_idx],
            "symbol": pd.Categorical.from_codes(
                s_idx, categories=[f"S{i:05d}" for i in range(y.shape[1])]
            ),
            "y": y[t_idx, s_idx],
            "x": x[t_idx],
        }
    )


def tidy_loop(df: pd.DataFrame, n_windows: int) -> tuple[Timing, int]:
    """Tidy Finance's per-window ``smf.ols`` loop on one stock; (seconds, windows)."""
    import statsmodels.formula.api as smf

    data = df.rename(columns={"y": "ret_excess", "x": "mkt_excess"}).sort_values("date")
    dates = data["date"].drop_duplicates().reset_index(drop=True)
    done = 0
    with Clock() as c:
        for i in range(WINDOW - 1, min(len(dates), WINDOW - 1 + n_windows)):
            lo, hi = dates[i - WINDOW + 1], dates[i]  # noqa: F841 (used by query)
            window = data.query("date >= @lo and date <= @hi")
            if len(window) >= MIN_OBS:
                fit = smf.ols("ret_excess ~ mkt_excess", data=window).fit()
                _ = fit.summary2().tables[1], fit.rsquared
            done += 1
    return (c.wall, c.cpu), done


def rolling_ols_sm(y: np.ndarray, x: np.ndarray, cols: np.ndarray) -> Timing:
    """statsmodels RollingOLS per series (full output); seconds for ``cols``."""
    import statsmodels.api as sm
    from statsmodels.regression.rolling import RollingOLS

    exog = sm.add_constant(x)
    with Clock() as c:
        for i in cols:
            res = RollingOLS(y[:, i], exog, window=WINDOW, min_nobs=MIN_OBS, expanding=True).fit()
            _ = res.params, res.rsquared, res.mse_resid, res.bse, res.nobs
    return c.wall, c.cpu


def duckdb_windows(long: pd.DataFrame) -> Timing:
    """DuckDB regr_* window functions over the long table; seconds (result materialised)."""
    import duckdb

    con = duckdb.connect()
    con.execute(f"SET threads={os.cpu_count() or 1}")
    con.register("src", long)
    con.execute("CREATE TABLE r AS SELECT date, CAST(symbol AS VARCHAR) AS symbol, y, x FROM src")
    with Clock() as c:
        con.execute(
            f"""CREATE TABLE o AS SELECT symbol, date,
          regr_slope(y, x) OVER w AS beta, regr_intercept(y, x) OVER w AS alpha,
          regr_r2(y, x) OVER w AS r2, regr_count(y, x) OVER w AS n_obs
        FROM r WINDOW w AS (PARTITION BY symbol ORDER BY date
          ROWS BETWEEN {WINDOW - 1} PRECEDING AND CURRENT ROW)"""
        )
    con.close()
    return c.wall, c.cpu


def tidyfinance_betas(long: pd.DataFrame) -> Timing | None:
    """``tidyfinance.estimate_betas`` (polars, integer lookback); seconds or None."""
    try:
        import polars as pl
        from tidyfinance import estimate_betas
    except ImportError:
        return None
    data = pl.from_pandas(
        long.assign(permno=long["symbol"].cat.codes.astype(np.int32))[["permno", "date", "y", "x"]]
    ).rename({"y": "ret_excess", "x": "mkt_excess"})
    with warnings.catch_warnings(), Clock() as c:
        warnings.simplefilter("ignore")
        estimate_betas(data, "ret_excess ~ mkt_excess", lookback=WINDOW, min_obs=MIN_OBS)
    return c.wall, c.cpu


def kaggle_panel() -> tuple[pd.DataFrame, pd.DataFrame] | None:
    """Kaggle S&P 500 5-year file: simple returns against ^GSPC Adj Close returns."""
    path = DATA / "all_stocks_5yr.csv.gz"
    if not path.exists():
        return None
    px = pd.read_csv(path, usecols=["date", "close", "Name"], parse_dates=["date"])
    px = px.sort_values(["Name", "date"])
    px["y"] = px.groupby("Name")["close"].pct_change(fill_method=None)
    gspc_path = DATA / "gspc_daily.csv.gz"
    if gspc_path.exists():
        g = pd.read_csv(gspc_path, usecols=["Date", "Adj Close"], parse_dates=["Date"])
        mkt = g.set_index("Date")["Adj Close"].pct_change(fill_method=None)
    else:
        mkt = px.groupby("date")["y"].mean()
    dates = pd.DatetimeIndex(sorted(px["date"].unique()))
    factors = pd.DataFrame({"mkt": mkt.reindex(dates)}, index=dates)
    ret = px.dropna(subset=["y"]).rename(columns={"Name": "symbol"})[["date", "symbol", "y"]]
    return ret.reset_index(drop=True), factors


def fmt(v: float) -> str:
    if not np.isfinite(v):
        return "n/a"
    if v >= 100:
        return f"{v:,.0f}"
    return f"{v:.3g}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="small panel, < 1 minute")
    args = ap.parse_args()
    quick = args.quick
    n, t = (400, 1500) if quick else (5000, 6000)
    info = machine("numpy", "pandas", "duckdb")
    rows: list[dict[str, str]] = []
    ref: dict[str, Timing] = {}
    meter = Meter(interval=0.05)
    since = [meter.start("since the previous row")]  # peak RSS of each row's measurement

    def add(method: str, scope: str, tm: Timing, n_rows: float, base: str | None) -> None:
        """One table row; ``base`` names our row the ratios are taken against."""
        wall, cpu = tm
        meter.stop(since[0], record=False)
        peak = gib(since[0].peak_kib) * 1024
        since[0] = meter.start("since the previous row")
        ratio = cpu_ratio = "1"
        if base is None:
            ref[method] = (wall / n_rows, cpu / n_rows)
        else:
            bw, bc = ref[base]
            ratio = f"{fmt((wall / n_rows) / bw)}×"
            cpu_ratio = f"{fmt((cpu / n_rows) / bc)}×"
        rows.append(
            {
                "method": method,
                "measured on": scope,
                "wall s": f"{wall:.3g}",
                "rows/s (wall)": fmt(n_rows / wall),
                "rows per CPU-s": fmt(n_rows / cpu) if cpu > 0 else "n/a",
                "ours ÷ method (wall)": ratio,
                "ours ÷ method (CPU)": cpu_ratio,
                "peak RSS MiB": f"{peak:,.0f}",
            }
        )
        print(
            f"  {method}: {wall:.3f}s wall, {cpu:.3f}s CPU, {n_rows / wall:,.0f} rows/s, "
            f"peak RSS {peak:,.0f} MiB",
            flush=True,
        )

    def gap() -> None:
        rows.append(dict.fromkeys(rows[0], ""))

    print(f"synthetic panel {n} stocks × {t} days ...", flush=True)
    y, x = synthetic_panel(n, t)
    dates = pd.bdate_range("1995-01-02", periods=t)
    n_obs = int(np.isfinite(y).sum())
    scope = f"{n:,} × {t:,} ({n_obs / 1e6:.1f} M rows)"
    ours = "ours: rolling OLS engine, full output (arrays)"

    tm, _ = best_of(lambda: rolling_ols(y, x, WINDOW, min_obs=MIN_OBS), repeat=3)
    add(ours, scope, tm, n_obs, None)
    long_df = to_long(y, x, dates)
    factors = pd.DataFrame({"mkt": x}, index=dates)
    tm, out = best_of(
        partial(estimate_betas_long, long_df, factors, "ols", window=WINDOW, min_obs=MIN_OBS),
        repeat=2,
    )
    add("ours: estimate_betas_long (pivot + engine + long output)", scope, tm, n_obs, ours)
    del out
    tm, _ = best_of(lambda: ew_wls(y, x, 20.0, window=WINDOW, min_obs=MIN_OBS), repeat=2)
    add("ours: EW-WLS, half-life 20, window 60", scope, tm, n_obs, ours)
    tm, _ = best_of(lambda: ew_wls(y, x, 60.0, min_obs=MIN_OBS), repeat=2)
    add("ours: EW-WLS, half-life 60, infinite window", scope, tm, n_obs, ours)

    full_col = int(np.argmax(np.isfinite(y).sum(axis=0)))
    one = long_df[long_df["symbol"].cat.codes == full_col]
    tm, done = tidy_loop(one, 20 if quick else 60)
    add("Tidy Finance loop (smf.ols per window)", f"{done} windows, extrapolated", tm, done, ours)

    cols = np.arange(min(n, 5 if quick else 40))
    sub_rows = int(np.isfinite(y[:, cols]).sum())
    tm = rolling_ols_sm(y, x, cols)
    add(
        "statsmodels RollingOLS per series", f"{len(cols)} series, extrapolated", tm, sub_rows, ours
    )

    n_duck = min(n, 200 if quick else 1000)
    sub = long_df[long_df["symbol"].cat.codes < n_duck]
    tm = duckdb_windows(sub)
    add(
        "DuckDB regr_* window functions",
        f"{n_duck} stocks ({len(sub) / 1e6:.1f} M rows)",
        tm,
        len(sub),
        ours,
    )

    n_tf = min(n, 100 if quick else 500)
    sub = long_df[long_df["symbol"].cat.codes < n_tf]
    tm_tf = tidyfinance_betas(sub)
    if tm_tf is not None:
        add(
            "tidyfinance.estimate_betas (betas only)",
            f"{n_tf} stocks ({len(sub) / 1e6:.1f} M rows)",
            tm_tf,
            len(sub),
            ours,
        )
    del long_df, sub

    # Kalman: batched filter vs one statsmodels MLE per series
    kn, kt = (100, 1000) if quick else (500, 3500)
    yk, xk = synthetic_panel(kn, kt, seed=1)
    k_rows = kn * kt
    kscope = f"{kn} series × {kt:,} days"
    kal = "ours: batched Kalman filter (given q, h, alpha)"
    gap()
    tm_f, _ = best_of(lambda: kalman_filter(yk, xk, 1e-5, 4e-4, 0.0), repeat=3)
    add(kal, kscope, tm_f, k_rows, None)
    tm_fit, _ = best_of(lambda: fit_kalman_panel(yk, xk, kt * 2 // 3, method="pooled"))
    add(
        "ours: pooled fit of q/h on 2/3 of the days + batched filter",
        kscope,
        (tm_fit[0] + tm_f[0], tm_fit[1] + tm_f[1]),
        k_rows,
        kal,
    )
    n_mle = 2 if quick else 4
    picks = np.argsort(-np.isfinite(yk).sum(axis=0))[:n_mle]
    with Clock() as c:
        for i in picks:
            fit_kalman_mle(yk[:, i], xk)
    add(
        "statsmodels MLE + filter per series",
        f"{n_mle} series, extrapolated",
        (c.wall, c.cpu),
        n_mle * kt,
        kal,
    )

    kag = kaggle_panel()
    if kag is not None:
        ret, fac = kag
        kg = "ours: estimate_betas_long, Kaggle vs ^GSPC"
        kscope = f"Kaggle 505 stocks ({len(ret) / 1e6:.2f} M rows)"
        gap()
        tm, outk = best_of(
            lambda: estimate_betas_long(ret, fac, "ols", window=WINDOW, min_obs=MIN_OBS),
            repeat=3,
        )
        add(kg, kscope, tm, len(ret), None)
        yw = ret.pivot(index="date", columns="symbol", values="y").reindex(fac.index)
        tm, _ = best_of(
            lambda: rolling_ols(yw.to_numpy(), fac.to_numpy(), WINDOW, min_obs=MIN_OBS), repeat=3
        )
        add("ours: rolling OLS engine (arrays), Kaggle", kscope, tm, len(ret), kg)
        klong = ret.merge(fac, left_on="date", right_index=True).rename(columns={"mkt": "x"})
        klong["symbol"] = klong["symbol"].astype("category")
        add("DuckDB regr_* window functions", kscope, duckdb_windows(klong), len(ret), kg)
        tm_tf = tidyfinance_betas(klong.dropna(subset=["x"]))
        if tm_tf is not None:
            add("tidyfinance.estimate_betas (betas only)", kscope, tm_tf, len(ret), kg)
        print(f"  Kaggle: median beta {outk['beta'].median():.3f}")

    meter.stop(since[0], record=False)
    peak = gib(meter.close()["vmhwm_kib"]) * 1024
    load_end = os.getloadavg()[0]
    header = list(rows[0])
    lines = [
        f"# Beta estimator benchmark{' (--quick)' if quick else ''}",
        "",
        f"Rolling window {WINDOW} rows, min_obs {MIN_OBS}, CAPM with intercept; "
        f"{info['cores']} cores, load average {info['load'][0]:.1f} at start and "
        f"{load_end:.1f} at the end; numpy {info['numpy']}, pandas {info['pandas']}, duckdb "
        f"{info.get('duckdb', '-')}; peak RSS {peak:,.0f} MiB. Ratios compare time per row "
        "with the first 'ours' row above them; 'CPU' counts process CPU seconds (all threads), "
        "which is robust to other load on the machine. A row's peak RSS covers its "
        "measurement and the data prepared for it since the row above.",
        "",
        *md_table(header, ([r[h] for h in header] for r in rows), "llrrrrrr"),
        "",
    ]
    text = "\n".join(lines)
    print(text)
    name = "estimators_quick" if quick else "estimators"
    data = {"info": {**info, "load_end": load_end, "peak_rss_mib": peak}, "rows": rows}
    for path in write_results(name, text, data):
        print(f"written: {path}")


if __name__ == "__main__":
    main()
