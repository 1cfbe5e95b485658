"""Asset checks on model outputs: the daily beta table and the NeuralBeta checkpoints.

``daily_betas_sanity`` (scoped to the run's window, like ``checks.py``):

- ``betas_finite`` (error, blocking): no infinite beta; a NULL/NaN beta only where the
  estimator had fewer than its minimum observations (``n_obs < min_obs``).
- ``betas_within_bounds`` (error, blocking): market ``|beta| <= max_abs_beta`` (10 by
  default, ``BETA_PIPELINE_MAX_ABS_BETA``); other factor loadings are not bounded.
- ``betas_cover_sessions`` (error, blocking): every session of the window with returns has
  beta rows, once the return history is ``MIN_HISTORY_SESSIONS`` sessions long.

``neuralbeta_model_sanity`` (the checkpoints materialized by the run):

- ``weights_finite`` (error, blocking): every tensor of the checkpoint's state dict is finite.
- ``val_not_worse_than_ols`` (warn): the best validation RMSE(y) (``neuralbeta.history`` at
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

from beta_pipeline.defs.automation import check_with_its_asset
from beta_pipeline.defs.partitions import DUCKDB_POOL
from beta_pipeline.defs.quality.checks import record_outcomes
from beta_pipeline.defs.resources import DuckDBWarehouse
from beta_pipeline.defs.util import partition_label, window
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


@dg.multi_asset_check(
    name="neuralbeta_model_sanity",
    specs=[
        dg.AssetCheckSpec(
            "weights_finite",
            asset="neuralbeta_model",
            description="every tensor of the run's checkpoint is finite",
            blocking=True,
        ),
        dg.AssetCheckSpec(
            "val_not_worse_than_ols",
            asset="neuralbeta_model",
            description="best validation RMSE(y) <= window-OLS RMSE(y) on the same windows",
        ),
    ],
    pool=DUCKDB_POOL,
    description="Finite weights and validation loss vs OLS of the run's NeuralBeta models.",
)
def neuralbeta_model_sanity(
    context: dg.AssetCheckExecutionContext, warehouse_db: DuckDBWarehouse
) -> Iterator[dg.AssetCheckResult]:
    """Checks the models this run materialized (else the latest one)."""
    records = context.instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey("neuralbeta_model")), limit=50
    ).records
    mine = [r for r in records if r.run_id == context.op_execution_context.run_id] or records[:1]
    if not mine:
        raise dg.Failure("neuralbeta_model_sanity: no materialization of neuralbeta_model")
    by_check: dict[str, list[CheckOutcome]] = {}
    for record in mine:
        meta = record.asset_materialization.metadata if record.asset_materialization else {}
        run_id = str(_meta_value(meta, "run_id"))
        label = str(record.partition_key or run_id)
        with warehouse_db.reader() as conn:
            row = conn.execute(
                "SELECT h.rmse_y FROM neuralbeta.runs r JOIN neuralbeta.history h "
                "ON h.run_id = r.run_id AND h.step = r.best_step WHERE r.run_id = ?",
                [run_id],
            ).fetchone()
        ols = _meta_value(meta, "ols_val_rmse_y")
        outcomes = model_rules.check_model_run(
            str(_meta_value(meta, "checkpoint")),
            None if row is None or row[0] is None else float(row[0]),
            None if ols is None else float(ols),
        )
        record_outcomes(warehouse_db, outcomes, "neuralbeta_model", label)
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
    yield from _results(context, merged, "neuralbeta_model", "run")


#: Checks to register in ``definitions.py`` beside ``QUALITY_CHECKS``.
MODEL_CHECKS: list[dg.AssetChecksDefinition] = [daily_beta_checks(), neuralbeta_model_sanity]
