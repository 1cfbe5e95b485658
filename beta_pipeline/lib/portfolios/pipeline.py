"""The computation behind the beta-sort assets (no Dagster): one batch of holding months
from their formation months' signals, and the summary with each estimator's source."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd

from beta_pipeline.lib import sorts


@dataclass(frozen=True)
class SortBatch:
    """Rows of portfolios.beta_sorts and portfolios.sort_skipped for a batch of holding
    months, and the holding months with returns but no betas in their formation month."""

    frame: pd.DataFrame
    skipped: pd.DataFrame
    no_betas: list[pd.Timestamp]


def sort_batch(
    signals: pd.DataFrame,
    returns: pd.DataFrame,
    caps: pd.DataFrame | None,
    n_portfolios: int | None,
    percentiles: Sequence[float] | None,
    min_size: int,
) -> SortBatch:
    """Quantile portfolios of ``signals`` (``formation_month, estimator, source, symbol,
    beta``) held over the next month's ``returns`` (``month, symbol, ret_excess``), equal-
    and, with ``caps``, value-weighted; cross-sections skipped for too few stocks or no
    holding-month returns are listed with their holding ``month``."""
    source_of = dict(zip(signals["estimator"], signals["source"], strict=False))
    members, skipped = sorts.form_portfolios(signals, n_portfolios, percentiles, min_size)
    frame, no_returns = sorts.portfolio_returns(members, returns, caps, min_size)
    skipped = pd.concat(
        [f for f in (skipped, no_returns) if len(f)] or [skipped], ignore_index=True
    )
    skipped["month"] = pd.to_datetime(skipped["formation_month"]) + pd.DateOffset(months=1)
    frame["source"] = frame["estimator"].map(source_of)
    held_months = sorted(pd.to_datetime(returns["month"]).unique())
    formed = set(frame["month"])
    no_betas = [m for m in held_months if m not in formed and m not in set(skipped["month"])]
    return SortBatch(frame, skipped, no_betas)


def batch_warnings(batch: SortBatch, label: str, no_signals: bool) -> list[str]:
    """What a run of holding months ``label`` warns about: no betas at all (``no_signals``)
    or for some months, and the cross-sections skipped."""
    out = []
    if no_signals:
        out.append(
            f"no market betas for the formation months of {label} "
            "(materialize daily_betas / monthly_betas for the month before first)"
        )
    elif batch.no_betas:
        out.append(
            "no betas at the end of the month before "
            f"{', '.join(pd.Timestamp(m).strftime('%Y-%m') for m in batch.no_betas)}"
        )
    skipped = batch.skipped
    if len(skipped):
        out.append(
            f"{len(skipped)} (month, estimator) cross-sections skipped for {label}, e.g. "
            f"{skipped['estimator'].iloc[0]}: {skipped['reason'].iloc[0]} "
            "(see portfolios.sort_skipped)"
        )
    return out


def hml_means(frame: pd.DataFrame) -> dict[str, float] | None:
    """Mean equal-weighted high-minus-low excess return per estimator (6 decimals); None
    without high-minus-low rows."""
    hml = frame.loc[(frame["portfolio"] == sorts.HML) & (frame["weighting"] == "ew")]
    if not len(hml):
        return None
    by_est = hml.groupby("estimator")["ret_excess"].mean()
    return {k: round(float(v), 6) for k, v in by_est.dropna().items()}


def summary_with_source(frame: pd.DataFrame, market: pd.DataFrame, lags: int) -> pd.DataFrame:
    """:func:`beta_pipeline.lib.sorts.summarize` of portfolios.beta_sorts rows against the
    monthly market excess return, with each estimator's ``source`` table."""
    summary = sorts.summarize(frame, market, lags)
    source_of = dict(zip(frame["estimator"], frame["source"], strict=False))
    summary["source"] = summary["estimator"].map(source_of)
    return summary


def mean_market_by_estimator(frame: pd.DataFrame, market: pd.DataFrame) -> dict[str, float]:
    """Mean market excess return over each estimator's holding months with a return (the
    security market line's slope)."""
    held = frame.loc[frame["ret_excess"].notna(), ["estimator", "month"]].drop_duplicates()
    return held.merge(market, on="month").groupby("estimator")["mkt_excess"].mean().to_dict()
