"""Beta tables from long returns: factor panels, estimator specs, tuning and long output.

This is the pure core behind the ``daily_betas`` and ``monthly_betas`` assets: it pivots
returns once per factor model, runs every configured estimator on the (T, N) panel and
yields long rows (one estimator at a time, to bound memory) for the requested dates only.
Estimates dated t use data up to t (the estimators are causal; see lib/estimators).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from beta_pipeline.lib.estimators.kalman_mle import fit_kalman_panel
from beta_pipeline.lib.estimators.long import (
    ESTIMATORS,
    _date_positions,
    _symbol_codes,
    kalman_rows,
    unpivot,
)
from beta_pipeline.lib.estimators.long import kalman_regression as kalman_betas_result
from beta_pipeline.lib.estimators.tuning import tune_half_life
from beta_pipeline.lib.warehouse import TABLES, ArrowPiece

if TYPE_CHECKING:  # pragma: no cover
    import duckdb

#: Factor columns of each model: CAPM uses the returns table's market excess return;
#: FF3/FF5 use factor series from raw.market (or raw.market_monthly).
MODEL_FACTORS: dict[str, tuple[str, ...]] = {
    "capm": ("mkt_excess",),
    "ff3": ("mkt_rf", "smb", "hml"),
    "ff5": ("mkt_rf", "smb", "hml", "rmw", "cma"),
}

BETA_COLUMNS: tuple[str, ...] = (
    "symbol",
    "model",
    "estimator",
    "factor",
    "beta",
    "alpha",
    "r2",
    "resid_std",
    "n_obs",
)

#: Train / validation shares of the history for tuned estimators (NeuralBeta paper's split:
#: 8 of 14 years train, 2 validation, 4 test).
TRAIN_SHARE = 8 / 14
VALIDATION_SHARE = 2 / 14


@dataclass(frozen=True)
class EstimatorSpec:
    """One column of the beta table: a name, an estimator kind and its parameters."""

    name: str
    kind: str  # ols | expanding | ewm | blume | vasicek | dimson | welch | kalman
    params: dict[str, Any] = field(default_factory=dict)
    single_factor: bool = False  # Kalman: CAPM only

    @property
    def lookback(self) -> int | None:
        """Rows of history an estimate needs; None: the whole history (Kalman, expanding)."""
        if self.kind in ("kalman", "expanding"):
            return None
        window = self.params.get("window")
        if window is None:
            return None
        return int(window) + int(self.params.get("leads", 0)) + int(self.params.get("lags", 0))


def daily_specs(
    windows: Sequence[int] = (60, 252),
    tidy_window: int = 63,
    tidy_min_obs: int = 50,
    ewm_window: int = 252,
    adjusted_window: int = 252,
    kalman: bool = True,
) -> list[EstimatorSpec]:
    """The default daily estimator set (half-life and Kalman variances are tuned later)."""
    specs = [
        EstimatorSpec(f"ols_{w}", "ols", {"window": w, "min_obs": max(int(0.8 * w), 3)})
        for w in windows
    ]
    specs.append(EstimatorSpec("ols_3m", "ols", {"window": tidy_window, "min_obs": tidy_min_obs}))
    specs.append(
        EstimatorSpec("ewm", "ewm", {"window": ewm_window, "min_obs": min(60, ewm_window)})
    )
    adj = {"window": adjusted_window, "min_obs": max(int(0.8 * adjusted_window), 3)}
    specs += [
        EstimatorSpec(f"blume_{adjusted_window}", "blume", dict(adj)),
        EstimatorSpec(f"vasicek_{adjusted_window}", "vasicek", dict(adj)),
        EstimatorSpec(f"dimson_{adjusted_window}", "dimson", dict(adj)),
        EstimatorSpec(f"welch_{adjusted_window}", "welch", dict(adj)),
    ]
    if kalman:
        specs.append(EstimatorSpec("kalman", "kalman", {"min_obs": 20}, single_factor=True))
    return specs


def factor_frame(
    model: str, returns: pd.DataFrame, market: pd.DataFrame, date_col: str = "date"
) -> pd.DataFrame | None:
    """Wide factor returns (index date, one column per factor) for a model, or None when
    the source lacks a factor. CAPM takes ``mkt_excess`` from the returns table."""
    factors = MODEL_FACTORS[model]
    if model == "capm":
        frame = returns.drop_duplicates(date_col).set_index(date_col)[["mkt_excess"]]
        return frame.sort_index()
    if market.empty:
        return None
    wide = market.pivot_table(index=date_col, columns="series", values="value", aggfunc="first")
    if not set(factors) <= set(wide.columns):
        return None
    dates = pd.DatetimeIndex(returns[date_col].drop_duplicates()).sort_values()
    frame = wide.loc[:, list(factors)].reindex(dates).dropna()
    frame.index.name = date_col
    return frame if len(frame) else None


@dataclass
class Panel:
    """Returns of one model as arrays: y (T, N) excess returns, x (T, k) factors."""

    dates: pd.DatetimeIndex
    symbols: pd.Index
    factors: list[str]
    y: np.ndarray
    x: np.ndarray
    #: Rows of the model's whole history before ``dates[0]`` (a trailing read): windowed
    #: estimators align their row tiles to the history's first row (bit-identical rows).
    origin: int = 0

    @classmethod
    def build(
        cls, returns: pd.DataFrame, factors: pd.DataFrame, date_col: str = "date"
    ) -> Panel:
        dates = pd.DatetimeIndex(factors.index)
        y, symbols = _pivot(returns, dates, date_col, "ret_excess")
        return cls(dates, symbols, [str(c) for c in factors.columns], y, factors.to_numpy(float))

    @classmethod
    def from_wide(cls, wide: WideReturns, factors: pd.DataFrame, origin: int = 0) -> Panel:
        """``Panel.build`` on the rows ``wide`` was pivoted from: the same arrays (``y`` is
        ``wide.y`` itself, not a copy, when the factors cover every return date)."""
        dates = pd.DatetimeIndex(factors.index)
        if dates.equals(wide.dates):
            y = wide.y
        else:
            rows = wide.dates.get_indexer(dates)
            y = np.full((len(dates), len(wide.symbols)), np.nan)
            y[rows >= 0] = wide.y[rows[rows >= 0]]
        return cls(
            dates, wide.symbols, [str(c) for c in factors.columns], y, factors.to_numpy(float),
            origin,
        )

    def rows_before(self, when: pd.Timestamp) -> int:
        return int(self.dates.searchsorted(pd.Timestamp(when), side="left"))


def _sorted_date_positions(values: pd.Series, dates: pd.DatetimeIndex) -> np.ndarray | None:
    """Row of each value in ``dates`` (-1 when absent) for date-sorted values without NaT,
    from the runs of equal dates (no hashing); None when the values are not like that."""
    v = np.asarray(values)
    if v.dtype.kind != "M" or not len(v):
        return None
    i8 = v.view(np.int64)
    if i8[0] == np.iinfo(np.int64).min or not (i8[1:] >= i8[:-1]).all():  # NaT sorts first
        return None
    starts = np.flatnonzero(np.r_[True, i8[1:] != i8[:-1]])
    pos = dates.get_indexer(pd.DatetimeIndex(v[starts]))
    return np.repeat(pos, np.diff(np.r_[starts, len(v)]))


def _pivot(
    returns: pd.DataFrame, dates: pd.DatetimeIndex, date_col: str, y_col: str
) -> tuple[np.ndarray, pd.Index]:
    """``long.pivot_returns`` on the caller's frame without renaming (copying) it; a
    date-sorted frame (as daily_betas reads it) skips the factorisation of the dates."""
    codes, symbols = _symbol_codes(returns["symbol"])
    rows = _sorted_date_positions(returns[date_col], dates)
    if rows is None:
        rows = _date_positions(returns[date_col], dates)
    keep = (rows >= 0) & (codes >= 0)
    out = np.full((len(dates), len(symbols)), np.nan)
    out[rows[keep], codes[keep]] = returns[y_col].to_numpy(dtype=np.float64)[keep]
    return out, symbols


RETURNS_SQL = (
    "SELECT date, symbol, ret_excess, mkt_excess FROM returns.daily WHERE date < ? "
    "ORDER BY date, symbol"
)


def read_returns(conn: Any, end: pd.Timestamp) -> pd.DataFrame:
    """The returns ``daily_betas`` reads (RETURNS_SQL: rows before ``end`` in date, symbol
    order), fetched through Arrow: the same values as ``conn.execute(...).df()`` followed by
    ``pd.to_datetime`` on ``date``, but ``symbol`` is a Categorical with sorted ``str``
    categories instead of one Python string per row (at 27 M rows: ~1.5 GB less memory,
    several times faster, and Panel.build takes the codes as they are)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    table = conn.sql(RETURNS_SQL, params=[pd.Timestamp(end).date()]).to_arrow_table()
    date = pc.cast(table.column("date"), pa.timestamp("us"))
    symbol = table.column("symbol").combine_chunks().dictionary_encode()
    frame = pd.DataFrame(
        {
            "date": date.to_pandas(),
            "symbol": pd.Categorical.from_codes(
                symbol.indices.to_numpy(zero_copy_only=False),
                categories=pd.Index(symbol.dictionary.to_pylist(), dtype=object),
                validate=False,
            ),
            "ret_excess": table.column("ret_excess").to_pandas(),
            "mkt_excess": table.column("mkt_excess").to_pandas(),
        },
        copy=False,
    )
    del table, date, symbol
    cats = frame["symbol"].cat.categories
    if not cats.is_monotonic_increasing:
        frame["symbol"] = frame["symbol"].cat.reorder_categories(cats.sort_values())
    return frame


