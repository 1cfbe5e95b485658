"""Readers and writers of the warehouse coexist: every open retries DuckDB's file lock.

Each test holds the file from a second process (DuckDB: one read-write process or many
read-only ones, never both) and checks that the other side waits and then succeeds, or fails
after its lock timeout naming the holder. Measured numbers are printed (``pytest -s``).
"""

from __future__ import annotations

import contextlib
import logging
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import beta_pipeline
from beta_pipeline.defs.resources import DuckDBWarehouse
from beta_pipeline.lib import warehouse

HOLDER = textwrap.dedent(
    """
    import sys, time, duckdb
    path, mode, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3])
    conn = duckdb.connect(path, read_only=(mode == "ro"))
    print("held", flush=True)
    time.sleep(seconds)
    conn.close()
    print(f"released {time.time()!r}", flush=True)
    """
)
#: an argument that shows up in the holder's /proc/<pid>/cmdline
MARKER = "holder-marker-7d1"


@pytest.fixture()
def db(tmp_path: Path) -> Path:
    """A warehouse with its tables and one row of raw.market."""
    path = tmp_path / "warehouse.duckdb"
    with warehouse.open_warehouse(path) as conn:
        conn.execute("INSERT INTO raw.market VALUES ('2020-01-02', 'mkt', 0.01)")
    return path


@contextlib.contextmanager
def holding(path: Path, mode: str, seconds: float) -> Iterator[subprocess.Popen[str]]:
    """A second process holding ``path`` (``ro``/``rw``) for ``seconds``; killed at exit."""
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(path), mode, str(seconds), MARKER],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "held"
        yield proc
    finally:
        proc.kill()
        proc.wait()


def released_at(proc: subprocess.Popen[str]) -> float:
    """The wall time at which the holder closed its connection."""
    assert proc.stdout is not None
    line = proc.stdout.readline().split()
    assert line and line[0] == "released", line
    return float(line[1])


def attempts_logged(caplog: pytest.LogCaptureFixture) -> int:
    """Attempts of the last open that waited (from its "opened ... after" record)."""
    done = [r for r in caplog.records if "attempts" in r.getMessage() and "opened" in r.msg]
    return int(done[-1].args[-1]) if done else 1


