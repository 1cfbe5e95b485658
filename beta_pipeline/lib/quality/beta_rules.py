"""Rules of the daily beta table (``daily_betas_sanity``): finite betas (NULL only below an
estimator's minimum observations), bounded market betas, every session with returns covered
once the history is long enough. Pure pandas plus the DuckDB aggregation that feeds them."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from beta_pipeline.lib import beta_tables
from beta_pipeline.lib.quality.outcome import CheckOutcome

if TYPE_CHECKING:  # pragma: no cover
    import duckdb

#: Default bound on |beta| (``BETA_PIPELINE_MAX_ABS_BETA`` overrides it).
MAX_ABS_BETA = float(os.environ.get("BETA_PIPELINE_MAX_ABS_BETA", "10"))
#: Sessions of return history before a session must have betas (the shortest estimator,
#: OLS-60, needs 48 observations; the Tidy Finance 3-month one 50 of 63).
MIN_HISTORY_SESSIONS = 63
#: Minimum observations of the default daily estimators (``beta_tables.daily_specs``).
MIN_OBS: dict[str, int] = {
    s.name: int(s.params.get("min_obs", 0)) for s in beta_tables.daily_specs()
}
#: Offending rows kept per outcome (previews and ``details``).
MAX_LISTED = 20


def _listed(frame: pd.DataFrame, columns: Sequence[str]) -> str:
    head = frame.loc[:, list(columns)].head(5)
    return "; ".join(", ".join(str(v) for v in row) for row in head.itertuples(index=False))


#: Factors whose beta is bounded: the market's (factor loadings on SMB, HML, RMW, CMA over
#: 60-day windows can legitimately be large, e.g. FF5 on the Kaggle file).
MARKET_FACTORS = ("mkt_excess", "mkt_rf")


def check_daily_betas(
    betas: pd.DataFrame,
    returns_dates: pd.DataFrame,
    max_abs_beta: float = MAX_ABS_BETA,
    min_obs: Mapping[str, int] | None = None,
) -> list[CheckOutcome]:
    """The three daily-beta rules on the window's rows (a whole frame; the asset check
    feeds :func:`evaluate_daily_betas` from SQL aggregates instead).

    ``betas``: ``date, symbol, model, estimator, factor, beta, n_obs`` of the window;
    ``returns_dates``: ``date, history`` per session of the window with returns, where
    ``history`` counts the sessions with returns up to and including it."""
    beta = pd.to_numeric(betas["beta"], errors="coerce").astype(float)
    bounded = betas["factor"].isin(MARKET_FACTORS).to_numpy()
    suspect = ~np.isfinite(beta) | (bounded & (beta.abs() > max_abs_beta))
    seen = betas[beta.notna()].groupby("estimator")["n_obs"].min()
    present = pd.to_datetime(betas["date"]).dt.normalize().drop_duplicates()
    return evaluate_daily_betas(betas[suspect], present, seen, returns_dates, max_abs_beta, min_obs)


def evaluate_daily_betas(
    suspects: pd.DataFrame,
    present_dates: pd.Series,
    min_obs_seen: pd.Series,
    returns_dates: pd.DataFrame,
    max_abs_beta: float = MAX_ABS_BETA,
    min_obs: Mapping[str, int] | None = None,
) -> list[CheckOutcome]:
    """The rules from the window's suspect rows (NULL, non-finite, or a market beta beyond
    the bound), the dates that have betas, and each estimator's smallest ``n_obs`` with a
    beta (the minimum of an estimator not in ``min_obs``)."""
    min_obs = {**MIN_OBS, **(min_obs or {})}
    beta = pd.to_numeric(suspects["beta"], errors="coerce").astype(float)
    infinite = suspects[np.isinf(beta)]
    missing = suspects[beta.isna()]
    need = missing["estimator"].map(min_obs)
    need = need.fillna(missing["estimator"].map(min_obs_seen)).fillna(0)
    bad_null = missing[missing["n_obs"].fillna(0).to_numpy() >= need.to_numpy()]
    n_bad = len(infinite) + len(bad_null)
    finite = CheckOutcome(
        "betas_finite",
        n_bad == 0,
        "error",
        n_bad,
        (
            "all betas finite (NULL only below min_obs)"
            if n_bad == 0
            else f"{len(infinite)} infinite beta(s), {len(bad_null)} NULL beta(s) with "
            f"n_obs >= min_obs: {_listed(pd.concat([infinite, bad_null]), _KEYS)}"
        ),
        n_rows=n_bad,
    )
    bounded = suspects["factor"].isin(MARKET_FACTORS).to_numpy()
    out_of = suspects[bounded & np.isfinite(beta) & (beta.abs() > max_abs_beta)]
    bounds = CheckOutcome(
        "betas_within_bounds",
        out_of.empty,
        "error",
        len(out_of),
        (
            f"all market |beta| <= {max_abs_beta:g}"
            if out_of.empty
            else f"{len(out_of)} market beta(s) with |beta| > {max_abs_beta:g}: "
            f"{_listed(out_of, [*_KEYS, 'beta'])}"
        ),
        n_rows=len(out_of),
    )
    due = returns_dates.loc[returns_dates["history"] >= MIN_HISTORY_SESSIONS, "date"]
    have = set(pd.to_datetime(present_dates).dt.normalize())
    absent = sorted(d for d in pd.to_datetime(due).dt.normalize() if d not in have)
    cover = CheckOutcome(
        "betas_cover_sessions",
        not absent,
        "error",
        len(absent),
        (
            f"{len(due)} session(s) with returns all have betas"
            if not absent
            else f"{len(absent)} of {len(due)} session(s) with returns have no beta rows: "
            + ", ".join(str(d.date()) for d in absent[:MAX_LISTED])
        ),
        n_rows=len(absent),
    )
    return [finite, bounds, cover]


_KEYS = ("date", "symbol", "model", "estimator", "factor")
#: Suspect rows fetched per window at most (the counts above stay exact below it).
MAX_SUSPECTS = 100_000


def read_daily_betas(
    conn: duckdb.DuckDBPyConnection, start: pd.Timestamp, end: pd.Timestamp, max_abs_beta: float
) -> tuple[pd.DataFrame, pd.Series, pd.Series, pd.DataFrame]:
    """What the rules need, aggregated in DuckDB (a 30-year backfill writes hundreds of
    millions of rows): the suspect rows, the dates with betas, each estimator's smallest
    n_obs with a beta, and the window's sessions with returns (with their history count)."""
    window_args = [start.date(), end.date()]
    market = ", ".join("?" for _ in MARKET_FACTORS)
    suspects = conn.execute(
        f"""
        SELECT date, symbol, model, estimator, factor, beta, n_obs FROM betas.daily
        WHERE date >= ? AND date < ?
          AND (beta IS NULL OR isnan(beta) OR isinf(beta)
               OR (factor IN ({market}) AND abs(beta) > ?))
        ORDER BY date, symbol, model, estimator, factor LIMIT ?
        """,
        [*window_args, *MARKET_FACTORS, max_abs_beta, MAX_SUSPECTS],
    ).df()
    present = conn.execute(
        "SELECT DISTINCT date FROM betas.daily WHERE date >= ? AND date < ?", window_args
    ).df()["date"]
    seen = conn.execute(
        "SELECT estimator, min(n_obs) AS n_obs FROM betas.daily "
        "WHERE date >= ? AND date < ? AND beta IS NOT NULL GROUP BY estimator",
        window_args,
    ).df().set_index("estimator")["n_obs"]
    sessions = conn.execute(
        """
        SELECT date, history FROM (
            SELECT date, row_number() OVER (ORDER BY date) AS history FROM (
                SELECT DISTINCT date FROM returns.daily
                WHERE date < ? AND ret_excess IS NOT NULL AND mkt_excess IS NOT NULL
            )
        ) WHERE date >= ?
        """,
        [end.date(), start.date()],
    ).df()
    return suspects, present, seen, sessions
