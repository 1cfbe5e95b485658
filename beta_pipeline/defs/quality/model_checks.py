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
  which ``neuralbeta_model`` records as ``ols_val_rmse_y`` (:func:`window_ols_rmse`).

Outcomes go to ``quality.check_results`` like the data-quality suites.
"""

import math
import os
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING

import dagster as dg
import numpy as np
import pandas as pd

from beta_pipeline.defs.automation import check_with_its_asset
from beta_pipeline.defs.partitions import DUCKDB_POOL
from beta_pipeline.defs.quality.checks import record_outcomes
from beta_pipeline.defs.resources import DuckDBWarehouse
from beta_pipeline.defs.util import partition_label, window
from beta_pipeline.lib import beta_tables
from beta_pipeline.lib.quality import CheckOutcome

if TYPE_CHECKING:
    import torch

#: Default bound on |beta| (``BETA_PIPELINE_MAX_ABS_BETA`` overrides it).
MAX_ABS_BETA = float(os.environ.get("BETA_PIPELINE_MAX_ABS_BETA", "10"))
#: Sessions of return history before a session must have betas (the shortest estimator,
#: OLS-60, needs 48 observations; the Tidy Finance 3-month one 50 of 63).
MIN_HISTORY_SESSIONS = 63
#: Minimum observations of the default daily estimators (``beta_tables.daily_specs``).
MIN_OBS: dict[str, int] = {
    s.name: int(s.params.get("min_obs", 0)) for s in beta_tables.daily_specs()
}
#: Offending rows kept per outcome (previews and ``details``).
MAX_LISTED = 20


def _listed(frame: pd.DataFrame, columns: Sequence[str]) -> str:
    head = frame.loc[:, list(columns)].head(5)
    return "; ".join(", ".join(str(v) for v in row) for row in head.itertuples(index=False))


#: Factors whose beta is bounded: the market's (factor loadings on SMB, HML, RMW, CMA over
#: 60-day windows can legitimately be large, e.g. FF5 on the Kaggle file).
MARKET_FACTORS = ("mkt_excess", "mkt_rf")


def check_daily_betas(
    betas: pd.DataFrame,
    returns_dates: pd.DataFrame,
    max_abs_beta: float = MAX_ABS_BETA,
    min_obs: Mapping[str, int] | None = None,
) -> list[CheckOutcome]:
    """The three daily-beta rules on the window's rows (a whole frame; the asset check
    feeds :func:`evaluate_daily_betas` from SQL aggregates instead).

    ``betas``: ``date, symbol, model, estimator, factor, beta, n_obs`` of the window;
    ``returns_dates``: ``date, history`` per session of the window with returns, where
    ``history`` counts the sessions with returns up to and including it."""
    beta = pd.to_numeric(betas["beta"], errors="coerce").astype(float)
    bounded = betas["factor"].isin(MARKET_FACTORS).to_numpy()
    suspect = ~np.isfinite(beta) | (bounded & (beta.abs() > max_abs_beta))
    seen = betas[beta.notna()].groupby("estimator")["n_obs"].min()
    present = pd.to_datetime(betas["date"]).dt.normalize().drop_duplicates()
    return evaluate_daily_betas(betas[suspect], present, seen, returns_dates, max_abs_beta, min_obs)


def evaluate_daily_betas(
    suspects: pd.DataFrame,
    present_dates: pd.Series,
    min_obs_seen: pd.Series,
    returns_dates: pd.DataFrame,
    max_abs_beta: float = MAX_ABS_BETA,
    min_obs: Mapping[str, int] | None = None,
) -> list[CheckOutcome]:
    """The rules from the window's suspect rows (NULL, non-finite, or a market beta beyond
    the bound), the dates that have betas, and each estimator's smallest ``n_obs`` with a
    beta (the minimum of an estimator not in ``min_obs``)."""
    min_obs = {**MIN_OBS, **(min_obs or {})}
    beta = pd.to_numeric(suspects["beta"], errors="coerce").astype(float)
    infinite = suspects[np.isinf(beta)]
    missing = suspects[beta.isna()]
    need = missing["estimator"].map(min_obs)
    need = need.fillna(missing["estimator"].map(min_obs_seen)).fillna(0)
    bad_null = missing[missing["n_obs"].fillna(0).to_numpy() >= need.to_numpy()]
    n_bad = len(infinite) + len(bad_null)
    finite = CheckOutcome(
        "betas_finite",
        n_bad == 0,
        "error",
        n_bad,
        (
            "all betas finite (NULL only below min_obs)"
            if n_bad == 0
            else f"{len(infinite)} infinite beta(s), {len(bad_null)} NULL beta(s) with "
            f"n_obs >= min_obs: {_listed(pd.concat([infinite, bad_null]), _KEYS)}"
        ),
        n_rows=n_bad,
    )
    bounded = suspects["factor"].isin(MARKET_FACTORS).to_numpy()
    out_of = suspects[bounded & np.isfinite(beta) & (beta.abs() > max_abs_beta)]
    bounds = CheckOutcome(
        "betas_within_bounds",
        out_of.empty,
        "error",
        len(out_of),
        (
            f"all market |beta| <= {max_abs_beta:g}"
            if out_of.empty
            else f"{len(out_of)} market beta(s) with |beta| > {max_abs_beta:g}: "
            f"{_listed(out_of, [*_KEYS, 'beta'])}"
        ),
        n_rows=len(out_of),
    )
    due = returns_dates.loc[returns_dates["history"] >= MIN_HISTORY_SESSIONS, "date"]
    have = set(pd.to_datetime(present_dates).dt.normalize())
    absent = sorted(d for d in pd.to_datetime(due).dt.normalize() if d not in have)
    cover = CheckOutcome(
        "betas_cover_sessions",
        not absent,
        "error",
        len(absent),
        (
            f"{len(due)} session(s) with returns all have betas"
            if not absent
            else f"{len(absent)} of {len(due)} session(s) with returns have no beta rows: "
            + ", ".join(str(d.date()) for d in absent[:MAX_LISTED])
        ),
        n_rows=len(absent),
    )
    return [finite, bounds, cover]


_KEYS = ("date", "symbol", "model", "estimator", "factor")
#: Suspect rows fetched per window at most (the counts above stay exact below it).
MAX_SUSPECTS = 100_000


def read_daily_betas(
    db: DuckDBWarehouse, start: pd.Timestamp, end: pd.Timestamp, max_abs_beta: float
) -> tuple[pd.DataFrame, pd.Series, pd.Series, pd.DataFrame]:
    """What the rules need, aggregated in DuckDB (a 30-year backfill writes hundreds of
    millions of rows): the suspect rows, the dates with betas, each estimator's smallest
    n_obs with a beta, and the window's sessions with returns (with their history count)."""
    window_args = [start.date(), end.date()]
    market = ", ".join("?" for _ in MARKET_FACTORS)
    with db.reader() as conn:
        suspects = conn.execute(
            f"""
            SELECT date, symbol, model, estimator, factor, beta, n_obs FROM betas.daily
            WHERE date >= ? AND date < ?
              AND (beta IS NULL OR isnan(beta) OR isinf(beta)
                   OR (factor IN ({market}) AND abs(beta) > ?))
            ORDER BY date, symbol, model, estimator, factor LIMIT ?
            """,
            [*window_args, *MARKET_FACTORS, max_abs_beta, MAX_SUSPECTS],
        ).df()
        present = conn.execute(
            "SELECT DISTINCT date FROM betas.daily WHERE date >= ? AND date < ?", window_args
        ).df()["date"]
        seen = conn.execute(
            "SELECT estimator, min(n_obs) AS n_obs FROM betas.daily "
            "WHERE date >= ? AND date < ? AND beta IS NOT NULL GROUP BY estimator",
            window_args,
        ).df().set_index("estimator")["n_obs"]
        sessions = conn.execute(
            """
            SELECT date, history FROM (
                SELECT date, row_number() OVER (ORDER BY date) AS history FROM (
                    SELECT DISTINCT date FROM returns.daily
                    WHERE date < ? AND ret_excess IS NOT NULL AND mkt_excess IS NOT NULL
                )
            ) WHERE date >= ?
            """,
            [end.date(), start.date()],
        ).df()
    return suspects, present, seen, sessions


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


