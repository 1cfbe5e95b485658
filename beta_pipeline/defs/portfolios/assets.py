"""Portfolio sorts on beta: each month's quantile portfolios of every estimator's beta known
at the previous month end, their next-month excess returns, and the summary with
Newey-West t-statistics and CAPM alphas (METHODS.md section 8).

Partition = the **holding** month t+1: its run sorts on betas of the formation month t
(``betas.daily``: each symbol's last finite market beta dated inside month t;
``betas.monthly``: month t; ``neuralbeta.betas`` when that table exists) and reads
``returns.monthly`` of t+1, so the monthly schedule (the 2nd of the next month) always
finds the holding month's returns in place.

Estimator key: ``<model>/<estimator>`` for betas.daily and betas.monthly (e.g.
``capm/ols_252``, ``capm/kalman``, ``ff3/ewm``, ``capm/ols_60m``; multi-factor models are
sorted on their market beta ``mkt_rf``), ``neuralbeta/<experiment>/<model>`` for
neuralbeta.betas; the ``source`` column names the table. neuralbeta.betas is read
opportunistically (no declared dependency: lineage is wired by the neuralbeta domain).
"""


import fnmatch

import dagster as dg
import numpy as np
import pandas as pd

from beta_pipeline.defs.partitions import DUCKDB_POOL, monthly_partitions
from beta_pipeline.defs.portfolios import plots as sort_plots
from beta_pipeline.defs.resources import ArtifactStore, DuckDBWarehouse
from beta_pipeline.defs.util import (
    materialize_result,
    partition_label,
    plot_entries,
    preview,
    window,
)
from beta_pipeline.lib import sorts, warehouse

GROUP = "portfolios"
#: Factor names of the market beta in the beta tables (CAPM, FF3/FF5, neural models).
MARKET_FACTORS = ["mkt_excess", "mkt_rf", "mkt"]

class BetaSortsConfig(dg.Config):
    """Breakpoints and estimator selection of ``beta_portfolio_sorts``."""

    n_portfolios: int = 0
    """Quantile portfolios; 0 = auto from the symbols in returns.monthly: deciles from 100,
    quintiles from 15 (the embedded 20 stocks), else terciles."""
    percentiles: list[float] = []
    """Explicit interior breakpoints, e.g. [0.3, 0.7]; overrides n_portfolios."""
    min_portfolio_size: int = 1
    """Fewer stocks in a formation month than portfolios x this: month skipped (recorded in
    portfolios.sort_skipped); a portfolio below it has a NULL return."""
    models: list[str] = ["capm", "ff3", "ff5"]
    sources: list[str] = ["daily", "monthly", "neuralbeta"]
    estimators: list[str] = []
    """Glob patterns on the estimator key (e.g. 'capm/*'); empty = every estimator."""
    plot_estimators: list[str] = []
    """Glob patterns of the estimators in the figures; empty = a headline set."""


def _columns(conn, schema: str, name: str) -> set[str]:
    """Columns of ``schema.name`` (empty when the table does not exist)."""
    rows = conn.execute(
        "SELECT column_name FROM information_schema.columns "
        "WHERE table_schema = ? AND table_name = ?",
        [schema, name],
    ).fetchall()
    return {r[0] for r in rows}


