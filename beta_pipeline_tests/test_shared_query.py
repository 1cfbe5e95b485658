"""``beta-pipeline query`` is strictly read-only: no write to the warehouse, no file or
network access, no setting changed; results go to a file only through ``--output``."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from beta_pipeline.cli import main
from beta_pipeline.lib import warehouse
from beta_pipeline_tests.test_shared_access import HOLDER, MARKER


@pytest.fixture()
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A home whose warehouse holds three rows of raw.market."""
    home = tmp_path / "home"
    monkeypatch.setenv("BETA_PIPELINE_HOME", str(home))
    monkeypatch.chdir(tmp_path)
    with warehouse.open_warehouse(home / "warehouse.duckdb") as conn:
        conn.execute(
            "INSERT INTO raw.market VALUES ('2020-01-02', 'mkt', 0.01), "
            "('2020-01-03', 'mkt', -0.02), ('2020-01-02', 'rf', 0.0001)"
        )
    return home


def rows(home: Path) -> int:
    with warehouse.open_warehouse(home / "warehouse.duckdb", read_only=True) as conn:
        return conn.execute("SELECT count(*) FROM raw.market").fetchone()[0]


ESCAPES = {
    "copy_to": ("COPY raw.market TO '{dir}/out.csv'", "out.csv"),
    "copy_query": ("COPY (SELECT 1) TO '{dir}/out.parquet' (FORMAT parquet)", "out.parquet"),
    "attach_insert": (
        "ATTACH '{dir}/other.duckdb' AS o (READ_WRITE); CREATE TABLE o.t AS SELECT 1 AS x",
        "other.duckdb",
    ),
    "install": ("INSTALL httpfs", None),
    "load": ("LOAD httpfs", None),
    "set": ("SET enable_external_access = true", None),
    "reset": ("RESET lock_configuration", None),
    "pragma_set": ("PRAGMA threads = 1", None),
    "create": ("CREATE TABLE raw.junk AS SELECT 1 AS x", None),
    "delete": ("DELETE FROM raw.market", None),
    "export": ("EXPORT DATABASE '{dir}/dump'", "dump"),
    "explain_analyze_delete": ("EXPLAIN ANALYZE DELETE FROM raw.market", None),
    "select_then_delete": ("SELECT 1; DELETE FROM raw.market", None),
    "read_other_file": ("SELECT * FROM read_csv('{dir}/secret.csv')", None),
}


@pytest.mark.parametrize("name", sorted(ESCAPES))
def test_escapes_are_refused(
    name: str, home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "secret.csv").write_text("a\n1\n")
    sql, created = ESCAPES[name]
    assert main(["query", sql.format(dir=tmp_path)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("beta-pipeline query: ")
    if name == "read_other_file":
        assert "disabled by configuration" in err  # a SELECT, stopped by the sandbox
    else:
        assert "read-only" in err and "refused" in err
    if created:
        assert not (tmp_path / created).exists()
    assert rows(home) == 3
    assert sorted(p.name for p in home.iterdir()) == ["warehouse.duckdb"]


@pytest.mark.parametrize(
    "sql",
    [
        "COPY raw.market TO '{dir}/out.csv'",
        "ATTACH '{dir}/other.duckdb' AS o (READ_WRITE)",
        "INSTALL httpfs",
        "LOAD httpfs",
        "SET enable_external_access = true",
        "RESET autoload_known_extensions",
        "SET lock_configuration = false",
        "SELECT * FROM read_text('/etc/hostname')",
        "CREATE TABLE raw.junk (x INTEGER)",
    ],
)
def test_the_sandbox_refuses_escapes_by_itself(sql: str, home: Path, tmp_path: Path) -> None:
    """Below the statement allow-list: the connection's settings refuse each escape too."""
    with warehouse.open_sandboxed(home / "warehouse.duckdb") as conn:
        with pytest.raises(duckdb.Error):
            conn.execute(sql.format(dir=tmp_path))
        settings = conn.execute(
            "SELECT name, value FROM duckdb_settings() WHERE name IN ('enable_external_access',"
            " 'autoinstall_known_extensions', 'autoload_known_extensions',"
            " 'allow_community_extensions', 'lock_configuration')"
        ).fetchall()
    assert dict(settings) == {
        "enable_external_access": "false",
        "autoinstall_known_extensions": "false",
        "autoload_known_extensions": "false",
        "allow_community_extensions": "false",
        "lock_configuration": "true",
    }
    assert not (tmp_path / "out.csv").exists() and not (tmp_path / "other.duckdb").exists()


def test_reads_work(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sql = (
        "WITH m AS (SELECT * FROM raw.market WHERE series = 'mkt') "
        "SELECT count(*) AS n, round(sum(value), 4) AS s FROM m"
    )
    assert main(["query", sql]) == 0
    assert capsys.readouterr().out.split() == ["n", "s", "2", "-0.01"]
    for sql in ("DESCRIBE raw.market", "SUMMARIZE raw.market", "EXPLAIN SELECT 1",
                "PRAGMA table_info('raw.market')", "FROM raw.market LIMIT 1"):
        assert main(["query", sql]) == 0, capsys.readouterr().err
    (home / "q.sql").write_text("SELECT series FROM raw.market ORDER BY 1 LIMIT 1")
    capsys.readouterr()
    assert main(["query", f"@{home / 'q.sql'}", "--format", "csv"]) == 0
    assert capsys.readouterr().out.split() == ["series", "mkt"]


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_output_file(suffix: str, home: Path, tmp_path: Path) -> None:
    target = tmp_path / "results" / f"x{suffix}"
    assert main(["query", "SELECT * FROM raw.market ORDER BY date, series", "--output",
                 str(target)]) == 0
    frame = pd.read_csv(target) if suffix == ".csv" else pd.read_parquet(target)
    assert frame.shape == (3, 3) and list(frame.columns) == ["date", "series", "value"]
    assert main(["query", "SELECT 1", "--output", str(tmp_path / "x.json")]) == 1


def test_query_waits_for_a_writer(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = home / "warehouse.duckdb"
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(path), "rw", "2.0", MARKER],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
        t0 = time.monotonic()
        assert main(["query", "SELECT count(*) AS n FROM raw.market"]) == 0
        waited = time.monotonic() - t0
    finally:
        proc.kill()
        proc.wait()
    assert capsys.readouterr().out.split() == ["n", "3"]
    with capsys.disabled():
        print(f"\nquery waited {waited:.2f} s for a 2 s writer")
    assert waited > 1.0
    with_timeout = ["query", "SELECT 1", "--lock-timeout", "0.5"]
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(path), "rw", "30", MARKER],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
        assert main(with_timeout) == 1
    finally:
        proc.kill()
        proc.wait()
    assert f"locked by PID {proc.pid}" in capsys.readouterr().err
