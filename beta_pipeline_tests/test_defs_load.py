"""The Dagster definitions load, and every asset, job, schedule and pool follows the rules."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest
import yaml

import beta_pipeline.definitions as definitions_module
from beta_pipeline.defs.partitions import DUCKDB_POOL
from beta_pipeline.defs.quality.checks import QUALITY_CHECKS
from beta_pipeline_tests.test_defs_support import build


@pytest.fixture
def defs(warehouse_path: Path, tmp_path: Path) -> dg.Definitions:
    return build(warehouse_path, tmp_path)


def test_definitions_validate_loadable(defs: dg.Definitions) -> None:
    dg.Definitions.validate_loadable(defs)
    # the module-level code location (bound to the environment's resources) loads too
    dg.Definitions.validate_loadable(definitions_module.defs)


def test_every_asset_is_described_kinded_and_grouped(defs: dg.Definitions) -> None:
    specs = list(defs.resolve_all_asset_specs())
    assert len(specs) >= 6
    keys = {s.key.to_user_string() for s in specs}
    for name in (
        "raw_prices",
        "raw_market",
        "raw_market_monthly",
        "security_master",
        "daily_returns",
        "monthly_returns",
    ):
        assert name in keys
    bad = []
    for spec in specs:
        name = spec.key.to_user_string()
        if not (spec.description or "").strip():
            bad.append(f"{name}: no description")
        if not spec.kinds:
            bad.append(f"{name}: no kinds")
        if not spec.group_name or spec.group_name == "default":
            bad.append(f"{name}: no group")
    assert not bad, bad


def test_partitioned_assets_backfill_in_a_single_run(defs: dg.Definitions) -> None:
    partitioned = [a for a in definitions_module.ASSETS if a.partitions_def is not None]
    assert {a.key.to_user_string() for a in partitioned} >= {
        "raw_prices",
        "raw_market",
        "raw_market_monthly",
        "daily_returns",
        "monthly_returns",
    }
    for asset in partitioned:
        assert asset.backfill_policy == dg.BackfillPolicy.single_run(), asset.key


def test_jobs_and_schedules_exist(defs: dg.Definitions) -> None:
    for name in ("daily_job", "monthly_job", "static_job"):
        assert defs.resolve_job_def(name).name == name
    daily = defs.resolve_job_def("daily_job")
    monthly = defs.resolve_job_def("monthly_job")
    static = defs.resolve_job_def("static_job")
    assert {"raw_prices", "raw_market", "daily_returns"} <= {
        k.to_user_string() for k in daily.asset_layer.executable_asset_keys
    }
    assert {"raw_market_monthly", "monthly_returns"} <= {
        k.to_user_string() for k in monthly.asset_layer.executable_asset_keys
    }
    assert "security_master" in {
        k.to_user_string() for k in static.asset_layer.executable_asset_keys
    }
    schedules = {s.name: s for s in defs.schedules}
    assert schedules["daily_schedule"].job_name == "daily_job"
    assert schedules["monthly_schedule"].job_name == "monthly_job"
    assert schedules["monthly_schedule"].cron_schedule == "0 3 2 * *"
    for name in ("daily_schedule", "monthly_schedule"):
        assert schedules[name].default_status == dg.DefaultScheduleStatus.STOPPED


def test_duckdb_writers_share_the_writer_pool() -> None:
    writers = [a for a in definitions_module.ASSETS if "duckdb" in a.specs_by_key[a.key].kinds]
    assert len(writers) >= 6
    for asset in writers:
        assert asset.op.pool == DUCKDB_POOL, f"{asset.key} writes DuckDB outside the pool"
    # the quality checks write quality.check_results
    assert QUALITY_CHECKS
    for check in QUALITY_CHECKS:
        assert check.op.pool == DUCKDB_POOL, check.check_keys


def test_generated_dagster_yaml(home: Path) -> None:
    text = (home / "dagster_home" / "dagster.yaml").read_text()
    config = yaml.safe_load(text)
    assert config["telemetry"]["enabled"] is False
    assert config["concurrency"]["pools"]["default_limit"] == 1
    instance = dg.DagsterInstance.get()
    try:
        assert instance.telemetry_enabled is False
        assert instance.get_concurrency_config().pool_config.default_pool_limit == 1
    finally:
        instance.dispose()
