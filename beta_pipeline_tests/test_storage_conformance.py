"""The batched SQLite event log (``defs/instance_tuning.py``) against Dagster's stock one.

The same single-run backfill (``raw_prices``, ``raw_market``, ``daily_returns`` and their
checks over three weeks of the embedded source, with the CLI's range-run events) runs on an
instance with ``BatchingSqliteEventLogStorage`` and on one with ``SqliteEventLogStorage``;
what both recorded must be identical (materialized partitions, latest materialization per
partition, check records). A batched storage that drops one event per batch must fail the
comparison. Also: the version guard and the scope of the SQLite pragmas.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
import sqlalchemy as sa

from beta_pipeline.defs import instance_tuning
from beta_pipeline_tests.support.dagster_private import SqliteEventLogStorage
from beta_pipeline_tests.support.defs import build, run
from beta_pipeline_tests.support.storage import (
    BACKFILL_ASSETS,
    FIRST,
    LAST,
    instance_at,
    snapshot,
)

KEYS = [dg.AssetKey(a) for a in BACKFILL_ASSETS]
STOCK_OVERRIDE = """\
event_log_storage:
  module: dagster._core.storage.event_log
  class: SqliteEventLogStorage
  config:
    base_dir: {base_dir}
"""


def _backfill(root: Path, stock: bool = False) -> tuple[dg.DagsterInstance, dict[str, Any]]:
    """Run the backfill on a fresh instance under ``root``; the instance and its snapshot."""
    dagster_home = root / "dagster_home"
    dagster_home.mkdir(parents=True)
    if stock:
        (dagster_home / "dagster.local.yaml").write_text(
            STOCK_OVERRIDE.format(base_dir=dagster_home / "history" / "runs")
        )
    instance = instance_at(dagster_home)
    defs = build(root / "warehouse.duckdb", root)
    result = run(defs, "daily_job", FIRST, LAST, instance=instance, keys=KEYS)
    assert result.success
    return instance, snapshot(instance, defs, BACKFILL_ASSETS)


@pytest.fixture(scope="module")
def range_events() -> Iterator[None]:
    """The CLI's range-run events (one planned event per asset and check, with the range)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS", "1")
        mp.setenv("DAGSTER_EVENT_BATCH_SIZE", "1000")
        yield


@pytest.fixture(scope="module")
def stock(range_events, tmp_path_factory) -> Iterator[tuple[dg.DagsterInstance, dict]]:
    instance, snap = _backfill(tmp_path_factory.mktemp("stock"), stock=True)
    assert type(instance.event_log_storage) is SqliteEventLogStorage
    yield instance, snap
    instance.dispose()


@pytest.fixture(scope="module")
def batched(range_events, tmp_path_factory) -> Iterator[tuple[dg.DagsterInstance, dict, list]]:
    """The backfill on the batched storage, with the sizes of the batches it stored at once."""
    cls = instance_tuning.storage_class()
    batches: list[int] = []
    original = cls.store_event_batch

    def spy(self, events) -> None:  # type: ignore[no-untyped-def]
        batches.append(len(events))
        original(self, events)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(cls, "store_event_batch", spy)
        instance, snap = _backfill(tmp_path_factory.mktemp("batched"))
    assert type(instance.event_log_storage) is cls
    yield instance, snap, batches
    instance.dispose()


@pytest.mark.slow
def test_batched_storage_records_what_the_stock_storage_records(stock, batched) -> None:
    _, expected = stock
    _, got, batches = batched
    sessions = 15  # 2022-11-28 .. 2022-12-16
    assert max(batches, default=0) >= sessions, batches  # the batch path was taken
    for asset in BACKFILL_ASSETS:
        assert len(expected["partitions"][asset]) == sessions, asset
    evaluated = [row for rows in expected["checks"].values() for row in rows if row[2]]
    assert evaluated, "the backfill recorded no passed check evaluation"
    assert got["partitions"] == expected["partitions"]
    assert got["events"] == expected["events"]
    assert got["latest"] == expected["latest"]
    assert got["checks"] == expected["checks"]


@pytest.mark.slow
def test_comparison_fails_when_the_batch_path_drops_an_event(stock, range_events, tmp_path):
    """The conformance comparison can fail: a batch path losing one event per batch."""
    _, expected = stock
    cls = instance_tuning.storage_class()
    original = cls.store_event_batch

    def lossy(self, events) -> None:  # type: ignore[no-untyped-def]
        original(self, events[:-1] if len(events) > 1 else events)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(cls, "store_event_batch", lossy)
        instance, got = _backfill(tmp_path)
    instance.dispose()
    assert got["partitions"] != expected["partitions"]


def _synchronous(path: Path) -> int:
    """``PRAGMA synchronous`` of a new SQLAlchemy connection to ``path`` (1 NORMAL, 2 FULL)."""
    engine = sa.create_engine(f"sqlite:///{path}")
    try:
        with engine.connect() as conn:
            return int(conn.execute(sa.text("PRAGMA synchronous")).scalar())
    finally:
        engine.dispose()


@pytest.mark.slow
def test_pragmas_apply_only_to_the_batched_event_log(stock, batched, tmp_path) -> None:
    batched_home = Path(batched[0].root_directory)
    stock_home = Path(stock[0].root_directory)
    assert _synchronous(batched_home / "history" / "runs" / "index.db") == 1
    # the run storage of the same instance, the stock instance and other engines: untouched
    assert _synchronous(batched_home / "history" / "runs.db") == 2
    assert _synchronous(stock_home / "history" / "runs" / "index.db") == 2
    assert _synchronous(tmp_path / "other.db") == 2
    assert not instance_tuning.is_tuned_path(tmp_path / "other.db")


def test_installed_dagster_is_the_tested_version() -> None:
    """Bumping Dagster: re-run these tests, then update ``TESTED_DAGSTER_VERSION``."""
    assert instance_tuning.batching_supported(), (
        f"Dagster {instance_tuning.dagster_version()} != tested "
        f"{instance_tuning.TESTED_DAGSTER_VERSION}: the batched storage is inactive"
    )
    cls = instance_tuning.storage_class()
    assert "store_event_batch" in vars(cls)


def test_version_guard_falls_back_to_the_stock_storage(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(instance_tuning, "dagster_version", lambda: "1.99.0")
    instance_tuning._stock_storage_class.cache_clear()
    try:
        with pytest.warns(instance_tuning.DagsterVersionWarning, match="1.99.0"):
            cls = instance_tuning.storage_class()
        overridden = {"__init__", "from_config_value", "store_event_batch",
                      "_store_asset_check_evaluation_planned"}
        assert cls.__mro__[1] is SqliteEventLogStorage
        assert not overridden & set(vars(cls)), "no override may be active"
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # one warning per process, not per instance
            assert instance_tuning.storage_class() is cls
            instance = instance_at(tmp_path / "dagster_home")
        try:
            assert type(instance.event_log_storage) is SqliteEventLogStorage
        finally:
            instance.dispose()
    finally:
        instance_tuning._stock_storage_class.cache_clear()
