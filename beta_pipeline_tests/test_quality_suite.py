"""The one quality-suite factory (``defs/quality/checks.py``): how a scope shapes the
declared checks, and what one evaluation records, reports and logs."""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from beta_pipeline.defs.crypto import CRYPTO_CHECKS
from beta_pipeline.defs.quality.checks import (
    QUALITY_CHECKS,
    Rule,
    partition_scope,
    quality_suite,
    unpartitioned_scope,
)
from beta_pipeline.defs.resources import DuckDBWarehouse
from beta_pipeline.lib.quality import CheckOutcome
from beta_pipeline.lib.warehouse import open_warehouse

RULES = (Rule("toy_ok", True, "always fine"), Rule("toy_warn", False, "two rows off"))


def _outcomes(extra: object) -> list[CheckOutcome]:
    return [
        CheckOutcome("toy_ok", True, "error", 0, f"fine ({extra})"),
        CheckOutcome("toy_warn", False, "warn", 2, "two rows off"),
    ]


def test_scopes_shape_specs_resources_and_descriptions():
    def run(db, *args):  # pragma: no cover - never evaluated here
        return []

    whole = quality_suite(
        asset="toy", rules=RULES, scope=unpartitioned_scope(run, resources=("prices",))
    )
    part = quality_suite(asset="toy", rules=RULES, scope=partition_scope(run, monthly=True))
    for check, automated in ((whole, False), (part, True)):
        specs = {s.name: s for s in check.check_specs}
        assert list(specs) == ["toy_ok", "toy_warn"]
        assert [s.blocking for s in specs.values()] == [True, False]
        assert [s.description for s in specs.values()] == ["always fine", "two rows off"]
        assert all((s.automation_condition is not None) is automated for s in specs.values())
        assert check.node_def.name == "toy_quality"
    assert whole.required_resource_keys - {"io_manager"} == {"warehouse_db", "prices"}
    assert part.required_resource_keys - {"io_manager"} == {"warehouse_db"}
    assert whole.node_def.description == "Data-quality rules of toy."
    assert part.node_def.description == "Data-quality suite of toy over the run's partitions."


def test_every_domain_declares_its_suites_through_the_factory():
    by_asset = {
        spec.asset_key.to_user_string(): c
        for c in [*QUALITY_CHECKS, *CRYPTO_CHECKS]
        for spec in c.check_specs
    }
    assert set(by_asset) == {"raw_prices", "daily_returns", "crypto_prices",
                             "cross_asset_prices", "crypto_monthly_returns"}
    for asset, check in by_asset.items():
        assert check.node_def.name == f"{asset}_quality"
        automated = asset in ("raw_prices", "daily_returns")
        assert all((s.automation_condition is not None) is automated for s in check.check_specs)


def test_unpartitioned_suite_records_reports_and_logs(tmp_path: Path):
    seen: list[object] = []

    def run(db: DuckDBWarehouse, extra: object) -> list[CheckOutcome]:
        seen.append(extra)
        return _outcomes(extra)

    check = quality_suite(
        asset="toy", rules=RULES, scope=unpartitioned_scope(run, resources=("extra",))
    )

    @dg.asset(name="toy")
    def toy() -> None:
        return None

    db = DuckDBWarehouse(path=str(tmp_path / "w.duckdb"))
    defs = dg.Definitions(
        assets=[toy], asset_checks=[check],
        resources={"warehouse_db": db, "extra": dg.ResourceDefinition.hardcoded_resource(7)},
    )
    instance = dg.DagsterInstance.ephemeral()
    result = defs.resolve_implicit_global_asset_job_def().execute_in_process(instance=instance)
    assert result.success and seen == [7]
    evs = {e.asset_check_key.name: e for e in result.get_asset_check_evaluations()}
    assert evs["toy_ok"].passed and evs["toy_ok"].severity == dg.AssetCheckSeverity.ERROR
    assert not evs["toy_warn"].passed and evs["toy_warn"].severity == dg.AssetCheckSeverity.WARN
    meta = evs["toy_warn"].metadata
    assert meta["details"].value == "two rows off" and meta["offending_rows"].value == 0
    assert meta["observed"].value == 2.0
    with open_warehouse(db.path, read_only=True) as conn:
        rows = conn.execute("SELECT * FROM quality.check_results ORDER BY check_name").df()
    assert list(rows["check_name"]) == ["toy_ok", "toy_warn"]
    assert set(rows["asset"]) == {"toy"} and set(rows["partition"]) == {"all"}
    warnings = [
        e.user_message for e in instance.all_logs(result.run_id) if e.level == 30
    ]
    assert "toy toy_warn: two rows off" in warnings


def test_missing_outcome_fails_the_check(tmp_path: Path):
    check = quality_suite(
        asset="toy", rules=RULES,
        scope=unpartitioned_scope(lambda db: _outcomes("x")[:1]),
    )

    @dg.asset(name="toy")
    def toy() -> None:
        return None

    defs = dg.Definitions(
        assets=[toy], asset_checks=[check],
        resources={"warehouse_db": DuckDBWarehouse(path=str(tmp_path / "w.duckdb"))},
    )
    result = defs.resolve_implicit_global_asset_job_def().execute_in_process(
        raise_on_error=False
    )
    assert not result.success
    failure = result.get_step_failure_events()[0].event_specific_data.error.to_string()
    assert "produced no outcome for ['toy_warn']" in failure
