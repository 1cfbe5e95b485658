"""Baseline beta tables: daily and monthly betas per model and estimator, and the hedging
leaderboard (next-day hedging error per estimator)."""

import time

import dagster as dg
import numpy as np
import pandas as pd

from beta_pipeline.defs.partitions import (
    DUCKDB_POOL,
    monthly_partitions,
    session_partitions,
)
from beta_pipeline.defs.resources import ArtifactStore, DuckDBWarehouse
from beta_pipeline.defs.util import (
    materialize_result,
    partition_label,
    plot_entries,
    preview,
    window,
)
from beta_pipeline.lib import beta_tables, hedging_sql, plots, warehouse
from beta_pipeline.lib import calendar as exchange_calendar
from beta_pipeline.lib.neuralbeta import store as neuralbeta_store

GROUP = "baselines"


class DailyBetasConfig(dg.Config):
    """Estimators and settings of ``daily_betas``."""

    models: list[str] = ["capm", "ff3", "ff5"]
    ols_windows: list[int] = [60, 252]
    tidy_window: int = 63
    tidy_min_obs: int = 50
    ewm_window: int = 252
    ewm_half_life_grid: list[float] = [5, 10, 21, 42, 63, 126, 252]
    adjusted_window: int = 252
    kalman: bool = True
    refit: bool = False
    """Re-tune the EW half-life and re-fit the Kalman variances even if stored."""
    tuning_sessions: int = 504
    """The EW half-life and the Kalman variances are fitted on the first this-many sessions
    of the return history (8/14 train, 2/14 validation) whatever the run's range, so a daily
    run, the automation and a backfill use the same parameters; until the history is that
    long, the two estimators are not produced."""
    plot: str = "auto"
    """The example-betas PNG: ``auto`` draws it for a run of several sessions and for the
    last session of each week (a scheduled day skips matplotlib the other days, issue 12;
    the PNG on disk is then the week's); ``always`` or ``never``."""


PLOT_CHOICES = ("auto", "always", "never")


def wants_plot(choice: str, start: pd.Timestamp, end: pd.Timestamp) -> bool:
    """Whether a run over sessions in [start, end) draws the example plot (see ``plot``)."""
    if choice not in PLOT_CHOICES:
        raise dg.Failure(f"daily_betas: plot must be one of {PLOT_CHOICES}, not {choice!r}")
    if choice != "auto":
        return choice == "always"
    days = exchange_calendar.sessions(start, end - pd.Timedelta(days=1))
    if len(days) != 1:
        return len(days) > 1
    following = exchange_calendar.next_session(days[-1])
    return following.isocalendar()[:2] != days[-1].isocalendar()[:2]


def _stored_params(conn, model: str) -> pd.DataFrame:
    return conn.execute(
        "SELECT estimator, param, value, fit_start, fit_end FROM betas.estimator_params "
        "WHERE model = ?",
        [model],
    ).df()


