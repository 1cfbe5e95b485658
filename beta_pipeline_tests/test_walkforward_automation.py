"""Walk-forward retraining under Dagster's automation, evaluated at simulated times: the
newest cut-off year's models are requested once that year has ended and all its sessions
are loaded, never before; their runs are loaded afterwards."""

from __future__ import annotations

import datetime
from collections.abc import Iterable
from zoneinfo import ZoneInfo

import dagster as dg
import pytest

from beta_pipeline.defs.neuralbeta.walkforward import WALKFORWARD_SPECS
from beta_pipeline.defs.quality.checks import QUALITY_CHECKS
from beta_pipeline.lib import calendar

NY = ZoneInfo("America/New_York")
TRAIN, RUNS = "neuralbeta_walkforward_model", "neuralbeta_runs"


@pytest.fixture(scope="module")
def defs() -> dg.Definitions:
    from beta_pipeline.definitions import build_definitions

    return build_definitions()


@pytest.fixture
def instance() -> Iterable[dg.DagsterInstance]:
    with dg.DagsterInstance.ephemeral() as inst:
        yield inst


def _load_sessions(instance: dg.DagsterInstance, first: str, last: str) -> None:
    """``daily_returns`` and ``raw_market`` of every session in ``[first, last]``, with
    their (blocking) checks passed."""
    for day in calendar.sessions(first, last):
        for asset in ("raw_market", "daily_returns"):
            instance.report_runless_asset_event(
                dg.AssetMaterialization(asset_key=asset, partition=day.strftime("%Y-%m-%d"))
            )
    for check in QUALITY_CHECKS:
        for key in check.check_keys:
            instance.report_runless_asset_event(
                dg.AssetCheckEvaluation(asset_key=key.asset_key, check_name=key.name, passed=True)
            )


def _requested(defs, instance, moments, cursor=None) -> tuple[list[dict[str, set]], object]:
    seen = []
    for moment in moments:
        result = dg.evaluate_automation_conditions(
            defs=defs,
            instance=instance,
            cursor=cursor,
            evaluation_time=moment,
            asset_selection=dg.AssetSelection.assets(TRAIN, RUNS),
        )
        cursor = result.cursor
        seen.append(
            {
                name: set(result.get_requested_partitions(dg.AssetKey(name)))
                for name in (TRAIN, RUNS)
            }
        )
    return seen, cursor


def _at(day: str, hh: int, mm: int = 0) -> datetime.datetime:
    return datetime.datetime.fromisoformat(f"{day}T{hh:02d}:{mm:02d}").replace(tzinfo=NY)


def _keys(cutoff: str) -> set[str]:
    return {str(dg.MultiPartitionKey({"cutoff": cutoff, "model": s})) for s in WALKFORWARD_SPECS}


def test_a_year_is_retrained_once_it_has_ended_and_loaded(defs, instance) -> None:
    _load_sessions(instance, "2019-12-01", "2020-12-30")  # the year but its last session
    (noon, evening), cursor = _requested(
        defs, instance, [_at("2020-12-31", 12), _at("2020-12-31", 20, 45)]
    )
    assert noon[TRAIN] == set()  # 2020 has not ended: no partition yet
    assert evening[TRAIN] == set()  # 2020's partition exists; its last session is missing
    _load_sessions(instance, "2020-12-31", "2020-12-31")  # the evening's run loads it
    (after,), cursor = _requested(defs, instance, [_at("2020-12-31", 21, 30)], cursor)
    assert after[TRAIN] == _keys("2020")  # every market model, cut-off 2020 only
    assert after[RUNS] == set()  # the trainings have not run yet
    for key in after[TRAIN]:  # the trainings ran, their blocking check passed
        instance.report_runless_asset_event(dg.AssetMaterialization(TRAIN, partition=key))
        instance.report_runless_asset_event(
            dg.AssetCheckEvaluation(
                asset_key=dg.AssetKey(TRAIN),
                check_name="weights_finite",
                passed=True,
                partition=key,
            )
        )
    (loaded, later), _ = _requested(
        defs, instance, [_at("2020-12-31", 22, 0), _at("2021-01-04", 20, 45)], cursor
    )
    assert loaded[RUNS] == {None} and loaded[TRAIN] == set()
    assert later[TRAIN] == set() and later[RUNS] == set()  # nothing twice


def test_an_incomplete_year_is_not_trained(defs, instance) -> None:
    """A session of the year never loaded (2020-06-01): the year stays untrained."""
    _load_sessions(instance, "2019-12-01", "2020-05-29")
    (before,), cursor = _requested(defs, instance, [_at("2020-12-31", 12)])
    _load_sessions(instance, "2020-06-02", "2020-12-31")
    (seen, later), cursor = _requested(
        defs, instance, [_at("2020-12-31", 21, 30), _at("2021-01-04", 21)], cursor
    )
    assert before[TRAIN] == seen[TRAIN] == later[TRAIN] == set()
    _load_sessions(instance, "2020-06-01", "2020-06-01")  # a backfill fills the hole
    (filled,), _ = _requested(defs, instance, [_at("2021-01-05", 21)], cursor)
    assert filled[TRAIN] == _keys("2020")


def test_a_daemon_started_after_the_year_was_loaded_trains_it(defs, instance) -> None:
    """No earlier tick saw the partition appear (a fresh daemon): still requested."""
    _load_sessions(instance, "2019-12-01", "2020-12-31")
    (first,), _ = _requested(defs, instance, [_at("2021-02-10", 12)])
    assert first[TRAIN] == _keys("2020")

