"""Asset checks on model outputs: the daily beta table and the NeuralBeta checkpoints.

``daily_betas_sanity`` (scoped to the run's window, like ``checks.py``):

- ``betas_finite`` (error, blocking): no infinite beta; a NULL/NaN beta only where the
  estimator had fewer than its minimum observations (``n_obs < min_obs``).
- ``betas_within_bounds`` (error, blocking): market ``|beta| <= max_abs_beta`` (10 by
  default, ``BETA_PIPELINE_MAX_ABS_BETA``); other factor loadings are not bounded.
- ``betas_cover_sessions`` (error, blocking): every session of the window with returns has
  beta rows, once the return history is ``MIN_HISTORY_SESSIONS`` sessions long.

``neuralbeta_model_sanity`` and ``neuralbeta_walkforward_model_sanity`` (the checkpoints
materialized by the run, read from their run bundles):

- ``weights_finite`` (error, blocking): every tensor of the checkpoint's state dict is finite.
- ``val_not_worse_than_ols`` (warn): the best validation RMSE(y) (the bundle's history at
  the run's best step) is at most the window-OLS RMSE(y) on the same validation windows,
  which ``neuralbeta_model`` records as ``ols_val_rmse_y``
  (:func:`beta_pipeline.lib.quality.model_rules.window_ols_rmse`).

The rules are plain functions in ``lib/quality/beta_rules.py`` and ``model_rules.py``.

Outcomes go to ``quality.check_results`` like the data-quality suites.
"""

import math
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING

import dagster as dg
import pandas as pd

from beta_pipeline.defs.automation import check_with_its_asset
from beta_pipeline.defs.partitions import DUCKDB_POOL
from beta_pipeline.defs.quality.checks import record_outcomes
from beta_pipeline.defs.resources import DuckDBWarehouse
from beta_pipeline.defs.util import partition_label, window
from beta_pipeline.lib.neuralbeta import bundles
from beta_pipeline.lib.quality import CheckOutcome, beta_rules, model_rules

if TYPE_CHECKING:
    pass

def _results(
    context: dg.AssetCheckExecutionContext,
    outcomes: Sequence[CheckOutcome],
    asset: str,
    label: str,
    extra: Mapping[str, object] | None = None,
) -> Iterator[dg.AssetCheckResult]:
    for o in outcomes:
        if not o.passed:
            log = context.log.error if o.severity == "error" else context.log.warning
            log(f"{asset} [{label}] {o.check_name}: {o.details}")
        metadata: dict[str, object] = {"details": o.details, "offending_rows": o.n_rows}
        if o.observed is not None and math.isfinite(float(o.observed)):
            metadata["observed"] = float(o.observed)
        yield dg.AssetCheckResult(
            asset_key=asset,
            check_name=o.check_name,
            passed=o.passed,
            severity=(
                dg.AssetCheckSeverity.ERROR if o.severity == "error" else dg.AssetCheckSeverity.WARN
            ),
            metadata={**metadata, **(extra or {})},
        )


def daily_beta_checks(max_abs_beta: float = beta_rules.MAX_ABS_BETA) -> dg.AssetChecksDefinition:
    """The ``daily_betas`` sanity checks with the bound ``max_abs_beta``."""
    rules = (
        ("betas_finite", "no infinite beta; NULL only where n_obs < the estimator's min_obs"),
        ("betas_within_bounds", f"|beta| <= {max_abs_beta:g} (BETA_PIPELINE_MAX_ABS_BETA)"),
        (
            "betas_cover_sessions",
            "every session with returns has beta rows (after "
            f"{beta_rules.MIN_HISTORY_SESSIONS} sessions of history)",
        ),
    )
    specs = [
        dg.AssetCheckSpec(
            name=name,
            asset="daily_betas",
            description=text,
            blocking=True,
            automation_condition=check_with_its_asset(),
        )
        for name, text in rules
    ]

    @dg.multi_asset_check(
        name="daily_betas_sanity",
        specs=specs,
        pool=DUCKDB_POOL,
        description="Sanity of the betas written for the run's partitions.",
    )
    def daily_betas_sanity(
        context: dg.AssetCheckExecutionContext, warehouse_db: DuckDBWarehouse
    ) -> Iterator[dg.AssetCheckResult]:
        start, end = window(context)
        label = partition_label(start, end)
        with warehouse_db.reader() as conn:
            suspects, present, seen, sessions = beta_rules.read_daily_betas(
                conn, start, end, max_abs_beta
            )
        outcomes = beta_rules.evaluate_daily_betas(
            suspects, present, seen, sessions, max_abs_beta
        )
        record_outcomes(warehouse_db, outcomes, "daily_betas", label)
        yield from _results(context, outcomes, "daily_betas", label)

    return daily_betas_sanity


