"""When each asset runs unattended: declarative automation on the exchange calendar.

The Dagster daemon's automation sensor evaluates these conditions every ~30 s; nothing is
chained by clock offsets:

- **Ingestion** (``raw_prices``, ``raw_market``) loads each new trading session after the
  US close (20:30 New York, Mon-Fri; the session's partition closes at 00:00 UTC). Sessions
  missed while the daemon was down (up to ``CATCH_UP``) load at the next tick. A holiday is
  no partition (``defs/partitions.py``), so nothing is requested for it.
- **Downstream session and month assets** run when their inputs for the same partition are
  all present, none is in progress, and every blocking check upstream passed; a month is
  therefore processed only after its last session has loaded, and nothing runs after a
  failed or blocked upstream (the failed partition stays missing). A partition whose run
  failed is retried once, at the next evening tick, while it is inside the catch-up span.
- **Unpartitioned analytics** (leaderboard, SQL marts, summaries) refresh after an upstream
  update, once nothing upstream is in progress, no upstream partition's latest run failed
  and the blocking checks passed.
- Monthly factors are re-read for the last ``MONTHLY_REFRESH`` every evening: French-style
  files publish a month late and revise, and the monthly chain picks the update up.
- Walk-forward NeuralBeta models retrain when a year ends: the newest cut-off year's
  partition appears on 1 January and runs once that year's sessions are loaded and checked;
  every training's run bundle is then loaded into the warehouse by ``neuralbeta_runs``.
- Table 1 training and the synthetic study run on demand (CLI or UI), not automatically.

The CLI (``beta-pipeline run``) is for one-shot backfills and writes the same rows.
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Callable, Sequence

import dagster as dg

AC = dg.AutomationCondition

#: After the US close and after the session's partition has closed (00:00 UTC), in EST and EDT.
INGESTION_CRON = "30 20 * * 1-5"
INGESTION_TZ = "America/New_York"
#: Reference data refresh: Sunday evening.
WEEKLY_CRON = "0 18 * * 0"
#: Sessions (and months) this far back are still requested when missing.
CATCH_UP = datetime.timedelta(days=10)
MONTHLY_CATCH_UP = datetime.timedelta(days=100)
#: Monthly factor files are re-read for the months starting within this span of the latest
#: month's end (the last two months).
MONTHLY_REFRESH = datetime.timedelta(days=65)
#: The model asset: its missing partitions never block inference or sorts.
MODEL_ASSET = "neuralbeta_model"
#: Walk-forward training (cut-off years) and the step that loads every training's runs.
WALKFORWARD_ASSET = "neuralbeta_walkforward_model"
RUNS_ASSET = "neuralbeta_runs"


def load_new_sessions() -> dg.AutomationCondition:
    """Root session assets: after each evening tick, every missing session of the last
    ``CATCH_UP`` days (normally just today's)."""
    return (
        AC.in_latest_time_window(CATCH_UP)
        & AC.cron_tick_passed(INGESTION_CRON, INGESTION_TZ).since_last_handled()
        & AC.missing()
        & ~AC.in_progress()
    ).with_label("new sessions after the close")


def refresh_recent_months() -> dg.AutomationCondition:
    """Root monthly assets (factor files): re-read the last months every evening."""
    return (
        AC.in_latest_time_window(MONTHLY_REFRESH)
        & AC.cron_tick_passed(INGESTION_CRON, INGESTION_TZ).since_last_handled()
        & ~AC.in_progress()
    ).with_label("recent months every evening")


def refresh_weekly_or_missing() -> dg.AutomationCondition:
    """Unpartitioned reference data: once when missing, then weekly."""
    return (
        (
            AC.cron_tick_passed(WEEKLY_CRON, INGESTION_TZ) | AC.newly_missing()
        ).since_last_handled()
        & ~AC.in_progress()
    ).with_label("weekly, or when missing")


def _deps(
    condition: dg.AutomationCondition, ignore: Sequence[str]
) -> dg.AutomationCondition:
    return condition.ignore(dg.AssetSelection.assets(*ignore)) if ignore else condition


def after_inputs(
    lookback: datetime.timedelta, ignore: Sequence[str] = ()
) -> dg.AutomationCondition:
    """Partitioned downstream assets: a partition (of the latest ``lookback``) runs once its
    inputs for that partition are all present and updated, none in progress, and every
    upstream blocking check passed. ``ignore``: deps that neither trigger nor block."""
    updated = _deps(AC.any_deps_updated(), ignore)
    missing = _deps(AC.any_deps_missing(), ignore)
    # a partition whose latest run failed is retried once per evening (transient errors)
    retry = AC.execution_failed() & AC.cron_tick_passed(INGESTION_CRON, INGESTION_TZ)
    return (
        AC.in_latest_time_window(lookback)
        & (AC.newly_missing() | updated | retry).since_last_handled()
        & ~missing
        & ~AC.any_deps_in_progress()
        & ~AC.in_progress()
        & AC.all_deps_blocking_checks_passed()
    ).with_label("inputs complete and checked")


def after_upstream_updates(ignore_failed: Sequence[str] = ()) -> dg.AutomationCondition:
    """Unpartitioned analytics: after an upstream update, once nothing upstream runs, no
    upstream partition's latest run failed and the upstream blocking checks passed."""
    failed = _deps(AC.any_deps_match(AC.execution_failed()), ignore_failed)
    return (
        AC.any_deps_updated().since_last_handled()
        & ~AC.any_deps_in_progress()
        & ~AC.in_progress()
        & ~failed
        & AC.all_deps_blocking_checks_passed()
    ).with_label("after upstream updates, none failed")


def check_with_its_asset() -> dg.AutomationCondition:
    """Quality checks: in the same run as every automated update of their asset (so a
    blocking check gates what the automation requests downstream)."""
    return (
        AC.any_deps_updated().since_last_handled()
        & ~AC.any_deps_in_progress()
        & ~AC.in_progress()
    ).with_label("with its asset")


def with_trained_model(lookback: datetime.timedelta) -> dg.AutomationCondition:
    """Inference on sessions: as ``after_inputs`` (model assets ignored) and only once at
    least one model has been trained (Table 1 or walk-forward)."""
    has_model = AC.any_deps_match(~AC.missing()).allow(dg.AssetSelection.assets(RUNS_ASSET))
    return (after_inputs(lookback, ignore=[RUNS_ASSET]) & has_model).with_label(
        "inputs complete, a model trained"
    )


def after_training() -> dg.AutomationCondition:
    """The loader of training runs: after any training (Table 1 or walk-forward) updated,
    once none is in progress. Not gated on the trainings' checks (most partitions of a
    walk-forward grid never run): the loader itself skips a bundle with non-finite weights."""
    return (
        AC.any_deps_updated().since_last_handled() & ~AC.any_deps_in_progress() & ~AC.in_progress()
    ).with_label("after a training")


def retrain_after_year() -> dg.AutomationCondition:
    """Walk-forward training: the newest cut-off year's models once that year has ended
    (its partition appears on 1 January) and all its sessions are loaded and checked —
    whenever they are missing, so also at a daemon's first tick; a failed training is
    retried once per evening; a later correction of the year's data retrains. Earlier
    cut-offs: backfill (CLI or UI)."""
    evening = AC.cron_tick_passed(INGESTION_CRON, INGESTION_TZ)
    missing = AC.missing() & (~AC.execution_failed() | evening)
    return (
        AC.in_latest_time_window()
        & (missing | AC.any_deps_updated().since_last_handled())
        & ~AC.any_deps_missing()
        & ~AC.any_deps_in_progress()
        & ~AC.in_progress()
        & AC.all_deps_blocking_checks_passed()
    ).with_label("a cut-off year has ended")


#: Asset name -> its condition. Assets not listed (training, synthetic study, crypto) run on
#: demand only.
CONDITIONS: dict[str, Callable[[], dg.AutomationCondition]] = {
    "raw_prices": load_new_sessions,
    "raw_market": load_new_sessions,
    "raw_market_monthly": refresh_recent_months,
    "security_master": refresh_weekly_or_missing,
    "daily_returns": lambda: after_inputs(CATCH_UP),
    "daily_betas": lambda: after_inputs(CATCH_UP),
    "neuralbeta_betas": lambda: with_trained_model(CATCH_UP),
    "nbi_weights": lambda: with_trained_model(CATCH_UP),
    WALKFORWARD_ASSET: retrain_after_year,
    RUNS_ASSET: after_training,
    "monthly_returns": lambda: after_inputs(MONTHLY_CATCH_UP),
    "monthly_betas": lambda: after_inputs(MONTHLY_CATCH_UP),
    "beta_portfolio_sorts": lambda: after_inputs(
        MONTHLY_CATCH_UP, ignore=["neuralbeta_betas"]
    ),
}
#: Unpartitioned groups refreshed after upstream updates (every asset of these groups that
#: has a partitioned or analytics upstream and is not listed above).
ANALYTICS_GROUPS = ("baselines", "marts", "portfolios")
ANALYTICS_ASSETS = ("neuralbeta_evaluation",)


def condition_for(asset: dg.AssetsDefinition, key: dg.AssetKey) -> dg.AutomationCondition | None:
    """The automation condition of one asset key (``None``: on demand only)."""
    name = key.to_user_string()
    if name in CONDITIONS:
        return CONDITIONS[name]()
    if asset.partitions_def is not None:
        return None
    group = asset.group_names_by_key.get(key)
    if name in ANALYTICS_ASSETS or (group in ANALYTICS_GROUPS and asset.specs_by_key[key].deps):
        return after_upstream_updates(
            ignore_failed=[MODEL_ASSET, WALKFORWARD_ASSET, "neuralbeta_betas"]
        )
    return None


def with_automation(assets: Sequence[dg.AssetsDefinition]) -> list[dg.AssetsDefinition]:
    """The assets with their automation conditions attached (one place for the policy)."""

    def attach(asset: dg.AssetsDefinition) -> dg.AssetsDefinition:
        return asset.map_asset_specs(
            lambda spec: spec.replace_attributes(
                automation_condition=condition_for(asset, spec.key)
            )
        )

    return [attach(a) for a in assets]


#: Name of the sensor that evaluates the conditions (UI: Automation).
SENSOR_NAME = "beta_pipeline_automation"


def automation_enabled() -> bool:
    """``BETA_PIPELINE_AUTOMATION`` (on/off); by default on, except for the embedded source,
    whose shipped data never gains a session (its automation would fail every evening)."""
    source = os.environ.get("BETA_PIPELINE_SOURCE", "embedded").strip().lower()
    default = "off" if source == "embedded" else "on"
    value = os.environ.get("BETA_PIPELINE_AUTOMATION", default).strip().lower()
    return value not in ("off", "0", "false", "no")


def automation_sensor() -> dg.AutomationConditionSensorDefinition:
    """The sensor evaluating every condition above every 30 s: running by default (stopped
    for the embedded source or with ``BETA_PIPELINE_AUTOMATION=off``; it can always be
    started in the UI)."""
    enabled = automation_enabled()
    return dg.AutomationConditionSensorDefinition(
        SENSOR_NAME,
        target=dg.AssetSelection.all() | dg.AssetSelection.all_asset_checks(),
        default_status=(
            dg.DefaultSensorStatus.RUNNING if enabled else dg.DefaultSensorStatus.STOPPED
        ),
        minimum_interval_seconds=30,
        description="Declarative automation of beta_pipeline (defs/automation.py).",
    )