#: Symbol codes of RETURNS_SQL's rows: each symbol's rank (from 0) in binary (``ORDER BY``)
#: order, joined on by DuckDB (hash join, parallel) so no per-row string leaves DuckDB.
WIDE_RETURNS_SQL = """
WITH s AS (
    SELECT symbol, (row_number() OVER (ORDER BY symbol) - 1)::INTEGER AS code
    FROM (SELECT DISTINCT symbol FROM returns.daily WHERE date < $1)
)
SELECT r.date, s.code, r.ret_excess, r.mkt_excess
FROM returns.daily AS r JOIN s USING (symbol)
WHERE r.date < $1
"""
WIDE_SYMBOLS_SQL = "SELECT DISTINCT symbol FROM returns.daily WHERE date < $1 ORDER BY symbol"
#: WIDE_RETURNS_SQL for the rows from ``$2`` on (a trailing read): the codes stay those of
#: every symbol before ``$1``, so the panel has the whole history's columns.
WIDE_RETURNS_FROM_SQL = WIDE_RETURNS_SQL.rstrip() + " AND r.date >= $2\n"
DATES_SQL = "SELECT DISTINCT date FROM returns.daily WHERE date < $1 ORDER BY date"


@dataclass
class WideReturns:
    """The rows of RETURNS_SQL pivoted once: what ``factor_frame`` and ``Panel.build`` take
    from the long frame, without the long frame (daily_betas' read path at 30 M rows).

    ``dates``: every return date (sorted, datetime64[us] like ``.df()`` + ``pd.to_datetime``);
    ``symbols``: sorted; ``y`` (T, N): ``ret_excess`` (NaN where missing or NULL); ``mkt``
    (T,): ``mkt_excess`` of each date's first row in (date, symbol) order, i.e. what
    ``factor_frame("capm", ...)`` takes; ``rows``: the number of rows read."""

    dates: pd.DatetimeIndex
    symbols: pd.Index
    y: np.ndarray
    mkt: np.ndarray
    rows: int

    @property
    def empty(self) -> bool:
        return self.rows == 0

    def date_frame(self) -> pd.DataFrame:
        """One row per date with ``date`` and ``mkt_excess``: all :func:`factor_frame`
        needs from the returns (the CAPM factor, and the calendar FF factors are put on)."""
        return pd.DataFrame({"date": self.dates, "mkt_excess": self.mkt})

    @classmethod
    def from_codes(
        cls,
        days: np.ndarray,
        codes: np.ndarray,
        ret: np.ndarray,
        mkt: np.ndarray,
        symbols: Sequence[str] | pd.Index,
    ) -> WideReturns:
        """Pivot rows given as ``days`` (days since 1970-01-01), ``codes`` (position in the
        sorted ``symbols``), ``ret`` and ``mkt`` (NaN = NULL), in any order; (date, symbol)
        pairs must be unique (the returns table's key)."""
        symbols = pd.Index(symbols, dtype=object)
        n_rows, n = len(days), len(symbols)
        if not n_rows:
            empty = pd.DatetimeIndex(np.array([], dtype="datetime64[us]"))
            return cls(empty, symbols, np.empty((0, n)), np.empty(0), 0)
        days = np.asarray(days, dtype=np.int64)
        codes = np.asarray(codes)
        lo = int(days.min())
        span = int(days.max()) - lo + 1
        offset = days - lo
        seen = np.zeros(span, dtype=bool)
        seen[offset] = True
        uniq = np.flatnonzero(seen)
        del seen
        row_of = np.full(span, -1, dtype=np.int32)
        row_of[uniq] = np.arange(len(uniq), dtype=np.int32)
        rows = row_of[offset]
        del offset, row_of
        t_len = len(uniq)
        y = np.full((t_len, n), np.nan)
        y[rows, codes] = ret
        # the first row of a date in (date, symbol) order has the date's smallest code
        first = np.full(t_len, n, dtype=codes.dtype if codes.dtype.itemsize >= 4 else np.int32)
        np.minimum.at(first, rows, codes)
        pick = codes == first[rows]
        market = np.full(t_len, np.nan)
        market[rows[pick]] = np.asarray(mkt, dtype=np.float64)[pick]
        dates = pd.DatetimeIndex((uniq + lo).astype("datetime64[D]").astype("datetime64[us]"))
        return cls(dates, symbols, y, market, n_rows)