# ------------------------------------------------------------------------ neuralbeta


def _meta_value(meta: Mapping[str, object], key: str) -> object:
    value = meta.get(key)
    return getattr(value, "value", value)


def model_sanity(asset: str, record: bool = True) -> dg.AssetChecksDefinition:
    """``<asset>_sanity``: finite weights (blocking) and validation RMSE(y) vs window OLS of
    the training runs of ``asset`` that a run materialized, read from their run bundles.
    ``record``: also write the outcomes to ``quality.check_results`` (a DuckDB writer, in
    the pool); off where the check runs beside distributed training, which never writes the
    warehouse (the outcomes stay in Dagster's check results)."""

    @dg.multi_asset_check(
        name=f"{asset}_sanity",
        specs=[
            dg.AssetCheckSpec(
                "weights_finite",
                asset=asset,
                description="every tensor of the run's checkpoint is finite",
                blocking=True,
            ),
            dg.AssetCheckSpec(
                "val_not_worse_than_ols",
                asset=asset,
                description="best validation RMSE(y) <= window-OLS RMSE(y) on the same windows",
            ),
        ],
        pool=DUCKDB_POOL if record else None,
        description=f"Finite weights and validation loss vs OLS of the run's {asset} models.",
    )
    def _sanity(
        context: dg.AssetCheckExecutionContext, warehouse_db: DuckDBWarehouse
    ) -> Iterator[dg.AssetCheckResult]:
        """Checks the models this run materialized (else the latest one)."""
        records = context.instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=dg.AssetKey(asset)), limit=50
        ).records
        run = context.op_execution_context.run_id
        mine = [r for r in records if r.run_id == run] or records[:1]
        if not mine:
            raise dg.Failure(f"{asset}_sanity: no materialization of {asset}")
        by_check: dict[str, list[CheckOutcome]] = {}
        for found in mine:
            meta = found.asset_materialization.metadata if found.asset_materialization else {}
            label = str(found.partition_key or _meta_value(meta, "run_id"))
            ols = _meta_value(meta, "ols_val_rmse_y")
            outcomes = model_rules.check_model_run(
                str(_meta_value(meta, "checkpoint")),
                _best_val_rmse_y(str(_meta_value(meta, "bundle"))),
                None if ols is None else float(ols),
            )
            if record:
                record_outcomes(warehouse_db, outcomes, asset, label)
            for o in outcomes:
                by_check.setdefault(o.check_name, []).append(
                    CheckOutcome(
                        o.check_name, o.passed, o.severity, o.observed, f"{label}: {o.details}"
                    )
                )
        merged = [
            CheckOutcome(
                name,
                all(o.passed for o in group),
                group[0].severity,
                group[0].observed if len(group) == 1 else sum(not o.passed for o in group),
                "; ".join(o.details for o in group),
            )
            for name, group in by_check.items()
        ]
        yield from _results(context, merged, asset, "run")

    return _sanity


def _best_val_rmse_y(bundle_url: str) -> float | None:
    """Validation RMSE(y) at the best step of a run bundle (None when not recorded)."""
    runs, history = bundles.read_bundles([bundle_url])
    best = history[history["step"] == runs["best_step"].iloc[0]]["rmse_y"]
    return None if best.empty or pd.isna(best.iloc[0]) else float(best.iloc[0])


neuralbeta_model_sanity = model_sanity("neuralbeta_model")
walkforward_model_sanity = model_sanity("neuralbeta_walkforward_model", record=False)


#: Checks to register in ``definitions.py`` beside ``QUALITY_CHECKS``.
MODEL_CHECKS: list[dg.AssetChecksDefinition] = [
    daily_beta_checks(),
    neuralbeta_model_sanity,
    walkforward_model_sanity,
]