def _signals(
    conn, config: BetaSortsConfig, lo: pd.Timestamp, hi: pd.Timestamp, notes: dict[str, object]
) -> pd.DataFrame:
    """Market betas known at each formation month end in [lo, hi): formation_month,
    estimator, source, symbol, beta."""
    parts: list[pd.DataFrame] = []
    params = [lo.date(), hi.date(), MARKET_FACTORS, list(config.models)]
    if "daily" in config.sources:
        parts.append(conn.execute(
            """
            SELECT date_trunc('month', date) AS formation_month,
                   model || '/' || estimator AS estimator, 'betas.daily' AS source, symbol,
                   arg_max(beta, date) AS beta
            FROM betas.daily
            WHERE date >= ? AND date < ? AND isfinite(beta)
              AND list_contains(?::VARCHAR[], factor) AND list_contains(?::VARCHAR[], model)
            GROUP BY ALL
            """,
            params,
        ).df())
    if "monthly" in config.sources:
        parts.append(conn.execute(
            """
            SELECT month AS formation_month, model || '/' || estimator AS estimator,
                   'betas.monthly' AS source, symbol, beta
            FROM betas.monthly
            WHERE month >= ? AND month < ? AND isfinite(beta)
              AND list_contains(?::VARCHAR[], factor) AND list_contains(?::VARCHAR[], model)
            """,
            params,
        ).df())
    if "neuralbeta" in config.sources:
        cols = _columns(conn, "neuralbeta", "betas")
        need = {"date", "symbol", "experiment", "model", "factor", "beta"}
        if not cols:
            notes["neuralbeta"] = "neuralbeta.betas does not exist yet: no NeuralBeta sorts"
        elif not need <= cols:
            notes["neuralbeta"] = f"neuralbeta.betas lacks {sorted(need - cols)}: skipped"
        else:
            tie = ", run_id DESC" if "run_id" in cols else ""
            frame = conn.execute(
                f"""
                SELECT date_trunc('month', date) AS formation_month,
                       'neuralbeta/' || experiment || '/' || model AS estimator,
                       'neuralbeta.betas' AS source, symbol, beta
                FROM neuralbeta.betas
                WHERE date >= ? AND date < ? AND isfinite(beta)
                  AND list_contains(?::VARCHAR[], factor)
                QUALIFY row_number() OVER (
                    PARTITION BY date_trunc('month', date), experiment, model, symbol
                    ORDER BY date DESC{tie}) = 1
                """,
                params[:3],
            ).df()
            notes["neuralbeta"] = (
                f"{frame['estimator'].nunique()} NeuralBeta estimator(s)" if len(frame)
                else "neuralbeta.betas has no betas for these formation months"
            )
            parts.append(frame)
    parts = [p for p in parts if len(p)]
    if not parts:
        return pd.DataFrame(columns=["formation_month", "estimator", "source", "symbol", "beta"])
    out = pd.concat(parts, ignore_index=True)
    if config.estimators:
        keep = {e for p in config.estimators for e in fnmatch.filter(out["estimator"].unique(), p)}
        out = out.loc[out["estimator"].isin(keep)]
    out["formation_month"] = pd.to_datetime(out["formation_month"])
    return out


def _market_caps(conn, lo: pd.Timestamp, hi: pd.Timestamp) -> tuple[pd.DataFrame | None, str]:
    """Market capitalisation at each formation month end (last close x shares outstanding,
    or a market_cap column) when raw.prices has one; else None and the reason."""
    cols = _columns(conn, "raw", "prices")
    if "market_cap" in cols:
        expr = "market_cap"
    elif "shares_outstanding" in cols:
        expr = "close * shares_outstanding"
    else:
        return None, (
            "equal-weighted only: the sources give no market capitalisation or shares "
            "outstanding (raw.prices has close and volume), so no value weights"
        )
    frame = conn.execute(
        f"""
        SELECT date_trunc('month', date) AS formation_month, symbol,
               arg_max({expr}, date) AS market_cap
        FROM raw.prices WHERE date >= ? AND date < ? AND {expr} > 0
        GROUP BY ALL
        """,
        [lo.date(), hi.date()],
    ).df()
    if frame.empty:
        return None, f"equal-weighted only: raw.prices has {expr} but no positive value"
    frame["formation_month"] = pd.to_datetime(frame["formation_month"])
    return frame, f"equal- and value-weighted (weights: {expr} at the formation month end)"


def _n_portfolios(conn, config: BetaSortsConfig) -> tuple[int | None, str]:
    if config.percentiles:
        return None, f"percentiles {list(config.percentiles)}"
    if config.n_portfolios:
        return config.n_portfolios, f"{config.n_portfolios} portfolios (configured)"
    universe = int(conn.execute("SELECT count(DISTINCT symbol) FROM returns.monthly").fetchone()[0])
    n = sorts.auto_n_portfolios(universe)
    name = {10: "deciles", 5: "quintiles", 3: "terciles"}[n]
    return n, f"{name} (auto: {universe} symbols in returns.monthly)"