def read_returns_wide(
    conn: Any, end: pd.Timestamp, start: pd.Timestamp | None = None
) -> WideReturns:
    """RETURNS_SQL's rows (``date < end``) as :class:`WideReturns`: DuckDB ships dates as
    day numbers and symbols as integer codes (WIDE_RETURNS_SQL), numpy scatters them into
    the (T, N) array. At 27 M rows this replaces ``.df()`` (one Python string per row,
    ~2.5 GB), the ORDER BY and the pandas pivot. With ``start``: only rows dated from
    ``start`` on, with the symbols (columns) of the whole history before ``end``."""
    import pyarrow as pa
    import pyarrow.compute as pc

    params = [pd.Timestamp(end).date()]
    conn.execute("BEGIN TRANSACTION")  # one snapshot for the symbols and the codes
    try:
        symbols = conn.execute(WIDE_SYMBOLS_SQL, params).fetchnumpy()["symbol"]
        if start is None:
            table = conn.sql(WIDE_RETURNS_SQL, params=params).to_arrow_table()
        else:
            table = conn.sql(
                WIDE_RETURNS_FROM_SQL, params=[*params, pd.Timestamp(start).date()]
            ).to_arrow_table()
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
    days = pc.cast(table.column("date"), pa.int32()).to_numpy()
    codes = table.column("code").to_numpy()
    ret = table.column("ret_excess").to_numpy()
    mkt = table.column("mkt_excess").to_numpy()
    del table
    return WideReturns.from_codes(days, codes, ret, mkt, list(symbols))


def read_calendar(conn: Any, end: pd.Timestamp) -> tuple[pd.DatetimeIndex, pd.Index]:
    """Every return date and every symbol before ``end`` (sorted): the rows and columns of
    the whole-history panel, without reading the returns."""
    params = [pd.Timestamp(end).date()]
    dates = conn.execute(DATES_SQL, params).fetchnumpy()["date"]
    symbols = conn.execute(WIDE_SYMBOLS_SQL, params).fetchnumpy()["symbol"]
    days = pd.DatetimeIndex(np.asarray(dates, dtype="datetime64[D]").astype("datetime64[us]"))
    return days, pd.Index(list(symbols), dtype=object)


