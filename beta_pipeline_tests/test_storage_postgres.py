"""PostgreSQL instance storage, selected by ``BETA_PIPELINE_INSTANCE_STORAGE=postgres``.

The generated ``dagster.yaml`` (no server needed), then against a real PostgreSQL server the
tests start themselves (``pg_server.py``; skipped only when PostgreSQL's binaries are not
installed — Debian package ``postgresql``): a single-run backfill records its
materializations and check results, and the automation evaluated on that instance at the
next evening requests the session's chain.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterator
from pathlib import Path
from zoneinfo import ZoneInfo

import dagster as dg
import pytest
import yaml

from beta_pipeline.settings import (
    INSTANCE_STORAGE_ENV,
    POSTGRES_URL_ENV,
    dagster_yaml,
    instance_storage,
)
from beta_pipeline_tests.support import pg_server
from beta_pipeline_tests.support.defs import build, run
from beta_pipeline_tests.support.storage import (
    BACKFILL_ASSETS,
    FIRST,
    LAST,
    instance_at,
    snapshot,
)

NY = ZoneInfo("America/New_York")
SESSION_ASSETS = ("raw_prices", "raw_market", "daily_returns", "daily_betas")
URL = "postgresql+psycopg2://beta:pw-123@db.example:5432/dagster"


# --- the generated config --------------------------------------------------------------------


def test_default_storage_is_sqlite(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(INSTANCE_STORAGE_ENV, raising=False)
    config = yaml.safe_load(dagster_yaml(tmp_path))
    assert instance_storage() == "sqlite"
    assert config["event_log_storage"]["class"] == "BatchingSqliteEventLogStorage"
    assert "storage" not in config


def test_postgres_setting_writes_an_env_reference(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(INSTANCE_STORAGE_ENV, "postgres")
    monkeypatch.setenv(POSTGRES_URL_ENV, URL)
    text = dagster_yaml(tmp_path)
    config = yaml.safe_load(text)
    assert config["storage"] == {"postgres": {"postgres_url": {"env": POSTGRES_URL_ENV}}}
    assert "event_log_storage" not in config  # no batched SQLite event log on Postgres
    assert "pw-123" not in text and "db.example" not in text
    assert config["concurrency"]["pools"] == {"default_limit": 1}
    assert config["run_monitoring"]["enabled"] is True


@pytest.mark.parametrize(
    ("kind", "url", "message"),
    [
        ("mysql", URL, "expected one of"),
        ("postgres", "", "needs"),
        ("postgres", "sqlite:///x.db", "must point at PostgreSQL"),
        ("postgres", "not a url", "not a SQLAlchemy URL"),
    ],
)
def test_bad_storage_settings_say_what_to_set(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str, url: str, message: str
) -> None:
    monkeypatch.setenv(INSTANCE_STORAGE_ENV, kind)
    monkeypatch.setenv(POSTGRES_URL_ENV, url)
    with pytest.raises(ValueError, match=message):
        dagster_yaml(tmp_path)


# --- a real server ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    bin_dir = pg_server.find_bin_dir()
    if bin_dir is None:
        pytest.skip(
            "PostgreSQL binaries not found (/usr/lib/postgresql/*/bin/initdb, pg_ctl): "
            "apt-get install postgresql"
        )
    with pg_server.postgres_server(bin_dir) as url:
        yield url


@pytest.fixture(scope="module")
def pg_home(postgres_url: str, tmp_path_factory) -> Iterator[tuple[Path, dg.DagsterInstance]]:
    """A home whose instance storage is the test server, after the three-week backfill."""
    root = tmp_path_factory.mktemp("pg_home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(INSTANCE_STORAGE_ENV, "postgres")
        mp.setenv(POSTGRES_URL_ENV, postgres_url)
        mp.setenv("DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS", "1")  # as the CLI
        instance = instance_at(root / "dagster_home")
        try:
            defs = build(root / "warehouse.duckdb", root)
            keys = [dg.AssetKey(a) for a in BACKFILL_ASSETS]
            result = run(defs, "daily_job", FIRST, LAST, instance=instance, keys=keys)
            assert result.success
            yield root, instance
        finally:
            instance.dispose()


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_backfill_records_materializations_and_checks(pg_home, postgres_url) -> None:
    root, instance = pg_home
    assert type(instance.run_storage).__name__ == "PostgresRunStorage"
    assert type(instance.event_log_storage).__name__ == "PostgresEventLogStorage"
    assert postgres_url not in (root / "dagster_home" / "dagster.yaml").read_text()
    defs = build(root / "warehouse.duckdb", root)
    snap = snapshot(instance, defs, BACKFILL_ASSETS)
    for asset in BACKFILL_ASSETS:
        parts = snap["partitions"][asset]
        assert len(parts) == 15 and parts[0] == FIRST and parts[-1] == LAST, asset
        assert set(snap["latest"][asset]) == set(parts)
    assert snap["latest"]["raw_prices"][LAST][1] > 0  # row count metadata
    passed = [row for rows in snap["checks"].values() for row in rows if row[2] is True]
    assert passed, snap["checks"]
    [record] = instance.get_run_records(dg.RunsFilter(statuses=[dg.DagsterRunStatus.SUCCESS]))
    assert record.dagster_run.job_name == "daily_job"


def _requested(defs: dg.Definitions, result: dg.EvaluateAutomationConditionsResult) -> dict:
    out = {}
    for key in defs.resolve_asset_graph().get_all_asset_keys():
        keys = result.get_requested_partitions(key)
        if keys and key.to_user_string() in SESSION_ASSETS:
            out[key.to_user_string()] = sorted(keys)
    return out


@pytest.mark.slow
@pytest.mark.timeout(600)
@pytest.mark.filterwarnings("ignore::dagster.BetaWarning")
def test_automation_tick_on_postgres_requests_the_next_session(pg_home) -> None:
    from beta_pipeline.definitions import build_definitions

    _, instance = pg_home
    defs = build_definitions()
    day = "2022-12-19"  # the Monday after the backfill
    cursor = None
    seen = []
    for hh, mm in ((12, 0), (20, 45)):
        moment = datetime.datetime.fromisoformat(f"{day}T{hh:02d}:{mm:02d}").replace(tzinfo=NY)
        result = dg.evaluate_automation_conditions(
            defs=defs, instance=instance, cursor=cursor, evaluation_time=moment
        )
        cursor = result.cursor
        seen.append(_requested(defs, result))
    before, after = seen
    assert before == {}
    assert after == {a: [day] for a in SESSION_ASSETS}, after
