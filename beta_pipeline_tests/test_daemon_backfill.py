"""A backfill launched the way the UI launches it (GraphQL ``launchPartitionBackfill`` on the
webserver of ``dagster dev``), run by the daemon: it materializes exactly the requested
partitions, and every materialized partition has rows in the warehouse.

Before trailing windows were read rather than declared as partition mappings, such a
backfill of 2021-01-04..2021-03-31 ran ``daily_returns`` to 2021-04-14 and ``daily_betas``
to 2022-04-15 (Dagster extends an asset backfill downstream through partition mappings).
"""

from __future__ import annotations

import json
import os
import signal
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from beta_pipeline.defs import recovery
from beta_pipeline.lib import calendar
from beta_pipeline_tests.support.dagster_dev import dagster_dev as run_dagster_dev
from beta_pipeline_tests.support.defs import query, table

pytestmark = pytest.mark.slow  # dagster dev (webserver + daemon) and a backfill

ASSETS = ("raw_prices", "raw_market", "daily_returns", "daily_betas")
#: loaded first with the CLI: the history that the backfill's returns and betas read
PRELOAD = ("2020-02-03", "2021-02-26")
PRELOADED_ASSETS = ("raw_prices", "raw_market", "daily_returns")
FIRST, LAST = "2021-03-01", "2021-03-12"
TABLES = {
    "raw_prices": ("raw.prices", "date"),
    "raw_market": ("raw.market", "date"),
    "daily_returns": ("returns.daily", "date"),
    "daily_betas": ("betas.daily", "date"),
}

LAUNCH = """
mutation Launch($params: LaunchBackfillParams!) {
  launchPartitionBackfill(backfillParams: $params) {
    __typename
    ... on LaunchBackfillSuccess { backfillId }
    ... on PythonError { message }
    ... on InvalidSubsetError { message }
  }
}"""
STATUS = """
query Status($id: String!) {
  partitionBackfillOrError(backfillId: $id) {
    ... on PartitionBackfill { status }
    ... on PythonError { message }
  }
}"""


def _graphql(port: int, query_text: str, variables: dict) -> dict:
    body = json.dumps({"query": query_text, "variables": variables}).encode()
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/graphql",
        data=body,
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        payload = json.loads(response.read())
    assert "errors" not in payload, payload
    return payload["data"]


@pytest.fixture
def dagster_dev(home: Path, tmp_path: Path) -> Iterator[int]:
    """``dagster dev`` (webserver + daemon) on the test's home, after the CLI loaded the
    prices of the week before the backfill; yields the port."""
    from beta_pipeline.cli import main

    select = ",".join(PRELOADED_ASSETS)
    assert main(["run", "--select", select, "--start", PRELOAD[0], "--end", PRELOAD[1]]) == 0
    # the automation would also load today's session (outside the embedded data): off here
    with run_dagster_dev(tmp_path, automation=False) as server:
        _graphql(server.port, "{ version }", {})
        yield server.port


def _launch(port: int, assets: tuple[str, ...], sessions: list[str]) -> str:
    """A backfill as the UI launches it; returns its id."""
    params = {
        "partitionNames": sessions,
        "assetSelection": [{"path": [name]} for name in assets],
        "fromFailure": False,
    }
    launched = _graphql(port, LAUNCH, {"params": params})["launchPartitionBackfill"]
    assert launched["__typename"] == "LaunchBackfillSuccess", launched
    return launched["backfillId"]


def _wait_backfill(port: int, backfill_id: str, log: Path, timeout: float = 420) -> str:
    status = None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = _graphql(port, STATUS, {"id": backfill_id})["partitionBackfillOrError"]
        status = result.get("status")
        if status in ("COMPLETED", "COMPLETED_SUCCESS", "FAILED", "COMPLETED_FAILED", "CANCELED"):
            return status
        time.sleep(3)
    raise AssertionError(f"backfill {backfill_id} still {status}\n{log.read_text()[-4000:]}")


@pytest.mark.timeout(900)
def test_ui_backfill_materializes_exactly_the_requested_partitions(
    home: Path, dagster_dev: int, tmp_path: Path
) -> None:
    sessions = [d.strftime("%Y-%m-%d") for d in calendar.sessions(FIRST, LAST)]
    preloaded = [d.strftime("%Y-%m-%d") for d in calendar.sessions(*PRELOAD)]
    log = tmp_path / "dagster_dev.log"
    status = _wait_backfill(dagster_dev, _launch(dagster_dev, ASSETS, sessions), log)
    assert status in ("COMPLETED", "COMPLETED_SUCCESS"), f"{status}\n{log.read_text()[-4000:]}"

    instance = dg.DagsterInstance.get()
    try:
        warehouse = home / "warehouse.duckdb"
        for name in ASSETS:
            expected = sorted(preloaded + sessions) if name in PRELOADED_ASSETS else sessions
            materialized = sorted(instance.get_materialized_partitions(dg.AssetKey(name)))
            assert materialized == expected, name  # requested = materialized
            table_name, column = TABLES[name]
            dates = query(warehouse, f"SELECT DISTINCT {column} AS d FROM {table_name} ORDER BY 1")
            with_rows = {str(d.date()) for d in dates["d"]}
            # every backfilled partition has rows, and no row lies outside a materialized one
            # (the very first preloaded session has no return: no earlier price)
            assert set(sessions) <= with_rows <= set(expected), name

        # kill -9 of a daemon-launched run: the sensor marks it FAILED and frees its writer
        # slot; a backfill launched right after the kill completes with the same rows
        before = table(warehouse, "betas.daily")
        doomed = _launch(dagster_dev, ("daily_betas",), sessions)
        run, pid = _started_run_of(instance, doomed)
        os.kill(pid, signal.SIGKILL)
        killed_at = time.monotonic()
        rerun = _launch(dagster_dev, ("daily_betas",), sessions)
        status = _wait_backfill(dagster_dev, rerun, log, timeout=240)
        recovered_s = time.monotonic() - killed_at
        print(f"kill -9 of run {run.run_id[:8]} -> rerun backfill done in {recovered_s:.0f}s")
        assert status in ("COMPLETED", "COMPLETED_SUCCESS"), status
        assert recovered_s < 180
        assert instance.get_run_by_id(run.run_id).status == dg.DagsterRunStatus.FAILURE
        pd.testing.assert_frame_equal(table(warehouse, "betas.daily"), before)
    finally:
        instance.dispose()


def _started_run_of(instance: dg.DagsterInstance, backfill_id: str) -> tuple[dg.DagsterRun, int]:
    """The backfill's run once it is STARTED, and the pid of its run worker."""
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        runs = instance.get_runs(filters=dg.RunsFilter(tags={"dagster/backfill": backfill_id}))
        for run in runs:
            if run.status == dg.DagsterRunStatus.STARTED:
                launched = recovery._launched_pid(instance, run)
                if launched is not None:
                    return run, launched[0]
        time.sleep(0.5)
    raise AssertionError(f"no started run for backfill {backfill_id}")
