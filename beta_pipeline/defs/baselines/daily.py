"""``daily_betas``: daily betas per model and estimator (rolling OLS, EW-WLS, Kalman and
adjusted variants), one scheduled session at a time or a whole backfill in one run."""

import dagster as dg
import pandas as pd

from beta_pipeline.defs.baselines.common import GROUP
from beta_pipeline.defs.partitions import DUCKDB_POOL, session_partitions
from beta_pipeline.defs.resources import ArtifactStore, DuckDBWarehouse
from beta_pipeline.defs.tables import writes
from beta_pipeline.defs.util import (
    materialize_result,
    partition_label,
    plot_entries,
    preview,
    window,
)
from beta_pipeline.lib import beta_params, beta_tables, plots, warehouse
from beta_pipeline.lib import calendar as exchange_calendar
from beta_pipeline.lib import daily_betas as daily


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
    metadata=writes("betas.daily", "betas.estimator_params", "betas.estimator_state"),
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
    settings = beta_params.TuningSettings(
        config.tuning_sessions, config.ewm_half_life_grid, config.refit
    )
    specs = beta_tables.daily_specs(
        config.ols_windows,
        config.tidy_window,
        config.tidy_min_obs,
        config.ewm_window,
        config.adjusted_window,
        config.kalman,
    )
    with warehouse_db.reader() as conn:
        inputs = daily.read_inputs(conn, config.models, specs, start, end, config.refit)
    read_from = inputs.read_from
    context.log.info(
        f"daily_betas: read {inputs.returns.rows:,} return rows from "
        f"{read_from.date() if read_from is not None else 'the first day'} ({inputs.why})"
    )
    if inputs.returns.empty:
        context.log.warning(f"daily_betas: no returns up to {label}; empty partition")
    outputs = daily.DailyOutputs()
    pieces = daily.estimate_pieces(
        inputs, config.models, specs, settings, start, end, outputs,
        log=context.log.info, warn=context.log.warning,
    )
    with warehouse_db.writer() as conn:
        n = warehouse.replace_window_chunks(conn, "betas.daily", pieces, start, end)
        daily.store_outputs(conn, outputs, start)
        sample = conn.execute(
            "SELECT * FROM betas.daily WHERE date >= ? AND date < ? LIMIT 10",
            [start.date(), end.date()],
        ).df()
    context.log.info(f"daily_betas: wrote {n:,} rows for {label}")
    counts = {p.label: p.rows for p in outputs.pieces if p.rows}
    small = {
        "dagster/row_count": n,
        "rows_by_estimator": dg.MetadataValue.json(counts),
        **outputs.meta,
        **{k: dg.MetadataValue.md(v) for k, v in outputs.tables.items()},
    }
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
#: Days before a run's window end in which the plotted symbols are picked.
PICK_DAYS = 10


def _example_plot(
    db: DuckDBWarehouse, start: pd.Timestamp, end: pd.Timestamp, ols: str = "ols_252"
) -> bytes | None:
    """CAPM betas of up to four symbols by the longest rolling OLS (``ols``, e.g. OLS-252),
    EW-WLS and Kalman, over the run's window or at least the ``PLOT_SPAN_DAYS`` before its
    end; None when ``ols`` has no rows there (nothing to plot). The symbols are the first
    four (alphabetically) with an ``ols`` beta in the window's last ``PICK_DAYS`` days, so
    picking them scans days, not the plotted years (at 3,000 stocks the plotted span of
    ``betas.daily`` is ~100 M rows)."""
    first = min(start, end - pd.Timedelta(days=PLOT_SPAN_DAYS))
    recent = max(first, end - pd.Timedelta(days=PICK_DAYS))
    with db.reader() as conn:
        frame = conn.execute(
            """
            WITH pick AS (
                SELECT DISTINCT symbol FROM betas.daily
                WHERE model = 'capm' AND estimator = ? AND date >= ? AND date < ?
                ORDER BY symbol LIMIT 4
            )
            SELECT date, symbol, estimator, beta FROM betas.daily
            WHERE model = 'capm' AND estimator IN (?, 'ewm', 'kalman')
              AND symbol IN (SELECT symbol FROM pick) AND date >= ? AND date < ?
            """,
            [ols, recent.date(), end.date(), ols, first.date(), end.date()],
        ).df()
    if frame.empty:
        return None
    return plots.small_multiples(
        frame, "date", "beta", "symbol", "estimator", "CAPM betas of example stocks"
    )
