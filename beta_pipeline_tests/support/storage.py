"""Helpers of the ``test_storage_*`` modules: an instance from a home's generated config and a
run-independent snapshot of what a backfill recorded in it (materializations, check results).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import dagster as dg

from beta_pipeline.settings import write_instance_config

#: The assets of the storage backfills (ingestion and returns of the embedded source).
BACKFILL_ASSETS = ("raw_prices", "raw_market", "daily_returns")
#: Three weeks of sessions of the embedded source.
FIRST, LAST = "2022-11-28", "2022-12-16"


def instance_at(dagster_home: Path) -> dg.DagsterInstance:
    """(Re)generate ``dagster_home/dagster.yaml`` and load the instance it configures."""
    write_instance_config(dagster_home)
    return dg.DagsterInstance.from_config(str(dagster_home))


def _row_count(metadata: dict[str, Any]) -> int | None:
    value = metadata.get("dagster/row_count")
    return None if value is None else int(value.value)


def snapshot(
    instance: dg.DagsterInstance, defs: dg.Definitions, assets: Iterable[str]
) -> dict[str, Any]:
    """What the instance recorded for ``assets``, without run ids or timestamps:

    - ``partitions``: asset -> sorted materialized partitions;
    - ``latest``: asset -> partition -> (metadata keys, row count) of its latest
      materialization; ``events``: asset -> number of materialization events;
    - ``checks``: check name -> sorted (partition, status, passed, metadata keys) of every
      execution record of the check.
    """
    keys = [dg.AssetKey(a) for a in assets]
    out: dict[str, Any] = {"partitions": {}, "latest": {}, "events": {}, "checks": {}}
    for key in keys:
        name = key.to_user_string()
        out["partitions"][name] = sorted(instance.get_materialized_partitions(key))
        records = instance.fetch_materializations(key, limit=10_000).records  # newest first
        out["events"][name] = len(records)
        latest: dict[str | None, tuple[tuple[str, ...], int | None]] = {}
        for record in records:
            mat = record.asset_materialization
            assert mat is not None
            if mat.partition not in latest:
                latest[mat.partition] = (tuple(sorted(mat.metadata)), _row_count(mat.metadata))
        out["latest"][name] = latest
    storage = instance.event_log_storage
    for check_key in defs.resolve_asset_graph().asset_check_keys:
        if check_key.asset_key not in keys:
            continue
        rows = []
        for rec in storage.get_asset_check_execution_history(check_key, limit=10_000):
            data = rec.event.dagster_event.event_specific_data if rec.event else None
            passed = getattr(data, "passed", None)
            meta = tuple(sorted(getattr(data, "metadata", None) or {}))
            rows.append((rec.partition or "", rec.status.value, passed, meta))
        if rows:
            out["checks"][check_key.name] = sorted(rows, key=repr)
    return out
