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
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest

from beta_pipeline.lib import calendar
from beta_pipeline_tests.test_defs_support import query

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


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


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
    port = _free_port()
    # the automation would also load today's session (outside the embedded data): off here
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "BETA_PIPELINE_AUTOMATION": "off"}
    log = (tmp_path / "dagster_dev.log").open("w")
    dagster = str(Path(sys.executable).with_name("dagster"))
    proc = subprocess.Popen(
        [dagster, "dev", "-m", "beta_pipeline.definitions", "-h", "127.0.0.1", "-p", str(port)],
        cwd=tmp_path,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                _graphql(port, "{ version }", {})
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(
                        "dagster dev did not start:\n" + (tmp_path / "dagster_dev.log").read_text()
                    ) from None
                time.sleep(1)
        yield port
    finally:
        os.killpg(proc.pid, 15)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
        log.close()


@pytest.mark.timeout(600)
def test_ui_backfill_materializes_exactly_the_requested_partitions(
    home: Path, dagster_dev: int, tmp_path: Path
) -> None:
    sessions = [d.strftime("%Y-%m-%d") for d in calendar.sessions(FIRST, LAST)]
    preloaded = [d.strftime("%Y-%m-%d") for d in calendar.sessions(*PRELOAD)]
    launched = _graphql(
        dagster_dev,
        LAUNCH,
        {
            "params": {
                "partitionNames": sessions,
                "assetSelection": [{"path": [name]} for name in ASSETS],
                "fromFailure": False,
            }
        },
    )["launchPartitionBackfill"]
    assert launched["__typename"] == "LaunchBackfillSuccess", launched
    backfill_id = launched["backfillId"]
    status = None
    deadline = time.monotonic() + 420
    while time.monotonic() < deadline:
        result = _graphql(dagster_dev, STATUS, {"id": backfill_id})["partitionBackfillOrError"]
        status = result.get("status")
        if status in ("COMPLETED", "COMPLETED_SUCCESS", "FAILED", "COMPLETED_FAILED", "CANCELED"):
            break
        time.sleep(3)
    log = (tmp_path / "dagster_dev.log").read_text()
    assert status in ("COMPLETED", "COMPLETED_SUCCESS"), f"backfill {status}\n{log[-4000:]}"

    instance = dg.DagsterInstance.get()
    try:
        warehouse = home / "warehouse.duckdb"
        for name in ASSETS:
            expected = sorted(preloaded + sessions) if name in PRELOADED_ASSETS else sessions
            materialized = sorted(instance.get_materialized_partitions(dg.AssetKey(name)))
            assert materialized == expected, name  # requested = materialized
            table, column = TABLES[name]
            dates = query(warehouse, f"SELECT DISTINCT {column} AS d FROM {table} ORDER BY 1")
            with_rows = {str(d.date()) for d in dates["d"]}
            # every backfilled partition has rows, and no row lies outside a materialized one
            # (the very first preloaded session has no return: no earlier price)
            assert set(sessions) <= with_rows <= set(expected), name
    finally:
        instance.dispose()
