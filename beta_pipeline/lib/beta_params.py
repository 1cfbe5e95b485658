"""Fitted parameters of the daily beta estimators (EW-WLS half-life, Kalman variances):
tuned once on the first ``tuning_sessions`` of the return history and stored in
``betas.estimator_params``, so a daily run, the automation and a backfill use the same
parameters; a fresh Kalman state brings the parameters it was filtered with."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from beta_pipeline.lib import beta_tables

if TYPE_CHECKING:  # pragma: no cover
    import duckdb


@dataclass(frozen=True)
class TuningSettings:
    """How parameters are fitted (see ``DailyBetasConfig``)."""

    tuning_sessions: int
    ewm_half_life_grid: Sequence[float]
    refit: bool = False


@dataclass
class FittedParams:
    """Specs ready to run, rows for ``betas.estimator_params``, metadata values and
    Markdown tables (e.g. the half-life grid) to show."""

    specs: list[beta_tables.EstimatorSpec]
    rows: pd.DataFrame
    meta: dict[str, object]
    tables: dict[str, str]


def read_stored_params(conn: duckdb.DuckDBPyConnection, model: str) -> pd.DataFrame:
    """The fitted parameters stored for ``model`` in ``betas.estimator_params``."""
    return conn.execute(
        "SELECT estimator, param, value, fit_start, fit_end FROM betas.estimator_params "
        "WHERE model = ?",
        [model],
    ).df()


def fit_params(
    panel: beta_tables.Panel,
    model: str,
    settings: TuningSettings,
    stored: pd.DataFrame,
    specs: list[beta_tables.EstimatorSpec],
    states: dict[str, beta_tables.KalmanState] | None = None,
    start: pd.Timestamp | None = None,
) -> FittedParams:
    """Specs with tuned parameters, rows for ``betas.estimator_params`` and what to show.

    An estimator whose parameters cannot be fitted yet (too little history) is left out of
    this run and nothing is stored for it, so a later run with more history tunes it. A
    fresh Kalman state (``states``: dated at the row before ``start``, same symbols and
    training span) brings the per-symbol parameters it was filtered with: the fit on the
    same training rows would return them, so it is not repeated."""
    if len(panel.dates) == 0:
        return FittedParams([], pd.DataFrame(), {}, {})

    def whole_history() -> None:
        # beta_tables.trailing_read reads a tail only when nothing is fitted here
        if panel.origin:
            raise RuntimeError(f"{model}: parameters would be fitted on a trailing read")

    span = settings.tuning_sessions
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
    tables: dict[str, str] = {}
    out: list[beta_tables.EstimatorSpec] = []
    for spec in specs:
        params = dict(spec.params)
        if spec.kind == "ewm":
            known = stored[(stored["estimator"] == spec.name) & (stored["param"] == "half_life")]
            if len(known) and not settings.refit:
                params["half_life"] = float(known["value"].iloc[0])
            else:
                whole_history()
                if history_short:
                    meta[f"{model}_ewm_half_life"] = (
                        f"not tuned (too little history: {len(panel.dates)} of {span} sessions)"
                    )
                    continue
                best, table = beta_tables.tune_ewm(tuning, spec, settings.ewm_half_life_grid)
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
                tables[f"{model}_ewm_tuning"] = table.to_markdown(index=False)
            meta[f"{model}_ewm_half_life"] = params["half_life"]
        if spec.kind == "kalman":
            if len(panel.factors) != 1:
                continue
            known = stored[(stored["estimator"] == spec.name) & (stored["param"] == "train_rows")]
            state = (states or {}).get(spec.name)
            if len(known) and not settings.refit:
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
            if len(known) and not settings.refit:
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
    return FittedParams(out, pd.DataFrame(rows), meta, tables)