def _fit_params(
    panel: beta_tables.Panel,
    model: str,
    config: DailyBetasConfig,
    stored: pd.DataFrame,
    specs: list[beta_tables.EstimatorSpec],
    states: dict[str, beta_tables.KalmanState] | None = None,
    start: pd.Timestamp | None = None,
) -> tuple[list[beta_tables.EstimatorSpec], pd.DataFrame, dict[str, object]]:
    """Specs with tuned parameters; rows for betas.estimator_params; metadata.

    An estimator whose parameters cannot be fitted yet (too little history) is left out of
    this run and nothing is stored for it, so a later run with more history tunes it. A
    fresh Kalman state (``states``: dated at the row before ``start``, same symbols and
    training span) brings the per-symbol parameters it was filtered with: the fit on the
    same training rows would return them, so it is not repeated."""
    if len(panel.dates) == 0:
        return [], pd.DataFrame(), {}

    def whole_history() -> None:
        # beta_tables.trailing_read reads a tail only when nothing is fitted here
        if panel.origin:
            raise RuntimeError(f"daily_betas: {model} would fit on a trailing read")

    span = config.tuning_sessions
    tuning = beta_tables.Panel(
        panel.dates[:span], panel.symbols, panel.factors, panel.y[:span], panel.x[:span]
    )
    train, val = beta_tables.split_rows(span)
    fit_start, val_end = panel.dates[0], panel.dates[min(val.stop, len(panel.dates)) - 1]
    train_end = panel.dates[min(train.stop, len(panel.dates)) - 1]
    history_short = len(panel.dates) < span
    now = pd.Timestamp.now(tz="UTC").tz_localize(None)
    rows: list[dict[str, object]] = []
    meta: dict[str, object] = {}
    out: list[beta_tables.EstimatorSpec] = []
    for spec in specs:
        params = dict(spec.params)
        if spec.kind == "ewm":
            known = stored[(stored["estimator"] == spec.name) & (stored["param"] == "half_life")]
            if len(known) and not config.refit:
                params["half_life"] = float(known["value"].iloc[0])
            else:
                whole_history()
                if history_short:
                    meta[f"{model}_ewm_half_life"] = (
                        f"not tuned (too little history: {len(panel.dates)} of {span} sessions)"
                    )
                    continue
                best, table = beta_tables.tune_ewm(tuning, spec, config.ewm_half_life_grid)
                if not np.isfinite(best):  # no validation errors yet: cannot tune
                    meta[f"{model}_ewm_half_life"] = "not tuned (too little history)"
                    continue
                params["half_life"] = best
                details = table.to_json(orient="records")
                rows.append(
                    dict(
                        model=model,
                        estimator=spec.name,
                        param="half_life",
                        value=best,
                        fit_start=fit_start,
                        fit_end=val_end,
                        details=details,
                        fitted_at=now,
                    )
                )
                meta[f"{model}_ewm_tuning"] = dg.MetadataValue.md(table.to_markdown(index=False))
            meta[f"{model}_ewm_half_life"] = params["half_life"]
        if spec.kind == "kalman":
            if len(panel.factors) != 1:
                continue
            known = stored[(stored["estimator"] == spec.name) & (stored["param"] == "train_rows")]
            state = (states or {}).get(spec.name)
            if len(known) and not config.refit:
                end = pd.Timestamp(known["fit_end"].iloc[0])
                n_train = int((panel.dates <= end).sum())
                if (
                    state is not None
                    and start is not None
                    and state.fit_end == end
                    and state.train_rows == int(known["value"].iloc[0])
                    and state.start_row(panel, start) is not None
                ):
                    # resumed filter: the stored parameters; no refit, nothing re-stored
                    params.update(beta_tables.kalman_state_params(state))
                    params.update(_train_rows=state.train_rows, _fit_end=end)
                    out.append(
                        beta_tables.EstimatorSpec(spec.name, spec.kind, params, spec.single_factor)
                    )
                    meta[f"{model}_kalman"] = f"resumed from the state of {state.date.date()}"
                    continue
            whole_history()
            if len(known) and not config.refit:
                pass  # the stored training span (end, n_train above)
            elif history_short:
                meta[f"{model}_kalman"] = (
                    f"not fitted (too little history: {len(panel.dates)} of {span} sessions)"
                )
                continue
            else:
                end, n_train = train_end, train.stop
            fit = (
                beta_tables.fit_kalman(
                    beta_tables.Panel(
                        panel.dates[:n_train],
                        panel.symbols,
                        panel.factors,
                        panel.y[:n_train],
                        panel.x[:n_train],
                    ),
                    train_rows=n_train,
                )
                if n_train > 30
                else None
            )
            if fit is None:
                continue
            params.update(fit)
            params.update(_train_rows=n_train, _fit_end=end)
            snr = float(np.nanmedian(np.asarray(fit["q"]) / np.asarray(fit["h"])))
            rows.append(
                dict(
                    model=model,
                    estimator=spec.name,
                    param="train_rows",
                    value=float(n_train),
                    fit_start=fit_start,
                    fit_end=end,
                    details=f"median q/h = {snr:.3g}",
                    fitted_at=now,
                )
            )
            meta[f"{model}_kalman_q_over_h"] = snr
        out.append(beta_tables.EstimatorSpec(spec.name, spec.kind, params, spec.single_factor))
    return out, pd.DataFrame(rows), meta