@dg.asset(
    partitions_def=monthly_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
    # same-month deps (a holding month's run follows its month's data); the sort reads the
    # previous month-end's betas from the warehouse: trailing windows are read, not declared,
    # so a backfill of months A..B materializes exactly A..B
    deps=["monthly_returns", "monthly_betas", "daily_betas", "neuralbeta_betas"],
    pool=DUCKDB_POOL,
    kinds={"duckdb", "python", "pandas"},
    group_name=GROUP,
    description="Monthly beta-sorted quantile portfolios per estimator: next-month returns, HML.",
)
def beta_portfolio_sorts(
    context: dg.AssetExecutionContext,
    config: BetaSortsConfig,
    warehouse_db: DuckDBWarehouse,
    artifacts: ArtifactStore,
) -> dg.MaterializeResult:
    """Partition = holding month t+1; sorts on betas of month t (see the module doc)."""
    start, end = window(context)
    label = partition_label(start, end, monthly=True)
    f_lo, f_hi = start - pd.DateOffset(months=1), end - pd.DateOffset(months=1)
    notes: dict[str, object] = {}
    with warehouse_db.reader() as conn:
        signals = _signals(conn, config, f_lo, f_hi, notes)
        returns = warehouse.read_window(
            conn, "returns.monthly", start, end, ["month", "symbol", "ret_excess"]
        )
        caps, weighting_note = _market_caps(conn, f_lo, f_hi)
        n_port, n_note = _n_portfolios(conn, config)
    source_of = dict(zip(signals["estimator"], signals["source"], strict=False))
    members, skipped = sorts.form_portfolios(
        signals, n_port, config.percentiles or None, config.min_portfolio_size
    )
    frame, no_returns = sorts.portfolio_returns(
        members, returns, caps, config.min_portfolio_size
    )
    skipped = pd.concat(
        [f for f in (skipped, no_returns) if len(f)] or [skipped], ignore_index=True
    )
    skipped["month"] = pd.to_datetime(skipped["formation_month"]) + pd.DateOffset(months=1)
    frame["source"] = frame["estimator"].map(source_of)
    held_months = sorted(pd.to_datetime(returns["month"]).unique())
    formed = set(frame["month"])
    no_betas = [m for m in held_months if m not in formed and m not in set(skipped["month"])]
    if signals.empty:
        context.log.warning(
            f"beta_portfolio_sorts: no market betas for the formation months of {label} "
            "(materialize daily_betas / monthly_betas for the month before first)"
        )
    elif no_betas:
        context.log.warning(
            f"beta_portfolio_sorts: no betas at the end of the month before "
            f"{', '.join(pd.Timestamp(m).strftime('%Y-%m') for m in no_betas)}"
        )
    if len(skipped):
        context.log.warning(
            f"beta_portfolio_sorts: {len(skipped)} (month, estimator) cross-sections skipped "
            f"for {label}, e.g. {skipped['estimator'].iloc[0]}: {skipped['reason'].iloc[0]} "
            "(see portfolios.sort_skipped)"
        )
    with warehouse_db.writer() as conn:
        n = warehouse.replace_window(conn, "portfolios.beta_sorts", frame, start, end)
        warehouse.replace_window(conn, "portfolios.sort_skipped", skipped, start, end)
        history = conn.execute(
            "SELECT month, estimator, portfolio, weighting, ret_excess, mean_beta "
            "FROM portfolios.beta_sorts WHERE weighting = 'ew'"
        ).df()
    context.log.info(f"beta_portfolio_sorts: wrote {n:,} rows for {label}")
    hml = frame.loc[(frame["portfolio"] == sorts.HML) & (frame["weighting"] == "ew")]
    small: dict[str, object] = {
        "dagster/row_count": n,
        "estimators": int(frame["estimator"].nunique()),
        "portfolios": n_note,
        "weighting": weighting_note,
        "skipped_cross_sections": len(skipped),
        "months_without_betas": len(no_betas),
        **notes,
    }
    rich: dict[str, object] = {"preview": preview(frame, 12)}
    if len(hml):
        by_est = hml.groupby("estimator")["ret_excess"].mean()
        rich["hml_mean_ew_by_estimator"] = dg.MetadataValue.json(
            {k: round(float(v), 6) for k, v in by_est.dropna().items()}
        )
    if len(skipped):
        rich["skipped"] = preview(skipped.astype({"month": str, "formation_month": str}), 10)
    history["month"] = pd.to_datetime(history["month"])
    if history["month"].nunique() >= 3:
        chosen = sort_plots.headline(
            sorted(history["estimator"].unique()), config.plot_estimators or None
        )
        for name, png in (
            ("cumulative_hml", sort_plots.cumulative_hml(history, chosen)),
            ("mean_beta", sort_plots.mean_beta_over_time(history, chosen[:4])),
        ):
            path = artifacts.path("portfolios", f"beta_sorts_{name}.png")
            rich.update(plot_entries(name, png, path))
    return materialize_result(context, small, rich)


