"""Automation evaluated at simulated times with Dagster's own evaluation API.

Each scenario loads a history into a fresh instance (runless materializations), evaluates
the automation once before the evening tick (the daemon's first tick) and once after it,
and asserts exactly which partitions are requested. Scenarios: a Monday, a Friday, a
month-end Friday (the month runs only after its last session loaded), a US holiday, a day
whose upstream run failed and a day whose blocking check failed.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable
from pathlib import Path
from zoneinfo import ZoneInfo

import dagster as dg
import pandas as pd
import pytest

from beta_pipeline.defs.partitions import session_partitions
from beta_pipeline.defs.quality.checks import QUALITY_CHECKS
from beta_pipeline.defs.quality.model_checks import MODEL_CHECKS
from beta_pipeline.lib import calendar

NY = ZoneInfo("America/New_York")
SESSION_ASSETS = ("raw_prices", "raw_market", "daily_returns", "daily_betas")
MONTHLY_ASSETS = ("raw_market_monthly", "monthly_returns", "monthly_betas", "beta_portfolio_sorts")


@pytest.fixture(scope="module")
def defs() -> dg.Definitions:
    from beta_pipeline.definitions import build_definitions

    return build_definitions()


@pytest.fixture
def instance() -> Iterable[dg.DagsterInstance]:
    with dg.DagsterInstance.ephemeral() as inst:
        yield inst


def _materialize(instance: dg.DagsterInstance, asset: str, partitions: Iterable[str]) -> None:
    for pk in partitions:
        instance.report_runless_asset_event(
            dg.AssetMaterialization(asset_key=asset, partition=pk)
        )


def _load_history(instance: dg.DagsterInstance, through: str) -> None:
    """Every automated asset materialized up to session ``through`` (sessions of the last
    two months) and up to the month before it, with passing checks."""
    days = calendar.sessions(pd.Timestamp(through) - pd.Timedelta(days=62), through)
    keys = [d.strftime("%Y-%m-%d") for d in days]
    for asset in (*SESSION_ASSETS, "neuralbeta_betas", "nbi_weights"):
        _materialize(instance, asset, keys)
    last_month = (pd.Timestamp(through).to_period("M") - 1).to_timestamp()
    months = [(last_month - pd.DateOffset(months=i)).strftime("%Y-%m-%d") for i in range(5)]
    for asset in MONTHLY_ASSETS:
        _materialize(instance, asset, months)
    for asset in ("security_master", "hedging_performance", "beta_portfolio_summary"):
        _materialize(instance, asset, [None])  # type: ignore[list-item]
    for check in (*QUALITY_CHECKS, *MODEL_CHECKS):  # the last runs' checks passed
        for key in check.check_keys:
            instance.report_runless_asset_event(
                dg.AssetCheckEvaluation(
                    asset_key=key.asset_key, check_name=key.name, passed=True
                )
            )


def _requested_partitions(
    defs: dg.Definitions, result: dg.EvaluateAutomationConditionsResult
) -> dict[str, list[str]]:
    """Asset name -> sorted requested partition keys ('*' when unpartitioned)."""
    out: dict[str, list[str]] = {}
    for key in defs.resolve_asset_graph().get_all_asset_keys():
        keys = result.get_requested_partitions(key)
        if keys:
            out[key.to_user_string()] = sorted("*" if k is None else k for k in keys)
    return out


CURSORS: list[object] = []  # the last evaluation's cursor, to go on evaluating later


def _at(day: str, hh: int, mm: int) -> datetime.datetime:
    return datetime.datetime.fromisoformat(f"{day}T{hh:02d}:{mm:02d}").replace(tzinfo=NY)


def _evaluate(
    defs: dg.Definitions,
    instance: dg.DagsterInstance,
    moments: list[datetime.datetime],
    after_each: dict[int, callable] | None = None,  # type: ignore[valid-type]
    cursor: object | None = None,
) -> list[dict[str, list[str]]]:
    """Evaluate at each moment (carrying the cursor, as the daemon does)."""
    seen = []
    for i, moment in enumerate(moments):
        result = dg.evaluate_automation_conditions(
            defs=defs, instance=instance, cursor=cursor, evaluation_time=moment
        )
        cursor = result.cursor
        CURSORS.append(cursor)
        seen.append(_requested_partitions(defs, result))
        if after_each and i in after_each:
            after_each[i]()
    return seen


def _session_view(requested: dict[str, list[str]]) -> dict[str, list[str]]:
    return {k: v for k, v in requested.items() if k in (*SESSION_ASSETS, "monthly_returns")}


@pytest.mark.parametrize(
    ("day", "label"),
    [("2024-06-03", "Monday"), ("2024-06-07", "Friday")],
)
def test_evening_tick_loads_the_session_and_its_chain(defs, instance, day, label) -> None:
    _load_history(instance, calendar.previous_session(day).strftime("%Y-%m-%d"))
    before, after = _evaluate(defs, instance, [_at(day, 12, 0), _at(day, 20, 45)])
    assert _session_view(before) == {}, label  # the session is not complete at noon
    assert _session_view(after) == {a: [day] for a in SESSION_ASSETS}, label
    # the leaderboard waits for the day's run: its inputs are requested, not yet updated
    assert "hedging_performance" not in after


def test_month_end_friday_month_runs_after_its_last_session(defs, instance) -> None:
    day = "2024-05-31"  # a Friday and the last session of May
    _load_history(instance, "2024-05-30")

    seen: list[dict[str, list[str]]] = []

    def tick_runs_succeed() -> None:
        for asset, keys in seen[1].items():
            _materialize(instance, asset, [None if k == "*" else k for k in keys])

    seen += _evaluate(defs, instance, [_at(day, 12, 0), _at(day, 20, 45)])
    tick_runs_succeed()
    before, tick = seen
    [after_run] = _evaluate(defs, instance, [_at(day, 20, 50)], cursor=CURSORS[-1])
    assert _session_view(before) == {}
    # the May partition exists from 00:00 UTC, but May 31 has not loaded: May waits
    assert _session_view(tick) == {a: [day] for a in SESSION_ASSETS}
    assert "monthly_returns" not in tick
    assert "2024-05-01" not in tick.get("monthly_betas", [])
    assert "2024-05-01" not in tick.get("beta_portfolio_sorts", [])
    # factor files publish late and revise: the last two months are re-read every evening
    assert tick["raw_market_monthly"] == ["2024-04-01", "2024-05-01"]
    # once May 31 loaded, May's returns, betas and sorts run (one chain) and the leaderboard
    assert after_run.get("monthly_returns") == ["2024-05-01"]
    assert "2024-05-01" in after_run.get("monthly_betas", [])
    assert "2024-05-01" in after_run.get("beta_portfolio_sorts", [])
    assert after_run.get("hedging_performance") == ["*"]
    assert not any(a in after_run for a in SESSION_ASSETS)  # handled: not asked twice


def test_us_holiday_requests_no_session(defs, instance) -> None:
    day = "2024-07-04"  # Independence Day, a Thursday
    assert not calendar.is_session(day)
    _load_history(instance, "2024-07-03")
    before, after = _evaluate(defs, instance, [_at(day, 12, 0), _at(day, 20, 45)])
    assert _session_view(before) == {}
    assert _session_view(after) == {}
    assert day not in session_partitions.get_partition_keys()


def _failing_asset(name: str) -> dg.AssetsDefinition:
    @dg.asset(name=name, partitions_def=session_partitions)
    def _asset() -> None:
        raise RuntimeError(f"simulated failure of {name}")

    return _asset


def test_failed_upstream_blocks_downstream_and_analytics(
    defs, instance, monkeypatch: pytest.MonkeyPatch
) -> None:
    # as in a daemon's run worker (the CLI's range-run events would hide the failure)
    monkeypatch.delenv("DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS", raising=False)
    day = "2024-06-05"
    _load_history(instance, "2024-06-04")

    def daily_returns_fails() -> None:
        _materialize(instance, "raw_prices", [day])
        _materialize(instance, "raw_market", [day])
        result = dg.materialize(
            [_failing_asset("daily_returns")],
            partition_key=day,
            instance=instance,
            raise_on_error=False,
        )
        assert not result.success

    before, tick, after_failure = _evaluate(
        defs,
        instance,
        [_at(day, 12, 0), _at(day, 20, 45), _at(day, 20, 55)],
        after_each={1: daily_returns_fails},
    )
    assert _session_view(tick) == {a: [day] for a in SESSION_ASSETS}
    # nothing after the failure: not the betas, not the leaderboard, no retry storm
    assert _session_view(after_failure) == {}
    assert "hedging_performance" not in after_failure
    # the next evening the failed session is retried with the new one
    [next_evening] = _evaluate(defs, instance, [_at("2024-06-06", 20, 45)], cursor=CURSORS[-1])
    assert next_evening["daily_returns"] == [day, "2024-06-06"]
    assert next_evening["daily_betas"] == [day, "2024-06-06"]
    assert next_evening["raw_prices"] == ["2024-06-06"]


def test_failed_blocking_check_blocks_downstream(defs, instance) -> None:
    day = "2024-06-06"
    _load_history(instance, "2024-06-05")

    def prices_load_but_check_fails() -> None:
        _materialize(instance, "raw_prices", [day])
        _materialize(instance, "raw_market", [day])
        instance.report_runless_asset_event(
            dg.AssetCheckEvaluation(
                asset_key=dg.AssetKey("raw_prices"),
                check_name="prices_positive",
                passed=False,
                severity=dg.AssetCheckSeverity.ERROR,
                blocking=True,
            )
        )

    before, tick, after_check = _evaluate(
        defs,
        instance,
        [_at(day, 12, 0), _at(day, 20, 45), _at(day, 20, 55)],
        after_each={1: prices_load_but_check_fails},
    )
    assert _session_view(tick) == {a: [day] for a in SESSION_ASSETS}
    assert "daily_returns" not in after_check and "daily_betas" not in after_check


def _execute_day(
    defs: dg.Definitions, instance: dg.DagsterInstance, keys: list[dg.AssetKey], day: str
) -> None:
    """Run what the automation asked for one session, in process, as one run (the daemon
    groups assets of one partitioning into one run)."""
    job = defs.resolve_implicit_job_def_def_for_assets(keys)
    assert job is not None
    result = job.execute_in_process(
        instance=instance, asset_selection=keys, partition_key=day, raise_on_error=False
    )
    assert result.success, day


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_automated_days_equal_a_cli_backfill(
    home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Three evenings of automation after a CLI history write the same rows as one CLI
    backfill over the whole span (embedded source)."""
    from beta_pipeline.cli import main
    from beta_pipeline.definitions import build_definitions
    from beta_pipeline_tests.support.defs import table

    select = ["--select", "raw_prices,raw_market,daily_returns,daily_betas"]
    # > 504 sessions: the EW half-life and Kalman variances are tuned (on the first 504)
    history, days = ("2019-01-02", "2021-03-03"), ["2021-03-04", "2021-03-05", "2021-03-08"]
    assert main(["run", *select, "--start", history[0], "--end", history[1]]) == 0
    automated_defs = build_definitions()
    instance = dg.DagsterInstance.get()
    try:
        cursor = dg.evaluate_automation_conditions(
            defs=automated_defs, instance=instance, evaluation_time=_at(days[0], 12, 0)
        ).cursor
        for day in days:
            result = dg.evaluate_automation_conditions(
                defs=automated_defs, instance=instance, cursor=cursor,
                evaluation_time=_at(day, 20, 45),
            )
            cursor = result.cursor
            requested = _requested_partitions(automated_defs, result)
            assert _session_view(requested) == {a: [day] for a in SESSION_ASSETS}, day
            keys = [dg.AssetKey(a) for a in SESSION_ASSETS]
            _execute_day(automated_defs, instance, keys, day)
    finally:
        instance.dispose()
    automated = home / "warehouse.duckdb"

    other = tmp_path / "cli_home"
    monkeypatch.setenv("BETA_PIPELINE_HOME", str(other))
    monkeypatch.setenv("DAGSTER_HOME", str(other / "dagster_home"))
    assert main(["run", *select, "--start", history[0], "--end", days[-1]]) == 0
    for name in ("raw.prices", "raw.market", "returns.daily", "betas.daily"):
        got, want = table(automated, name), table(other / "warehouse.duckdb", name)
        assert len(want) and got["date"].max() == pd.Timestamp(days[-1]), name
        pd.testing.assert_frame_equal(got, want, obj=name)
    estimators = set(table(automated, "betas.daily")["estimator"])
    assert {"ols_252", "ewm", "kalman"} <= estimators
