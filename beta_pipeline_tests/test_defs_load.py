"""The Dagster definitions load, and every asset, job, schedule and pool follows the rules."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest
import yaml

import beta_pipeline.definitions as definitions_module
from beta_pipeline.defs.partitions import DUCKDB_POOL
from beta_pipeline.defs.quality.checks import QUALITY_CHECKS
from beta_pipeline_tests.support.defs import build


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
    # time-partitioned assets process a whole range in one run; static partitions
    # (synthetic scenarios, experiment x model) run one key at a time
    partitioned = [
        a
        for a in definitions_module.ASSETS
        if isinstance(a.partitions_def, dg.TimeWindowPartitionsDefinition)
    ]
    assert {k.to_user_string() for a in partitioned for k in a.keys} >= {
        "raw_prices",
        "raw_market",
        "raw_market_monthly",
        "daily_returns",
        "monthly_returns",
    }
    for asset in partitioned:
        assert asset.backfill_policy == dg.BackfillPolicy.single_run(), asset.keys


def test_jobs_exist_and_automation_replaces_schedules(defs: dg.Definitions) -> None:
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
    # no clock-chained schedules: the automation conditions decide when assets run
    assert not list(defs.schedules or [])
    graph = defs.resolve_asset_graph()
    automated = {
        k.to_user_string() for k in graph.get_all_asset_keys()
        if graph.get(k).automation_condition is not None
    }
    assert {
        "raw_prices", "raw_market", "daily_returns", "daily_betas", "monthly_returns",
        "monthly_betas", "beta_portfolio_sorts", "hedging_performance", "neuralbeta_betas",
    } <= automated
    assert "neuralbeta_model" not in automated  # Table 1 training runs on demand
    # walk-forward retrains when a year ends; its runs are loaded after any training
    assert {"neuralbeta_walkforward_model", "neuralbeta_runs"} <= automated
    from beta_pipeline.defs.automation import automation_sensor

    # on for live sources, off for the static embedded data, overridable
    sensor = defs.resolve_sensor_def("beta_pipeline_automation")
    assert sensor.default_status == automation_sensor().default_status
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("BETA_PIPELINE_SOURCE", "yfinance")
        assert automation_sensor().default_status == dg.DefaultSensorStatus.RUNNING
        mp.setenv("BETA_PIPELINE_AUTOMATION", "off")
        assert automation_sensor().default_status == dg.DefaultSensorStatus.STOPPED
        mp.setenv("BETA_PIPELINE_SOURCE", "embedded")
        mp.delenv("BETA_PIPELINE_AUTOMATION")
        assert automation_sensor().default_status == dg.DefaultSensorStatus.STOPPED
        mp.setenv("BETA_PIPELINE_AUTOMATION", "on")
        assert automation_sensor().default_status == dg.DefaultSensorStatus.RUNNING
    assert not any(k.startswith("crypto") for k in automated)  # opt-in group


def test_duckdb_writers_share_the_writer_pool() -> None:
    writers = [
        a
        for a in definitions_module.ASSETS
        if any("duckdb" in spec.kinds for spec in a.specs_by_key.values())
    ]
    assert len(writers) >= 6
    for asset in writers:
        assert asset.op.pool == DUCKDB_POOL, f"{asset.keys} writes DuckDB outside the pool"
    # training never holds the writer slot (nor writes DuckDB: neuralbeta_runs loads its runs)
    trainers = [a for a in definitions_module.ASSETS if "lightning" in next(iter(a.specs)).kinds]
    assert {k.to_user_string() for a in trainers for k in a.keys} >= {
        "neuralbeta_model",
        "neuralbeta_walkforward_model",
    }
    for asset in trainers:
        assert asset.op.pool is None and asset not in writers, asset.keys
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


def test_neuralbeta_jobs(defs: dg.Definitions) -> None:
    late = defs.resolve_job_def("neuralbeta_daily_job")
    assert {k.to_user_string() for k in late.asset_layer.executable_asset_keys} == {
        "neuralbeta_betas",
        "nbi_weights",
    }
    daily = {
        k.to_user_string()
        for k in defs.resolve_job_def("daily_job").asset_layer.executable_asset_keys
    }
    assert "neuralbeta_betas" not in daily
    for name in ("synthetic_scenarios_job", "synthetic_baselines_job", "neuralbeta_model_job"):
        assert defs.resolve_job_def(name).partitions_def is not None
