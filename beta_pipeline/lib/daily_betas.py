"""The ``daily_betas`` computation without Dagster: read what a run over [start, end) needs
(trailing rows when nothing is fitted and the Kalman states are fresh, else the whole
history), estimate every model as Arrow pieces for :func:`warehouse.replace_window_chunks`,
and store the fitted parameters and the filter states the run leaves behind."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import pandas as pd

from beta_pipeline.lib import beta_params, beta_tables, warehouse

if TYPE_CHECKING:  # pragma: no cover
    import duckdb


@dataclass
class DailyInputs:
    """What one run reads: market series, stored parameters and states, and the returns
    from ``read_from`` (None: the first day) with the reason (``why``)."""

    market: pd.DataFrame
    stored: dict[str, pd.DataFrame]
    states: dict[str, dict[str, beta_tables.KalmanState]]
    returns: beta_tables.WideReturns
    read_from: pd.Timestamp | None
    origins: dict[str, int]
    why: str


@dataclass
class DailyOutputs:
    """Filled while the pieces are consumed: parameter rows, filter states, metadata."""

    param_rows: list[pd.DataFrame] = field(default_factory=list)
    states: dict[str, dict[str, beta_tables.KalmanState]] = field(default_factory=dict)
    meta: dict[str, object] = field(default_factory=dict)
    tables: dict[str, str] = field(default_factory=dict)
    pieces: list[warehouse.ArrowPiece] = field(default_factory=list)


def read_inputs(
    conn: duckdb.DuckDBPyConnection,
    models: Sequence[str],
    specs: Sequence[beta_tables.EstimatorSpec],
    start: pd.Timestamp,
    end: pd.Timestamp,
    refit: bool = False,
) -> DailyInputs:
    """Read a run's inputs: only the rows the window estimators need (their windows,
    aligned to their row tiles) when nothing is fitted and the Kalman states are fresh."""
    market = warehouse.read_window(conn, "raw.market", None, end)
    stored = {m: beta_params.read_stored_params(conn, m) for m in models}
    states = beta_tables.read_kalman_states(conn, start)
    dates, symbols = beta_tables.read_calendar(conn, end)
    read_from, origins, why = beta_tables.trailing_read(
        list(models), list(specs), stored, states, dates, symbols, market, start, refit
    )
    # the rows of "SELECT date, symbol, ret_excess, mkt_excess FROM returns.daily WHERE
    # [date >= read_from AND] date < end", pivoted once to (dates x symbols)
    returns = beta_tables.read_returns_wide(conn, end, read_from)
    return DailyInputs(market, stored, states, returns, read_from, origins, why)


def estimate_pieces(
    inputs: DailyInputs,
    models: Sequence[str],
    specs: Sequence[beta_tables.EstimatorSpec],
    settings: beta_params.TuningSettings,
    start: pd.Timestamp,
    end: pd.Timestamp,
    outputs: DailyOutputs,
    log: Callable[[str], None] = lambda _: None,
    warn: Callable[[str], None] = lambda _: None,
) -> Iterator[warehouse.ArrowPiece]:
    """One Arrow piece per (model, estimator), its rows cut from the estimator's arrays
    while DuckDB inserts them; fitted parameters and the filter states after the panel's
    last row go into ``outputs``. The Kalman filter resumes from a fresh stored state
    (one step a day)."""
    calendar = inputs.returns.date_frame()
    for model in models:
        factors = beta_tables.factor_frame(model, calendar, inputs.market)
        if factors is None:
            warn(f"daily_betas: no {model} factors in raw.market; skipped")
            continue
        panel = beta_tables.Panel.from_wide(inputs.returns, factors, inputs.origins.get(model, 0))
        fitted = beta_params.fit_params(
            panel, model, settings, inputs.stored[model], list(specs),
            inputs.states.get(model), start,
        )
        outputs.param_rows.append(fitted.rows)
        outputs.meta.update(fitted.meta)
        outputs.tables.update(fitted.tables)
        t0 = time.perf_counter()
        for piece in beta_tables.estimate_arrow(
            panel, model, fitted.specs, start, end, kalman_state=inputs.states.get(model),
            states_out=outputs.states.setdefault(model, {}),
        ):
            outputs.pieces.append(piece)
            yield piece
        log(
            f"daily_betas: {model} on {panel.y.shape[1]} symbols x {len(panel.dates)} days "
            f"in {time.perf_counter() - t0:.1f}s"
        )


def store_outputs(
    conn: duckdb.DuckDBPyConnection, outputs: DailyOutputs, start: pd.Timestamp
) -> None:
    """Newly fitted parameters into ``betas.estimator_params`` and the filter states into
    ``betas.estimator_state`` (see :func:`beta_tables.store_kalman_state`)."""
    for rows in outputs.param_rows:
        if not len(rows):
            continue
        for (model, est), part in rows.groupby(["model", "estimator"]):
            warehouse.replace_keys(
                conn, "betas.estimator_params", part, {"model": model, "estimator": est}
            )
    for model, by_est in outputs.states.items():
        for est, state in by_est.items():
            beta_tables.store_kalman_state(conn, model, est, state, start)