def daily_beta_checks(max_abs_beta: float = MAX_ABS_BETA) -> dg.AssetChecksDefinition:
    """The ``daily_betas`` sanity checks with the bound ``max_abs_beta``."""
    rules = (
        ("betas_finite", "no infinite beta; NULL only where n_obs < the estimator's min_obs"),
        ("betas_within_bounds", f"|beta| <= {max_abs_beta:g} (BETA_PIPELINE_MAX_ABS_BETA)"),
        (
            "betas_cover_sessions",
            f"every session with returns has beta rows (after {MIN_HISTORY_SESSIONS} sessions "
            "of history)",
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
        suspects, present, seen, sessions = read_daily_betas(
            warehouse_db, start, end, max_abs_beta
        )
        outcomes = evaluate_daily_betas(suspects, present, seen, sessions, max_abs_beta)
        record_outcomes(warehouse_db, outcomes, "daily_betas", label)
        yield from _results(context, outcomes, "daily_betas", label)

    return daily_betas_sanity


# ------------------------------------------------------------------------ neuralbeta


def window_ols_rmse(dataset: "torch.utils.data.Dataset", batch: int = 4096) -> float:
    """RMSE(y) of the next-step hedge by OLS (no intercept) on each window of ``dataset``
    (NeuralBeta's ``ArrayWindows``/``PanelWindows``: ``x, y, x_next, y_next``), in raw
    units: the baseline of the validation loss."""
    import torch

    sse, n = 0.0, 0
    for lo in range(0, len(dataset), batch):
        b = dataset[torch.arange(lo, min(lo + batch, len(dataset)))]
        x, y = b["x"].double(), b["y"].double()
        if x.dim() == 2:
            x = x[..., None]
        xtx = x.transpose(1, 2) @ x
        xty = x.transpose(1, 2) @ y[..., None]
        eye = 1e-12 * torch.eye(x.shape[-1], dtype=x.dtype)
        beta = torch.linalg.solve(xtx + eye, xty)[..., 0]
        x_next = b["x_next"].double().reshape(beta.shape)
        err = b["y_next"].double() - (beta * x_next).sum(-1)
        err = err[torch.isfinite(err)]
        sse += float(err.pow(2).sum())
        n += int(err.numel())
    return math.sqrt(sse / n) if n else float("nan")


def checkpoint_non_finite(path: str) -> list[str]:
    """Names of the checkpoint's tensors holding a NaN or an infinity."""
    import torch

    state = torch.load(path, map_location="cpu", weights_only=False)
    state = state.get("state_dict", state) if isinstance(state, dict) else state
    return [
        name
        for name, t in state.items()
        if isinstance(t, torch.Tensor) and t.is_floating_point() and not torch.isfinite(t).all()
    ]


def check_model_run(
    checkpoint: str, model_rmse_y: float | None, ols_rmse_y: float | None, tolerance: float = 0.0
) -> list[CheckOutcome]:
    """Finite weights in ``checkpoint``; validation RMSE(y) at most the OLS one."""
    try:
        bad = checkpoint_non_finite(checkpoint)
        weights = CheckOutcome(
            "weights_finite",
            not bad,
            "error",
            len(bad),
            "all weights finite" if not bad else f"non-finite tensors: {', '.join(bad[:10])}",
        )
    except (OSError, RuntimeError, ValueError) as exc:
        weights = CheckOutcome("weights_finite", False, "error", None, f"unreadable: {exc}")
    if ols_rmse_y is None or not math.isfinite(ols_rmse_y):
        val = CheckOutcome(
            "val_not_worse_than_ols", True, "warn", None, "no OLS validation RMSE recorded"
        )
    elif model_rmse_y is None or not math.isfinite(model_rmse_y):
        val = CheckOutcome(
            "val_not_worse_than_ols", False, "warn", None, "no finite validation RMSE(y)"
        )
    else:
        ratio = model_rmse_y / ols_rmse_y if ols_rmse_y > 0 else float("inf")
        val = CheckOutcome(
            "val_not_worse_than_ols",
            ratio <= 1.0 + tolerance,
            "warn",
            ratio,
            f"validation RMSE(y) {model_rmse_y:.6g} vs window OLS {ols_rmse_y:.6g} "
            f"({(1 - ratio) * 100:+.2f} % improvement)",
        )
    return [weights, val]


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
        outcomes = check_model_run(
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
