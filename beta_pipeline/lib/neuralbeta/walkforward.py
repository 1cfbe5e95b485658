"""Walk-forward retraining of the market NeuralBeta models (no Dagster import).

A run is keyed by its **cut-off year** ``C`` (expanding window): it trains on every target
date up to the end of ``C - 1``, validates on year ``C`` and serves year ``C + 1`` (inference
picks, per date, the newest run trained on data up to that date). Like every training it
leaves a run bundle (:mod:`beta_pipeline.lib.neuralbeta.bundles`).
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from beta_pipeline.lib.errors import DataValidationError
from beta_pipeline.lib.neuralbeta.market import market_panel

#: The (experiment, model) key of a walk-forward partition: ``univariate.gru_nbi``.
SPEC_SEP = "."


@dataclass(frozen=True)
class CutoffSplit:
    """Dates of one walk-forward run (all inclusive)."""

    cutoff: int
    train_end: pd.Timestamp  # last target date trained on: 31 Dec of C-1
    val_end: pd.Timestamp  # last target date validated on (= last date read): 31 Dec of C
    #: first day whose return its betas hedge: 1 Jan of C+1 (its first beta is dated the
    #: last session of C: data through that day, hedging the next session)
    serves_from: pd.Timestamp

    def as_strings(self) -> dict[str, str]:
        return {
            "data_end": str(self.val_end.date()),
            "train_end": str(self.train_end.date()),
            "val_end": str(self.val_end.date()),
        }


def cutoff_split(cutoff: int | str) -> CutoffSplit:
    """The split of cut-off year ``cutoff``: train through C-1, validate on C, serve C+1."""
    year = int(cutoff)
    return CutoffSplit(
        year,
        pd.Timestamp(year - 1, 12, 31),
        pd.Timestamp(year, 12, 31),
        pd.Timestamp(year + 1, 1, 1),
    )


def spec_key(experiment: str, model: str) -> str:
    return f"{experiment}{SPEC_SEP}{model}"


def parse_spec(key: str) -> tuple[str, str]:
    """``univariate.gru_nbi`` -> ``("univariate", "gru_nbi")``."""
    experiment, sep, model = key.partition(SPEC_SEP)
    if not sep or not experiment or not model:
        raise ValueError(f"walk-forward key {key!r} is not '<experiment>{SPEC_SEP}<model>'")
    return experiment, model


def available_cutoffs(
    returns: pd.DataFrame, market: pd.DataFrame, experiment: str, window: int, every: int = 1
) -> list[int]:
    """Cut-off years the data supports for ``experiment``: training windows in the years
    before C (from the first date with a full ``window``; that first year may be partial)
    and a complete validation year C (the data goes on past it); every ``every``-th year
    counted back from the newest (so the newest cut-off is always trained)."""
    try:
        y, _, _ = market_panel(returns, market, experiment)
    except DataValidationError:
        return []
    dates = y.index
    if len(dates) <= window:
        return []
    first_target_year = dates[window - 1].year  # the first date with a full window
    first = first_target_year + 1  # train on at least one year (the first, maybe partial)
    last = dates[-1].year - 1  # the data's last year may be incomplete
    years = list(range(first, last + 1))
    return sorted(years[::-1][:: max(every, 1)])


def coverage(runs: pd.DataFrame) -> pd.DataFrame:
    """Per (experiment, model): cut-offs trained and the first date served out of sample."""
    if runs.empty:
        return pd.DataFrame(columns=["experiment", "model", "cutoffs", "first_served"])
    rows = []
    for (experiment, model), grp in runs.groupby(["experiment", "model"]):
        cutoffs = sorted(int(c) for c in grp["cutoff"].dropna().unique())
        rows.append(
            {
                "experiment": experiment,
                "model": model,
                "cutoffs": ", ".join(map(str, cutoffs)),
                "first_served": str(cutoff_split(cutoffs[0]).serves_from.date()) if cutoffs else "",
            }
        )
    return pd.DataFrame(rows)