def test_writer_waits_for_a_read_only_holder(
    db: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    resource = DuckDBWarehouse(path=str(db), lock_timeout_s=30)
    with holding(db, "ro", 3.0) as proc:
        t0 = time.time()
        with resource.writer() as conn:
            acquired = time.time()
            conn.execute("INSERT INTO raw.market VALUES ('2020-01-03', 'mkt', 0.02)")
        release = released_at(proc)
    waits = [r for r in caplog.records if "is locked by" in r.getMessage()]
    print(
        f"\nwriter waited {acquired - t0:.2f} s, acquired {acquired - release:.3f} s after the "
        f"release, {attempts_logged(caplog)} attempts, {len(waits)} waits logged"
    )
    assert acquired - t0 > 2.0  # it really waited for the holder
    assert 0 <= acquired - release < 1.0  # backoff is capped at 0.5 s
    assert waits and f"PID {proc.pid}" in waits[0].getMessage()
    with warehouse.open_warehouse(db, read_only=True) as conn:
        assert conn.execute("SELECT count(*) FROM raw.market").fetchone() == (2,)


def test_writer_gives_up_naming_the_holder(db: Path) -> None:
    resource = DuckDBWarehouse(path=str(db), lock_timeout_s=1)
    with holding(db, "rw", 30.0) as proc:
        t0 = time.monotonic()
        with pytest.raises(warehouse.WarehouseLockedError) as info, resource.writer():
            pass
        took = time.monotonic() - t0
    print(f"\nwriter with lock_timeout_s=1 failed after {took:.2f} s: {info.value}")
    assert 1.0 <= took < 2.5
    assert info.value.pid == proc.pid
    message = str(info.value)
    assert f"PID {proc.pid}" in message and MARKER in message  # cmdline from /proc
    assert "lock_timeout_s" in message and warehouse.LOCK_TIMEOUT_ENV in message
    assert isinstance(info.value, warehouse.duckdb.Error)  # callers catching duckdb.Error


def test_read_waits_for_a_writer(db: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BETA_PIPELINE_HOME", str(db.parent))
    with holding(db, "rw", 2.0) as proc:
        t0 = time.time()
        frame = beta_pipeline.read("SELECT series, value FROM raw.market WHERE series = ?", ["mkt"])
        done = time.time()
        release = released_at(proc)
    print(f"\nread() waited {done - t0:.2f} s, done {done - release:.3f} s after the release")
    assert done - t0 > 1.0
    assert frame.to_dict("records") == [{"series": "mkt", "value": 0.01}]
    with beta_pipeline.connect_readonly(db, timeout_s=0) as conn:  # closed again at once
        assert conn.execute("SELECT count(*) FROM raw.market").fetchone() == (1,)


READER_LOOP = textwrap.dedent(
    """
    import logging, sys, time
    import beta_pipeline
    waits = []
    class Count(logging.Handler):
        def emit(self, record):
            waits.append(record)
    logging.getLogger("beta_pipeline.warehouse").addHandler(Count())
    logging.getLogger("beta_pipeline.warehouse").setLevel(logging.DEBUG)
    print("ready", flush=True)
    sys.stdin.readline()
    t0 = time.monotonic()
    sizes = [len(beta_pipeline.read("SELECT * FROM raw.market", path=sys.argv[1]))
             for _ in range(20)]
    n = sum("is locked by" in r.getMessage() for r in waits)
    print(f"{time.monotonic() - t0:.2f} {n} {min(sizes)} {max(sizes)}", flush=True)
    """
)


def test_reader_loop_and_writer_loop_never_fail(
    db: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    resource = DuckDBWarehouse(path=str(db), lock_timeout_s=20)
    proc = subprocess.Popen(
        [sys.executable, "-c", READER_LOOP, str(db)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdin is not None and proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready"
        proc.stdin.write("go\n")
        proc.stdin.flush()
        t0 = time.monotonic()
        for i in range(20):
            with resource.writer() as conn:
                conn.execute("BEGIN")
                insert = "INSERT INTO raw.market VALUES (DATE '2021-01-01' + ?, 'x', ?)"
                conn.execute(insert, [i, i])
                time.sleep(0.05)  # a transaction that takes a while: readers must meet it
                conn.execute("COMMIT")
            time.sleep(0.05)  # the next step computes before it writes again
        writer_s = time.monotonic() - t0
        out, _ = proc.communicate(timeout=25)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == 0, out
    reader_s, reader_waits, smallest, largest = out.split()
    writer_waits = sum("is locked by" in r.getMessage() for r in caplog.records)
    print(
        f"\n20 writes in {writer_s:.2f} s ({writer_waits} lock waits), 20 reads in {reader_s} s "
        f"({reader_waits} lock waits), reads saw {smallest}..{largest} rows"
    )
    with warehouse.open_warehouse(db, read_only=True) as conn:
        assert conn.execute("SELECT count(*) FROM raw.market").fetchone() == (21,)
    assert 1 <= int(smallest) <= int(largest) <= 21
    assert writer_waits + int(reader_waits) >= 1  # they did meet: the retry was exercised


def test_lock_holder_and_timeout_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    text = (
        'IO Error: Could not set lock on file "/x/w.duckdb": Conflicting lock is held in '
        "/usr/bin/python3.11 (PID 999999999). See also https://duckdb.org/docs"
    )
    assert warehouse.lock_holder(text) == (999999999, "PID 999999999 (/usr/bin/python3.11)")
    assert warehouse.lock_holder("IO Error: disk full") == (None, None)
    assert warehouse.is_lock_error(warehouse.duckdb.IOException(text))
    assert not warehouse.is_lock_error(warehouse.duckdb.IOException("IO Error: disk full"))
    monkeypatch.delenv(warehouse.LOCK_TIMEOUT_ENV, raising=False)
    assert warehouse.lock_timeout_s() == warehouse.DEFAULT_LOCK_TIMEOUT_S == 120
    monkeypatch.setenv(warehouse.LOCK_TIMEOUT_ENV, "7.5")
    assert warehouse.lock_timeout_s() == 7.5
    assert warehouse.lock_timeout_s(2) == 2
    assert DuckDBWarehouse(path="x").lock_timeout() == 7.5
    assert DuckDBWarehouse(path="x", lock_timeout_s=3).lock_timeout() == 3
    monkeypatch.setenv(warehouse.LOCK_TIMEOUT_ENV, "soon")
    with pytest.raises(ValueError, match=warehouse.LOCK_TIMEOUT_ENV):
        warehouse.lock_timeout_s()