@dg.asset(
    partitions_def=session_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
    deps=[
        "daily_returns",
        "raw_market",
    ],
    pool=DUCKDB_POOL,
    kinds={"duckdb", "numpy"},
    group_name=GROUP,
    description="Daily betas (CAPM/FF3/FF5) by rolling OLS, EW-WLS, Kalman and adjusted variants.",
)
def daily_betas(
    context: dg.AssetExecutionContext,
    config: DailyBetasConfig,
    warehouse_db: DuckDBWarehouse,
    artifacts: ArtifactStore,
) -> dg.MaterializeResult:
    """Writes rows dated inside the run's window. Window estimators compute only those
    rows; the Kalman filter resumes from ``betas.estimator_state`` when the state is dated
    at the session before the window (else it runs from the first day), so a daily run and
    a backfill write the same values."""
    start, end = window(context)
    label = partition_label(start, end)
    specs = beta_tables.daily_specs(
        config.ols_windows,
        config.tidy_window,
        config.tidy_min_obs,
        config.ewm_window,
        config.adjusted_window,
        config.kalman,
    )
    with warehouse_db.reader() as conn:
        market = warehouse.read_window(conn, "raw.market", None, end)
        stored = {m: _stored_params(conn, m) for m in config.models}
        states_in = beta_tables.read_kalman_states(conn, start)
        # nothing to fit and fresh Kalman states: read only the rows the window estimators
        # need (their windows, aligned to their row tiles), else the whole history
        dates, symbols = beta_tables.read_calendar(conn, end)
        read_from, origins, why = beta_tables.trailing_read(
            config.models, specs, stored, states_in, dates, symbols, market, start,
            config.refit,
        )
        # the rows of "SELECT date, symbol, ret_excess, mkt_excess FROM returns.daily WHERE
        # [date >= read_from AND] date < end", pivoted once to (dates x symbols)
        returns = beta_tables.read_returns_wide(conn, end, read_from)
    context.log.info(
        f"daily_betas: read {returns.rows:,} return rows from "
        f"{read_from.date() if read_from is not None else 'the first day'} ({why})"
    )
    states_out: dict[str, dict[str, beta_tables.KalmanState]] = {}
    calendar = returns.date_frame()
    meta: dict[str, object] = {}
    param_rows: list[pd.DataFrame] = []
    written: list[warehouse.ArrowPiece] = []

    def pieces():
        for model in config.models:
            factors = beta_tables.factor_frame(model, calendar, market)
            if factors is None:
                context.log.warning(f"daily_betas: no {model} factors in raw.market; skipped")
                continue
            panel = beta_tables.Panel.from_wide(returns, factors, origins.get(model, 0))
            tuned, rows, extra = _fit_params(
                panel, model, config, stored[model], specs, states_in.get(model), start
            )
            param_rows.append(rows)
            meta.update(extra)
            t0 = time.perf_counter()
            # one piece per estimator: its rows are cut from the estimator's arrays while
            # DuckDB inserts them (overlapping the next estimator)
            # the Kalman filter resumes from the stored state when it is fresh (one step a
            # day) and leaves its state after the panel's last row in states_out
            out = states_out.setdefault(model, {})
            for piece in beta_tables.estimate_arrow(
                panel, model, tuned, start, end, kalman_state=states_in.get(model),
                states_out=out,
            ):
                written.append(piece)
                yield piece
            context.log.info(
                f"daily_betas: {model} on {panel.y.shape[1]} symbols x {len(panel.dates)} days "
                f"in {time.perf_counter() - t0:.1f}s"
            )

    if returns.empty:
        context.log.warning(f"daily_betas: no returns up to {label}; empty partition")
    with warehouse_db.writer() as conn:
        n = warehouse.replace_window_chunks(conn, "betas.daily", pieces(), start, end)
        counts = {p.label: p.rows for p in written if p.rows}
        for rows in param_rows:
            if len(rows):
                for (model, est), part in rows.groupby(["model", "estimator"]):
                    warehouse.replace_keys(
                        conn,
                        "betas.estimator_params",
                        part,
                        {"model": model, "estimator": est},
                    )
        for model, by_est in states_out.items():
            for est, state in by_est.items():
                beta_tables.store_kalman_state(conn, model, est, state, start)
        sample = conn.execute(
            "SELECT * FROM betas.daily WHERE date >= ? AND date < ? LIMIT 10",
            [start.date(), end.date()],
        ).df()
    context.log.info(f"daily_betas: wrote {n:,} rows for {label}")
    small = {"dagster/row_count": n, "rows_by_estimator": dg.MetadataValue.json(counts), **meta}
    rich: dict[str, object] = {"preview": preview(sample)}
    png = (
        _example_plot(warehouse_db, start, end, f"ols_{max(config.ols_windows)}")
        if n and config.ols_windows and wants_plot(config.plot, start, end)
        else None
    )
    if png is not None:
        # a range run keeps its plot per range; an incremental (one-day) run overwrites one
        # file, so that daily runs do not leave a file per day
        name = label if (end - start).days > 7 else "latest"
        path = artifacts.path("baselines", f"daily_betas_examples_{name}.png")
        rich.update(plot_entries("example_betas", png, path, "example betas"))
    return materialize_result(context, small, rich)