class SummaryConfig(dg.Config):
    """Newey-West lags and the estimators in the security-market-line figure."""

    nw_lags: int = sorts.NW_LAGS
    plot_estimators: list[str] = []


@dg.asset(
    deps=["beta_portfolio_sorts", "monthly_returns"],
    pool=DUCKDB_POOL,
    kinds={"duckdb", "python", "statsmodels"},
    group_name=GROUP,
    description="Beta-sort summary: mean excess return, Newey-West t, CAPM alpha per portfolio.",
)
def beta_portfolio_summary(
    context: dg.AssetExecutionContext,
    config: SummaryConfig,
    warehouse_db: DuckDBWarehouse,
    artifacts: ArtifactStore,
) -> dg.MaterializeResult:
    """Every month of portfolios.beta_sorts, regressed on the month's market excess return
    (returns.monthly); replaces portfolios.summary."""
    with warehouse_db.reader() as conn:
        frame = warehouse.read_window(conn, "portfolios.beta_sorts")
        market = conn.execute(
            "SELECT month, any_value(mkt_excess) AS mkt_excess FROM returns.monthly "
            "WHERE mkt_excess IS NOT NULL GROUP BY month"
        ).df()
    market["month"] = pd.to_datetime(market["month"])
    if frame.empty:
        context.log.warning(
            "beta_portfolio_summary: portfolios.beta_sorts is empty (materialize "
            "beta_portfolio_sorts first); the summary is empty"
        )
    summary = sorts.summarize(frame, market, config.nw_lags)
    source_of = dict(zip(frame["estimator"], frame["source"], strict=False))
    summary["source"] = summary["estimator"].map(source_of)
    with warehouse_db.writer() as conn:
        n = warehouse.replace_keys(conn, "portfolios.summary", summary, {})
    context.log.info(f"beta_portfolio_summary: {n} rows")
    meta: dict[str, object] = {"dagster/row_count": n, "nw_lags": config.nw_lags}
    hml = summary.loc[(summary["portfolio"] == sorts.HML) & (summary["weighting"] == "ew")]
    cols = ["estimator", "n_portfolios", "n_months", "mean_ret_excess", "t_mean", "alpha",
            "t_alpha"]
    meta["high_minus_low_ew"] = preview(hml.loc[:, cols], 40)
    if len(summary):
        # the SML's slope: mean market excess return over each estimator's holding months
        held = frame.loc[frame["ret_excess"].notna(), ["estimator", "month"]].drop_duplicates()
        mkt_mean = (
            held.merge(market, on="month").groupby("estimator")["mkt_excess"].mean().to_dict()
        )
        chosen = sort_plots.headline(
            sorted(summary["estimator"].unique()), config.plot_estimators or None
        )
        plottable = summary.loc[np.isfinite(summary["capm_beta"].astype(float))]
        chosen = [e for e in chosen if e in set(plottable["estimator"]) and e in mkt_mean]
        if chosen:
            png = sort_plots.security_market_line(plottable, mkt_mean, chosen)
            path = artifacts.path("portfolios", "beta_sorts_sml.png")
            meta.update(plot_entries("security_market_line", png, path, "security market line"))
    return dg.MaterializeResult(metadata=meta)


PORTFOLIO_ASSETS: list[dg.AssetsDefinition] = [beta_portfolio_sorts, beta_portfolio_summary]