def lookback_row(spec: EstimatorSpec, first_row: int) -> int | None:
    """The first history row a windowed spec reads to compute rows ``first_row..`` exactly
    as over the whole history (its window, its Dimson lags and leads, and the row tile the
    first row falls in; see ``regression.rolling_regression``); None: it needs every row."""
    if spec.kind not in WINDOWED or spec.params.get("window") is None:
        return None
    from beta_pipeline.lib.estimators.regression import CHUNK_ROWS

    window = int(spec.params["window"])
    chunk = max(int(spec.params.get("chunk_rows", CHUNK_ROWS)), window, 1)
    leads = int(spec.params.get("leads", 1)) if spec.kind == "dimson" else 0
    lags = int(spec.params.get("lags", 1)) if spec.kind == "dimson" else 0
    row = max(first_row - leads, 0)
    return max((row // chunk) * chunk - window + 1 - lags, 0)


def trailing_read(
    models: Sequence[str],
    specs: Sequence[EstimatorSpec],
    stored: dict[str, pd.DataFrame],
    states: dict[str, dict[str, KalmanState]],
    dates: pd.DatetimeIndex,
    symbols: pd.Index,
    market: pd.DataFrame,
    start: pd.Timestamp,
    refit: bool = False,
) -> tuple[pd.Timestamp | None, dict[str, int], str]:
    """Where a run writing from ``start`` may begin reading returns: (the first date to read
    or None for the whole history, each model's rows before it, why).

    A trailing read is possible when nothing is fitted in this run (the EW half-life and
    the Kalman parameters are stored, no ``refit``) and every Kalman state is fresh (dated
    at the model's session before ``start``, the same symbols and training span: the
    conditions under which ``daily_betas`` resumes the filter); the read then starts at the
    earliest :func:`lookback_row` of the windowed specs (and the session before ``start``),
    so every written row equals the whole-history run's."""
    if refit:
        return None, {}, "refit"
    calendar = pd.DataFrame({"date": dates, "mkt_excess": np.nan})
    firsts: dict[str, pd.Timestamp] = {}
    model_dates: dict[str, pd.DatetimeIndex] = {}
    for model in models:
        factors = factor_frame(model, calendar, market)
        if factors is None:
            continue
        mdates = pd.DatetimeIndex(factors.index)
        model_dates[model] = mdates
        r_lo = int(mdates.searchsorted(pd.Timestamp(start), side="left"))
        if r_lo >= len(mdates):
            continue  # no row to write for this model
        rows = [max(r_lo - 1, 0)]
        known = stored.get(model, pd.DataFrame(columns=["estimator", "param"]))
        for spec in specs:
            if spec.single_factor and len(factors.columns) != 1:
                continue
            mine = known[known["estimator"] == spec.name] if len(known) else known
            if spec.kind == "ewm" and not (mine["param"] == "half_life").any():
                return None, {}, f"{model} {spec.name}: half-life not tuned yet"
            if spec.kind == "kalman":
                fit = mine[mine["param"] == "train_rows"]
                state = states.get(model, {}).get(spec.name)
                if not len(fit) or state is None:
                    return None, {}, f"{model} {spec.name}: no stored state"
                if (
                    r_lo < 1
                    or state.date != mdates[r_lo - 1]
                    or not symbols.astype(str).equals(state.symbols)
                    or state.fit_end != pd.Timestamp(fit["fit_end"].iloc[0])
                    or state.train_rows != int(fit["value"].iloc[0])
                ):
                    return None, {}, f"{model} {spec.name}: stored state is stale"
                continue
            row = lookback_row(spec, r_lo)
            if row is None:
                return None, {}, f"{model} {spec.name} reads the whole history"
            rows.append(row)
        firsts[model] = mdates[min(rows)]
    if not firsts:
        return None, {}, "no rows to write"
    first = min(firsts.values())
    origins = {m: int(d.searchsorted(first, side="left")) for m, d in model_dates.items()}
    return first, origins, "trailing"


def split_rows(n_rows: int) -> tuple[slice, slice]:
    """Train and validation row slices by the paper's proportions (time order)."""
    # the epsilon keeps exact multiples exact: 14 * (8/14 + 2/14) is 9.999... in floats
    train_end = max(int(n_rows * TRAIN_SHARE + 1e-9), 1)
    val_end = max(int(n_rows * (TRAIN_SHARE + VALIDATION_SHARE) + 1e-9), train_end + 1)
    return slice(0, train_end), slice(train_end, min(val_end, n_rows))


def tune_ewm(
    panel: Panel, spec: EstimatorSpec, grid: Sequence[float]
) -> tuple[float, pd.DataFrame]:
    """Half-life with the lowest next-day hedging RMSE on the validation rows."""
    _, val = split_rows(len(panel.dates))
    best, table = tune_half_life(
        panel.y,
        panel.x,
        val,
        half_lives=list(grid),
        window=spec.params.get("window"),
        min_obs=spec.params.get("min_obs"),
    )
    return float(best), table


def fit_kalman(
    panel: Panel, n_sample: int = 20, seed: int = 0, train_rows: int | None = None
) -> dict[str, Any]:
    """Kalman parameters (q, h, alpha per asset) by MLE on the first ``train_rows`` rows
    (default: the training share of the panel, :func:`split_rows`)."""
    if train_rows is None:
        train_rows = split_rows(len(panel.dates))[0].stop
    params = fit_kalman_panel(panel.y, panel.x[:, 0], train_rows, n_sample=n_sample, seed=seed)
    return params.as_kwargs()


#: Estimator kinds on a finite rolling window: they can skip the rows before the output.
WINDOWED = frozenset({"ols", "ewm", "blume", "vasicek", "dimson", "welch"})


def _run(panel: Panel, spec: EstimatorSpec, out_rows: np.ndarray, from_row: int = 0):
    """(RegressionResult-like, valid mask) of one spec over the panel; a windowed spec
    computes only rows ``from_row..`` (the rest NaN; the computed rows are bit-identical
    to a run over every row, see ``regression.rolling_regression``)."""
    if spec.kind != "kalman":
        params = {k: v for k, v in spec.params.items() if not k.startswith("_")}
        if spec.kind in WINDOWED and params.get("window") is not None:
            if from_row:
                params["from_row"] = int(from_row)
            if panel.origin:
                params["origin"] = int(panel.origin)
        return ESTIMATORS[spec.kind](panel.y, panel.x, **params), None
    if "q" not in spec.params or "h" not in spec.params:
        raise ValueError("kalman spec needs fitted q and h (see fit_kalman)")
    params = {k: v for k, v in spec.params.items() if k != "train_end"}
    return kalman_betas_result(panel.y, panel.x, panel.dates, **params)


#: Filter parameters kept per symbol with a stored Kalman state.
KALMAN_STATE_PARAMS: tuple[str, ...] = ("q", "h", "alpha", "phi", "mu")
#: Columns of ``betas.estimator_state``.
STATE_COLUMNS: tuple[str, ...] = (
    "model", "estimator", "symbol", "date", "beta", "var", "n_obs",
    *KALMAN_STATE_PARAMS, "train_rows", "fit_end", "saved_at",
)


@dataclass
class KalmanState:
    """The Kalman filter of every symbol of a panel after the row dated ``date``: the
    predicted state for the next row (``beta``, ``var``), the observations counted so far
    and the per-symbol parameters it ran with (fitted on ``train_rows`` rows to
    ``fit_end``). A run whose panel has the same symbols and whose first row follows
    ``date`` resumes from it (one filter step per new row) instead of filtering from the
    first day; see :meth:`start_row`."""

    date: pd.Timestamp
    symbols: pd.Index
    beta: np.ndarray
    var: np.ndarray
    n_obs: np.ndarray
    params: dict[str, np.ndarray]
    train_rows: int
    fit_end: pd.Timestamp

    def frame(self, model: str, estimator: str) -> pd.DataFrame:
        """Rows of ``betas.estimator_state`` (one per symbol)."""
        n = len(self.symbols)
        data: dict[str, Any] = {
            "model": model,
            "estimator": estimator,
            "symbol": [str(s) for s in self.symbols],
            "date": pd.Timestamp(self.date),
            "beta": self.beta,
            "var": self.var,
            "n_obs": self.n_obs.astype(np.int64),
        }
        for key in KALMAN_STATE_PARAMS:
            data[key] = np.broadcast_to(np.asarray(self.params[key], np.float64), (n,))
        data.update(
            train_rows=int(self.train_rows),
            fit_end=pd.Timestamp(self.fit_end),
            saved_at=pd.Timestamp.now(tz="UTC").tz_localize(None),
        )
        return pd.DataFrame(data, columns=list(STATE_COLUMNS))

    @classmethod
    def from_frame(cls, frame: pd.DataFrame) -> KalmanState | None:
        """The state in ``betas.estimator_state`` rows of one (model, estimator); None when
        there are none or they are not one consistent snapshot."""
        if frame.empty:
            return None
        if any(frame[c].nunique(dropna=False) != 1 for c in ("date", "train_rows", "fit_end")):
            return None
        frame = frame.sort_values("symbol", kind="stable")
        symbols = pd.Index(frame["symbol"].astype(str).to_list(), dtype=object)
        if not symbols.is_unique:
            return None
        return cls(
            date=pd.Timestamp(frame["date"].iloc[0]),
            symbols=symbols,
            beta=frame["beta"].to_numpy(np.float64),
            var=frame["var"].to_numpy(np.float64),
            n_obs=frame["n_obs"].to_numpy(np.int32),
            params={k: frame[k].to_numpy(np.float64) for k in KALMAN_STATE_PARAMS},
            train_rows=int(frame["train_rows"].iloc[0]),
            fit_end=pd.Timestamp(frame["fit_end"].iloc[0]),
        )

    def start_row(self, panel: Panel, start: pd.Timestamp) -> int | None:
        """The panel row the filter resumes at for a run writing from ``start`` (the first
        row on or after it), or None when the state is stale: it is not dated at the row
        just before, or the panel's symbols differ (a listing changes the fitted
        parameters' sample)."""
        r0 = panel.rows_before(start)
        if r0 < 1 or r0 > len(panel.dates) or panel.dates[r0 - 1] != self.date:
            return None
        if not panel.symbols.astype(str).equals(self.symbols):
            return None
        return r0

    def matches(self, params: dict[str, Any]) -> bool:
        """Whether the filter ``params`` are the ones this state ran with."""
        n = len(self.symbols)
        for key in KALMAN_STATE_PARAMS:
            value = np.broadcast_to(np.asarray(params.get(key, np.nan), np.float64), (n,))
            if not np.array_equal(value, self.params[key]):
                return False
        return True


#: Filter states kept per (model, estimator), newest first: re-running one of the last
#: sessions resumes from the state before it instead of filtering the whole history again.
STATES_KEPT = 10
_STATE_TABLE = "betas.estimator_state"


def read_kalman_states(
    conn: duckdb.DuckDBPyConnection, start: pd.Timestamp
) -> dict[str, dict[str, KalmanState]]:
    """Per model and estimator, the newest stored filter state dated before ``start`` (a
    run writing from ``start`` resumes from it when it is the previous session's)."""
    has_table = conn.execute(  # a warehouse made before the table: no state yet
        "SELECT count(*) FROM duckdb_tables() "
        "WHERE schema_name = 'betas' AND table_name = 'estimator_state'"
    ).fetchone()[0]
    if not has_table:
        return {}
    rows = conn.execute(
        f"""
        SELECT s.* FROM {_STATE_TABLE} AS s
        JOIN (
            SELECT model, estimator, max(date) AS date FROM {_STATE_TABLE}
            WHERE date < ? GROUP BY model, estimator
        ) AS newest USING (model, estimator, date)
        """,
        [pd.Timestamp(start).date()],
    ).df()
    states: dict[str, dict[str, KalmanState]] = {}
    for (model, est), part in rows.groupby(["model", "estimator"]) if len(rows) else []:
        state = KalmanState.from_frame(part)
        if state is not None:
            states.setdefault(str(model), {})[str(est)] = state
    return states


def _state_key_has_date(conn: duckdb.DuckDBPyConnection) -> bool:
    keys = conn.execute(
        "SELECT constraint_column_names FROM duckdb_constraints() "
        "WHERE schema_name = 'betas' AND table_name = 'estimator_state' "
        "AND constraint_type = 'PRIMARY KEY'"
    ).fetchall()
    return any("date" in list(cols) for (cols,) in keys)


def store_kalman_state(
    conn: duckdb.DuckDBPyConnection,
    model: str,
    estimator: str,
    state: KalmanState,
    start: pd.Timestamp,
    keep: int = STATES_KEPT,
) -> None:
    """Write the state after a run over sessions from ``start``, in one transaction: the
    states dated on or after ``start`` (computed from rows this run replaced) go, and only
    the ``keep`` newest dates stay. A table from before states were kept per date (key
    without ``date``) is rebuilt first: it is a cache, the next run re-filters."""
    if not _state_key_has_date(conn):
        conn.execute(f"DROP TABLE IF EXISTS {_STATE_TABLE}")
        conn.execute(TABLES[_STATE_TABLE].ddl())
    frame = state.frame(model, estimator)
    cols = ", ".join(STATE_COLUMNS)
    conn.register("_state", frame)
    try:
        conn.execute("BEGIN TRANSACTION")
        try:
            conn.execute(
                f"DELETE FROM {_STATE_TABLE} WHERE model = ? AND estimator = ? AND date >= ?",
                [model, estimator, pd.Timestamp(start).date()],
            )
            conn.execute(f"INSERT INTO {_STATE_TABLE} ({cols}) SELECT {cols} FROM _state")
            conn.execute(
                f"""
                DELETE FROM {_STATE_TABLE} WHERE model = ? AND estimator = ? AND date NOT IN (
                    SELECT DISTINCT date FROM {_STATE_TABLE}
                    WHERE model = ? AND estimator = ? ORDER BY date DESC LIMIT ?
                )
                """,
                [model, estimator, model, estimator, int(keep)],
            )
            conn.execute("COMMIT")
        except Exception:
            conn.execute("ROLLBACK")
            raise
    finally:
        conn.unregister("_state")


def kalman_state_params(state: KalmanState) -> dict[str, Any]:
    """The stored per-symbol filter parameters as :func:`kalman_filter` keywords (the
    prior ``beta0``/``p0`` as ``fit_kalman`` sets them: only the first row uses them)."""
    return {**{k: state.params[k].copy() for k in KALMAN_STATE_PARAMS}, "beta0": 1.0, "p0": 1.0}


def _kalman_piece(
    panel: Panel, spec: EstimatorSpec, state: KalmanState | None, start: pd.Timestamp
) -> tuple[Panel, Any, np.ndarray, KalmanState | None]:
    """Kalman rows of ``panel`` from its first row, or from ``state`` (a one-step run reads
    one row): (the panel the result covers, result, valid mask, the state after its last
    row). The resumed rows are bit-identical to the full filter's (see ``kalman_rows``)."""
    if "q" not in spec.params or "h" not in spec.params:
        raise ValueError("kalman spec needs fitted q and h (see fit_kalman)")
    params = {k: v for k, v in spec.params.items() if k != "train_end"}
    min_obs = int(params.pop("min_obs", 1))
    train_rows = int(params.pop("_train_rows", -1))
    fit_end = params.pop("_fit_end", None)
    kw = {k: params[k] for k in ("q", "h", "alpha", "phi", "mu", "beta0", "p0") if k in params}
    r0 = state.start_row(panel, start) if state is not None else None
    if (
        r0 is not None
        and state is not None
        and state.matches(kw)
        and state.train_rows == train_rows
        and fit_end is not None
        and pd.Timestamp(fit_end) == state.fit_end
    ):
        sub = Panel(panel.dates[r0:], panel.symbols, panel.factors, panel.y[r0:], panel.x[r0:])
        kw = {**kw, "beta0": state.beta, "p0": state.var}
        res, valid, raw = kalman_rows(sub.y, sub.x[:, 0], kw, min_obs, state.n_obs)
    else:
        sub = panel
        if panel.x.shape[1] != 1:
            raise ValueError("the Kalman estimator takes exactly one factor")
        res, valid, raw = kalman_rows(panel.y, panel.x[:, 0], kw, min_obs)
    final = None
    if len(sub.dates) and fit_end is not None and train_rows >= 0:
        n = len(panel.symbols)
        final = KalmanState(
            date=pd.Timestamp(sub.dates[-1]),
            symbols=pd.Index([str(s) for s in panel.symbols], dtype=object),
            beta=raw.predicted[-1].copy(),
            var=raw.predicted_var[-1].copy(),
            n_obs=np.asarray(res.n_obs[-1], dtype=np.int32).copy(),
            params={
                k: np.broadcast_to(np.asarray(kw[k] if k in kw else (1.0 if k == "phi" else 0.0),
                                              np.float64), (n,)).copy()
                for k in KALMAN_STATE_PARAMS
            },
            train_rows=train_rows,
            fit_end=pd.Timestamp(fit_end),
        )
    return sub, res, valid, final


def estimate(
    panel: Panel,
    model: str,
    specs: Sequence[EstimatorSpec],
    start: pd.Timestamp,
    end: pd.Timestamp,
    date_col: str = "date",
) -> Iterator[pd.DataFrame]:
    """Long beta rows (``date_col`` + BETA_COLUMNS) for dates in [start, end), one frame per
    estimator. Specs that need a single factor are skipped for multi-factor models.

    ``symbol``, ``model``, ``estimator`` and ``factor`` are pandas Categoricals with ``str``
    categories (values equal to the strings; a 30 M-row frame then costs no Python string
    objects), ``n_obs`` is int32. With one factor the frame's columns are built inside the
    estimator's own (T, N) arrays (see :func:`_unpivot`); otherwise they are released before
    the frame is yielded, so the consumer holds one long frame, not the arrays too."""
    in_window = (panel.dates >= pd.Timestamp(start)) & (panel.dates < pd.Timestamp(end))
    if not in_window.any():
        return
    out_rows = np.asarray(in_window)[:, None]
    for spec in specs:
        if spec.single_factor and len(panel.factors) != 1:
            continue
        res, valid = _run(panel, spec, out_rows, int(np.argmax(in_window)))
        mask = out_rows if valid is None else (valid & out_rows)
        long = _unpivot(res, panel.dates, panel.symbols, panel.factors, spec.name, mask)
        del res, valid, mask
        if long.empty:
            continue
        yield _long_frame(long, model, date_col)
        del long


def estimate_arrow(
    panel: Panel,
    model: str,
    specs: Sequence[EstimatorSpec],
    start: pd.Timestamp,
    end: pd.Timestamp,
    date_col: str = "date",
    kalman_state: dict[str, KalmanState] | None = None,
    states_out: dict[str, KalmanState] | None = None,
) -> Iterator[ArrowPiece]:
    """:func:`estimate` for :func:`warehouse.replace_window_chunks` without long frames: one
    :class:`warehouse.ArrowPiece` per estimator whose record batches are cut from the
    estimator's (T, N) arrays on demand (while DuckDB inserts them; a block of dates at a
    time). Same rows, values and order as :func:`estimate`'s frames: ``date`` as date32,
    ``symbol``/``model``/``estimator``/``factor`` as Arrow dictionaries, NaN as NULL (as the
    frames' Arrow conversion does). A piece keeps its estimator's written arrays (not
    ``beta_se``) until DuckDB has drained it.

    Windowed estimators compute only the rows from the window's first (see ``_run``). The
    Kalman filter resumes from ``kalman_state[spec.name]`` when it is fresh (else it runs
    from the first row); the state after the panel's last row goes into ``states_out``."""
    in_window = np.asarray(
        (panel.dates >= pd.Timestamp(start)) & (panel.dates < pd.Timestamp(end))
    )
    if not in_window.any():
        return
    rows = np.flatnonzero(in_window)
    r_lo, r_hi = int(rows[0]), int(rows[-1]) + 1
    first, last = panel.dates[r_lo], panel.dates[r_hi - 1]
    symbols = pa_string_array(panel.symbols)
    schema = beta_schema(date_col, _code_types(len(panel.symbols))[1])
    days = np.asarray(panel.dates.to_numpy().astype("datetime64[D]").astype(np.int64),
                      dtype=np.int32)
    for spec in specs:
        if spec.single_factor and len(panel.factors) != 1:
            continue
        if spec.kind == "kalman":
            sub, res, valid, final = _kalman_piece(
                panel, spec, (kalman_state or {}).get(spec.name), start
            )
            if states_out is not None and final is not None:
                states_out[spec.name] = final
            off = len(panel.dates) - len(sub.dates)
            batches = _arrow_batches(
                _Kept(res.beta, res.alpha, res.r2, res.resid_std, res.n_obs), valid,
                in_window[off:], r_lo - off, r_hi - off, days[off:], symbols, panel.factors,
                model, spec.name, date_col,
            )
        else:
            res, valid = _run(panel, spec, in_window[:, None], r_lo)
            batches = _arrow_batches(
                _Kept(res.beta, res.alpha, res.r2, res.resid_std, res.n_obs), valid,
                in_window, r_lo, r_hi, days, symbols, panel.factors, model, spec.name,
                date_col,
            )
        piece = ArrowPiece(batches, schema, first, last, label=f"{model}/{spec.name}")
        del res, valid
        yield piece


def beta_schema(date_col: str = "date", code_type: Any = None) -> Any:
    """Arrow schema of :func:`estimate_arrow`'s batches (the beta tables' columns)."""
    import pyarrow as pa

    dict8 = pa.dictionary(pa.int8(), pa.string())
    return pa.schema(
        [
            (date_col, pa.date32()),
            ("symbol", pa.dictionary(code_type or pa.int32(), pa.string())),
            ("model", dict8),
            ("estimator", dict8),
            ("factor", dict8),
            ("beta", pa.float64()),
            ("alpha", pa.float64()),
            ("r2", pa.float64()),
            ("resid_std", pa.float64()),
            ("n_obs", pa.int32()),
        ]
    )


def pa_string_array(values: Sequence[Any]) -> Any:
    """``values`` as a pyarrow string array (``str`` of each)."""
    import pyarrow as pa

    return pa.array([str(v) for v in values], type=pa.string())


def _code_types(n: int) -> tuple[Any, Any]:
    """numpy and pyarrow integer types of the codes of ``n`` symbols."""
    import pyarrow as pa

    return (np.int16, pa.int16()) if n < 2**15 else (np.int32, pa.int32())


#: Cells (dates × symbols × factors) per record batch of :func:`estimate_arrow`.
ARROW_BATCH_CELLS = 1 << 20


@dataclass(frozen=True)
class _Kept:
    """The result arrays a piece writes (``beta_se`` is not written: freed at once)."""

    beta: np.ndarray
    alpha: np.ndarray
    r2: np.ndarray
    resid_std: np.ndarray
    n_obs: np.ndarray


def _arrow_batches(
    res: _Kept,
    valid: np.ndarray | None,
    in_window: np.ndarray,
    r_lo: int,
    r_hi: int,
    days: np.ndarray,
    symbols: Any,
    factors: list[str],
    model: str,
    estimator: str,
    date_col: str,
) -> Iterator[Any]:
    """Record batches of the kept cells (finite beta, in the window, ``valid``) of one
    estimator's result, blocks of whole dates in date order; symbol and factor order inside
    a date (as :func:`long.unpivot`)."""
    import pyarrow as pa

    t_len, n, k = res.beta.shape
    code_type, pa_code_type = _code_types(n)
    schema = beta_schema(date_col, pa_code_type)
    const = {
        "model": pa.array([str(model)], pa.string()),
        "estimator": pa.array([str(estimator)], pa.string()),
    }
    factor_dict = pa_string_array(factors)
    step = max(1, ARROW_BATCH_CELLS // max(n * k, 1))
    zeros = np.zeros(step * n * k, dtype=np.int8)
    # symbol code of every cell of a block of dates, so codes are a boolean pick too
    grid = np.tile(np.arange(n, dtype=code_type), step)
    fac_grid = np.tile(np.arange(k, dtype=np.int8), step * n)
    date32 = pa.date32()

    def pick(a: np.ndarray, r0: int, r1: int, ok: np.ndarray, idx: np.ndarray) -> np.ndarray:
        """``a[r0:r1][ok]`` for a (T, N) array: a 1-d take of the flat positions ``idx`` when
        the rows are contiguous (broadcast arrays, e.g. Kalman's alpha, use the mask)."""
        part = np.broadcast_to(a, (t_len, n))[r0:r1]
        if part.flags.c_contiguous:
            return part.reshape(-1).take(idx)
        return part[ok]

    def floats(v: np.ndarray, nan: bool = True) -> Any:
        """Float64 array, NaN as NULL (as ``from_pandas=True``, ~10x cheaper)."""
        v = np.ascontiguousarray(v, dtype=np.float64)
        missing = np.isnan(v) if nan else None
        if missing is None or not missing.any():
            return pa.array(v, type=pa.float64())  # zero-copy
        bits = np.packbits(~missing, bitorder="little")
        return pa.Array.from_buffers(
            pa.float64(), len(v), [pa.py_buffer(bits), pa.py_buffer(v)],
            null_count=int(missing.sum()),
        )

    def dict_of(codes: np.ndarray, dictionary: Any) -> Any:
        return pa.DictionaryArray.from_arrays(pa.array(codes), dictionary, safe=False)

    def rep(v: np.ndarray) -> np.ndarray:
        return np.repeat(v, k) if k > 1 else v

    for r0 in range(r_lo, r_hi, step):
        r1 = min(r0 + step, r_hi)
        beta = res.beta[r0:r1]
        ok = np.isfinite(beta[:, :, 0]) if k == 1 else np.isfinite(beta).all(axis=2)
        ok &= in_window[r0:r1, None]
        if valid is not None:
            ok &= valid[r0:r1]
        per_date = ok.sum(axis=1)
        m = int(per_date.sum())
        if not m:
            continue
        rows = m * k
        idx = np.flatnonzero(ok)
        sym = rep(grid.take(idx))
        day = np.repeat(days[r0:r1], per_date * k)
        # finite by construction (no NULLs to mark)
        b = beta.reshape(-1).take(idx) if k == 1 else beta[ok].reshape(-1)
        arrays = [
            pa.array(day, type=pa.int32()).view(date32),
            dict_of(sym, symbols),
            dict_of(zeros[:rows], const["model"]),
            dict_of(zeros[:rows], const["estimator"]),
            dict_of(zeros[:rows] if k == 1 else fac_grid[:rows], factor_dict),
            floats(b, nan=False),
            floats(rep(pick(res.alpha, r0, r1, ok, idx))),
            floats(rep(pick(res.r2, r0, r1, ok, idx))),
            floats(rep(pick(res.resid_std, r0, r1, ok, idx))),
            pa.array(rep(pick(res.n_obs, r0, r1, ok, idx)).astype(np.int32, copy=False)),
        ]
        del b, sym, day, ok, idx
        yield pa.RecordBatch.from_arrays(arrays, schema=schema)


#: Elements per block of the in-place compaction (a small temporary per block).
_COMPACT_BLOCK = 1 << 16


def _unpivot(
    res: Any,
    dates: pd.DatetimeIndex,
    symbols: pd.Index,
    factors: list[str],
    estimator: str,
    valid: np.ndarray | None,
) -> pd.DataFrame:
    """``long.unpivot`` (same frame), for one factor without a second full-size copy.

    The kept cells of each (T, N) result array are moved to the front of that same array,
    block by block, and the frame's columns are views of those fronts; the dates go into
    the unused ``beta_se`` array. Peak memory is the result arrays alone (not the arrays
    plus a 30 M-row frame), and no fresh memory is touched for the value columns. Falls
    back to ``long.unpivot`` for several factors or arrays that are not private, writable
    and contiguous (e.g. Kalman's broadcast alpha is picked by ``unpivot``'s rule)."""
    t_len, n, k = res.beta.shape
    if k != 1 or t_len * n == 0:
        return unpivot(res, dates, symbols, factors, estimator, valid)
    beta = res.beta[:, :, 0]
    ok = np.isfinite(beta)
    if valid is not None:
        ok &= valid
    keep = ok.reshape(-1)
    del ok
    cols = {"beta": beta, "alpha": res.alpha, "r2": res.r2, "resid_std": res.resid_std,
            "n_obs": res.n_obs}
    spare = res.beta_se[:, :, 0] if res.beta_se.ndim == 3 else res.beta_se
    movable = {name: _own_flat(a, (t_len, n)) for name, a in cols.items()}
    date_buf = _own_flat(spare, (t_len, n))
    in_place = [a for a in (*movable.values(), date_buf) if a is not None]
    if date_buf is None or date_buf.dtype.itemsize != 8 or _overlapping(in_place):
        return unpivot(res, dates, symbols, factors, estimator, valid)
    code_type = np.int16 if n < 2**15 else np.int32
    day = dates.to_numpy()
    day_i8 = day.view(np.int64)
    date_out = date_buf.view(np.int64)
    sym_out = np.empty(int(keep.sum()), dtype=code_type)
    out: dict[str, np.ndarray] = {}
    for name, a in cols.items():
        if movable[name] is None:  # not ours to overwrite: a plain boolean pick
            out[name] = np.broadcast_to(a, beta.shape).reshape(-1)[keep]
    pos = 0
    for start in range(0, t_len * n, _COMPACT_BLOCK):
        stop = min(start + _COMPACT_BLOCK, t_len * n)
        kb = keep[start:stop]
        idx = np.flatnonzero(kb)
        m = len(idx)
        if not m:
            continue
        flat_idx = idx + start
        sym_out[pos : pos + m] = flat_idx % n
        date_out[pos : pos + m] = day_i8[flat_idx // n]
        if pos != start or m != stop - start:  # else the block is already in place
            for a in movable.values():
                if a is not None:
                    a[pos : pos + m] = a[start:stop][kb]
        pos += m
    data: dict[str, Any] = {
        "date": date_out[:pos].view(day.dtype),
        "symbol": pd.Categorical.from_codes(sym_out, categories=symbols, validate=False),
        "estimator": pd.Categorical.from_codes(
            np.zeros(pos, dtype=np.int8), categories=[estimator], validate=False
        ),
        "factor": pd.Categorical.from_codes(
            np.zeros(pos, dtype=np.int8), categories=list(factors), validate=False
        ),
    }
    for name in cols:
        data[name] = out[name] if movable[name] is None else movable[name][:pos]
    return pd.DataFrame(data, copy=False)


def _own_flat(a: np.ndarray, shape: tuple[int, int]) -> np.ndarray | None:
    """A writable 1-d view of ``a`` (shape ``shape``) when it is a plain contiguous array,
    else None."""
    if a.shape != shape or not a.flags.writeable or not a.flags.c_contiguous:
        return None
    if 0 in a.strides:
        return None
    return a.reshape(-1)


def _overlapping(arrays: list[np.ndarray]) -> bool:
    """Whether any two arrays may share memory (bounds check: conservative and cheap)."""
    return any(
        np.may_share_memory(a, b) for i, a in enumerate(arrays) for b in arrays[i + 1 :]
    )


def _str_categorical(values: pd.Series) -> pd.Series:
    """``values`` as a Categorical with ``str`` categories (no per-row string objects)."""
    if isinstance(values.dtype, pd.CategoricalDtype):
        cats = values.cat.categories
        if cats.dtype == object and all(isinstance(c, str) for c in cats):
            return values
        as_str = cats.astype(str)
        if as_str.is_unique:
            return values.cat.rename_categories(as_str)
    return values.astype(str).astype("category")


def _long_frame(long: pd.DataFrame, model: str, date_col: str) -> pd.DataFrame:
    """unpivot's frame as the beta table's columns, in place (no copy of the value
    columns): ``model`` inserted, string-like columns as str Categoricals."""
    if date_col != "date":
        long = long.rename(columns={"date": date_col}, copy=False)
    for col in ("symbol", "estimator", "factor"):
        long[col] = _str_categorical(long[col])
    codes = np.zeros(len(long), dtype=np.int8)
    long.insert(
        2, "model", pd.Categorical.from_codes(codes, categories=[str(model)], validate=False)
    )
    wanted = [date_col, *BETA_COLUMNS]
    if list(long.columns) != wanted:
        long = long.loc[:, wanted]
    return long