#: Days of history before a run's window end that the example plot shows at least (a
#: one-day run still plots its betas' recent path).
PLOT_SPAN_DAYS = 730


def _example_plot(
    db: DuckDBWarehouse, start: pd.Timestamp, end: pd.Timestamp, ols: str = "ols_252"
) -> bytes | None:
    """CAPM betas of up to four symbols by the longest rolling OLS (``ols``, e.g. OLS-252),
    EW-WLS and Kalman, over the run's window or at least the ``PLOT_SPAN_DAYS`` before its
    end; None when ``ols`` has no rows there (nothing to plot)."""
    first = min(start, end - pd.Timedelta(days=PLOT_SPAN_DAYS))
    with db.reader() as conn:
        frame = conn.execute(
            """
            WITH pick AS (
                SELECT symbol FROM betas.daily
                WHERE model = 'capm' AND estimator = ? AND date >= ? AND date < ?
                GROUP BY symbol ORDER BY count(*) DESC, symbol LIMIT 4
            )
            SELECT date, symbol, estimator, beta FROM betas.daily
            WHERE model = 'capm' AND estimator IN (?, 'ewm', 'kalman')
              AND symbol IN (SELECT symbol FROM pick) AND date >= ? AND date < ?
            """,
            [ols, first.date(), end.date(), ols, first.date(), end.date()],
        ).df()
    if frame.empty:
        return None
    return plots.small_multiples(
        frame, "date", "beta", "symbol", "estimator", "CAPM betas of example stocks"
    )


class MonthlyBetasConfig(dg.Config):
    """Settings of ``monthly_betas`` (Tidy Finance: 60 months, at least 48)."""

    models: list[str] = ["capm", "ff3", "ff5"]
    window: int = 60
    min_obs: int = 48


@dg.asset(
    partitions_def=monthly_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
    # the 60-month window is read from the warehouse, not declared (exact backfills)
    deps=["monthly_returns", "raw_market_monthly"],
    pool=DUCKDB_POOL,
    kinds={"duckdb", "numpy"},
    group_name=GROUP,
    description="Monthly rolling OLS betas (60 months, min 48) for CAPM, FF3 and FF5.",
)
def monthly_betas(
    context: dg.AssetExecutionContext,
    config: MonthlyBetasConfig,
    warehouse_db: DuckDBWarehouse,
    artifacts: ArtifactStore,
) -> dg.MaterializeResult:
    start, end = window(context)
    label = partition_label(start, end, monthly=True)
    lookback = start - pd.DateOffset(months=config.window + 1)
    with warehouse_db.reader() as conn:
        returns = warehouse.read_window(conn, "returns.monthly", lookback, end)
        market = warehouse.read_window(conn, "raw.market_monthly", lookback, end)
    name = f"ols_{config.window}m"
    spec = beta_tables.EstimatorSpec(
        name, "ols", {"window": config.window, "min_obs": config.min_obs}
    )
    counts: dict[str, int] = {}

    def pieces():
        for model in config.models:
            factors = beta_tables.factor_frame(model, returns, market, date_col="month")
            if factors is None:
                context.log.warning(f"monthly_betas: no {model} factors for {label}; skipped")
                continue
            panel = beta_tables.Panel.build(returns, factors, date_col="month")
            for frame in beta_tables.estimate(panel, model, [spec], start, end, "month"):
                counts[model] = len(frame)
                yield frame

    with warehouse_db.writer() as conn:
        n = warehouse.replace_window_chunks(conn, "betas.monthly", pieces(), start, end)
        sample = conn.execute(
            "SELECT * FROM betas.monthly WHERE month >= ? AND month < ? LIMIT 10",
            [start.date(), end.date()],
        ).df()
    context.log.info(f"monthly_betas: wrote {n:,} rows for {label}")
    small = {"dagster/row_count": n, "rows_by_model": dg.MetadataValue.json(counts)}
    rich: dict[str, object] = {"preview": preview(sample)}
    png = _monthly_plot(warehouse_db, name, start, end) if n else None
    if png is not None:
        monthly = (end - start).days > 40
        path = artifacts.path("baselines", f"monthly_betas_{label if monthly else 'latest'}.png")
        rich.update(plot_entries("beta_distribution", png, path, "monthly CAPM betas"))
    return materialize_result(context, small, rich)


