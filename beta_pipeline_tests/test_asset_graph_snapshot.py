"""Snapshot of the asset graph, so that every graph change is reviewed in a diff.

The graph (asset keys, groups, partitions, deps, tables written, automation conditions,
jobs and their selections, check keys, sensors) is compared with the committed
``snapshots/asset_graph.json``. After an intended change, rewrite the snapshot and review
its diff with the change::

    BETA_PIPELINE_UPDATE_SNAPSHOT=1 python -m pytest -q \
        beta_pipeline_tests/test_asset_graph_snapshot.py
"""

from __future__ import annotations

import difflib
import json
import os
from pathlib import Path

import dagster as dg

from beta_pipeline.definitions import ASSETS, defs
from beta_pipeline.defs.jobs import JOBS
from beta_pipeline.defs.tables import tables_of

SNAPSHOT = Path(__file__).parent / "snapshots" / "asset_graph.json"
UPDATE_ENV = "BETA_PIPELINE_UPDATE_SNAPSHOT"


def _condition(cond: dg.AutomationCondition | None, depth: int = 0) -> str | None:
    """A condition on one line: ``Type<label>(children)``; below the root, a labeled
    condition (a building block of ``defs/automation.py``) shows only its label."""
    if cond is None:
        return None
    label = cond.get_label()
    if label and depth:
        return f"<{label}>"
    name = type(cond).__name__.removesuffix("AutomationCondition").removesuffix("Condition")
    children = ", ".join(str(_condition(c, depth + 1)) for c in cond.children)
    return f"{name}{f'<{label}>' if label else ''}{f'({children})' if children else ''}"


def _keys(keys: object) -> list[str]:
    return sorted(k.to_user_string() for k in keys)  # type: ignore[attr-defined]


def asset_graph() -> dict[str, object]:
    """The reviewed facts of the code location's graph (JSON-ready, sorted)."""
    assets: dict[str, object] = {}
    for asset in ASSETS:
        for key, spec in asset.specs_by_key.items():
            assets[key.to_user_string()] = {
                "group": spec.group_name,
                "partitions": str(asset.partitions_def) if asset.partitions_def else None,
                "deps": _keys(d.asset_key for d in spec.deps),
                "tables": tables_of(spec.metadata),
                "automation_condition": _condition(spec.automation_condition),
            }
    jobs = {
        job.name: {
            "assets": _keys(job.selection.resolve(ASSETS)),
            "partitions": str(job.partitions_def) if job.partitions_def else None,
            "stops_later_jobs": job.stops_later_jobs,
            "cli_keys": job.cli_keys,
            "training_config_op": job.training_config_op,
            "needs_market_model": job.needs_market_model,
        }
        for job in JOBS
    }
    checks = _keys(k for c in defs.asset_checks or [] for k in c.check_keys)
    sensors = sorted(s.name for s in defs.sensors or [])
    return {
        "assets": dict(sorted(assets.items())),
        "jobs": {"order": [j.name for j in JOBS], **jobs},
        "asset_checks": checks,
        "sensors": sensors,
    }


def test_asset_graph_matches_the_committed_snapshot() -> None:
    current = json.dumps(asset_graph(), indent=1, sort_keys=False) + "\n"
    if os.environ.get(UPDATE_ENV) == "1":
        SNAPSHOT.parent.mkdir(parents=True, exist_ok=True)
        SNAPSHOT.write_text(current)
    assert SNAPSHOT.exists(), f"no snapshot yet: run with {UPDATE_ENV}=1"
    committed = SNAPSHOT.read_text()
    if current != committed:
        diff = "".join(
            difflib.unified_diff(
                committed.splitlines(keepends=True),
                current.splitlines(keepends=True),
                fromfile=str(SNAPSHOT.name),
                tofile="current graph",
            )
        )
        raise AssertionError(
            f"the asset graph changed; if intended, rerun with {UPDATE_ENV}=1 and commit the "
            f"snapshot:\n{diff}"
        )