def _monthly_plot(
    db: DuckDBWarehouse, estimator: str, start: pd.Timestamp, end: pd.Timestamp
) -> bytes | None:
    """Cross-sectional distribution of the monthly CAPM betas over the run's window (at
    least the ten years before its end); None without rows."""
    first = min(start, end - pd.DateOffset(years=10))
    with db.reader() as conn:
        frame = conn.execute(
            "SELECT month, beta FROM betas.monthly WHERE model = 'capm' AND estimator = ? "
            "AND month >= ? AND month < ? AND isfinite(beta)",
            [estimator, first.date(), end.date()],
        ).df()
    if frame.empty:
        return None
    frame["month"] = pd.to_datetime(frame["month"])
    return plots.quantile_bands(
        frame, "month", "beta", f"Monthly CAPM betas ({estimator}) across stocks", "beta"
    )


class HedgingConfig(dg.Config):
    """Reference estimator of the leaderboard (the paper's metric: % over rolling OLS)."""

    reference: str = "ols_252"


@dg.asset(
    deps=["daily_betas", "daily_returns", "raw_market", "neuralbeta_betas"],
    pool=DUCKDB_POOL,
    kinds={"duckdb", "sql"},
    group_name=GROUP,
    description="Leaderboard of next-day hedging RMSE per estimator, overall and by year.",
)
def hedging_performance(
    context: dg.AssetExecutionContext,
    config: HedgingConfig,
    warehouse_db: DuckDBWarehouse,
    artifacts: ArtifactStore,
) -> dg.MaterializeResult:
    with warehouse_db.writer() as conn:
        table = hedging_sql.leaderboard(conn, reference=config.reference)
        if neuralbeta_store.has_rows(conn, "neuralbeta.betas"):
            guests = hedging_sql.guest_leaderboard(
                conn, hedging_sql.NEURALBETA_GUESTS, reference=config.reference
            )
            table = pd.concat([table, guests], ignore_index=True)
        warehouse.replace_keys(conn, "betas.hedging_performance", table, {})
    overall = table[table["period"] == "all"].sort_values(["model", "rmse"])
    test = table[table["period"] == "test"].sort_values(["model", "rmse"])
    context.log.info(f"hedging_performance: {len(overall)} estimator rows")
    meta: dict[str, object] = {"dagster/row_count": len(table)}
    for name, part in (("leaderboard_test", test), ("leaderboard_all", overall)):
        meta[name] = dg.MetadataValue.md(
            part.to_markdown(index=False, floatfmt=".6g") if len(part) else "_empty_"
        )
    overall = test if len(test) else overall
    plottable = overall.dropna(subset=["improvement_pct"])
    if len(overall) and plottable.empty:
        context.log.warning(
            f"hedging_performance: reference estimator {config.reference!r} has no hedging "
            "errors (not in betas.daily?); improvement_pct is NULL and no plot is made"
        )
    if len(plottable):
        png = plots.bars(
            plottable,
            "estimator",
            "improvement_pct",
            f"% RMSE improvement over {config.reference} (next-day hedge, test span)",
            hue="model",
        )
        path = artifacts.path("baselines", "hedging_performance.png")
        meta.update(plot_entries("improvement_plot", png, path, "improvement over OLS"))
    return dg.MaterializeResult(metadata=meta)
