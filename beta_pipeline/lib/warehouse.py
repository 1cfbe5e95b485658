"""DuckDB warehouse: table DDL, read-only readers and transactional partition writes.

Every write replaces a key range (a date window, a month window, or a set of key values)
with delete-then-insert inside ONE transaction, so a re-run replaces rows and never
duplicates them, and a failure leaves the previous rows in place. All SQL takes user values
as parameters; table and column names come from the table declarations
(:data:`beta_pipeline.lib.tables.TABLES`, re-exported here), never from input.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
import random
import re
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

from beta_pipeline.lib.table_spec import Table
from beta_pipeline.lib.tables import ALL_TABLES, TABLES

__all__ = ["ALL_TABLES", "TABLES", "Table"]  # plus the functions below


def _schemas() -> list[str]:
    return sorted({name.split(".")[0] for name in TABLES})


def ensure_tables(conn: duckdb.DuckDBPyConnection) -> None:
    """Create every declared schema and table (:data:`ALL_TABLES`) that does not exist yet."""
    for schema in _schemas():
        conn.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
    for table in TABLES.values():
        conn.execute(table.ddl())
    _add_new_columns(conn)


def _add_new_columns(conn: duckdb.DuckDBPyConnection) -> None:
    """Add declared nullable columns that a table created by an older version lacks (a
    column added to a declaration later, e.g. ``neuralbeta.runs.study``); old rows get NULL."""
    have = {
        (schema, table, column)
        for schema, table, column in conn.execute(
            "SELECT table_schema, table_name, column_name FROM information_schema.columns"
        ).fetchall()
    }
    for table in TABLES.values():
        schema, name = table.name.split(".")
        for column, sql_type in table.columns:
            if (schema, name, column) in have or "NOT NULL" in sql_type.upper():
                continue
            conn.execute(f"ALTER TABLE {table.name} ADD COLUMN IF NOT EXISTS {column} {sql_type}")


#: Environment variable: how long (seconds) an open waits for another process's lock.
LOCK_TIMEOUT_ENV = "BETA_PIPELINE_LOCK_TIMEOUT_S"
DEFAULT_LOCK_TIMEOUT_S = 120.0
#: Backoff between lock attempts: first sleep, growth factor, longest sleep (then jitter).
_BACKOFF_FIRST_S = 0.05
_BACKOFF_FACTOR = 2.0
_BACKOFF_MAX_S = 0.5
#: A waiting open logs a WARNING at its first wait and then every this many seconds; every
#: other wait is logged at DEBUG.
_WARN_EVERY_S = 10.0
_LOG = logging.getLogger("beta_pipeline.warehouse")
_HOLDER = re.compile(r"[Cc]onflicting lock is held in (?P<program>.*?) \(PID (?P<pid>\d+)\)")

#: DuckDB settings of a sandboxed query connection (``beta-pipeline query``): no file or
#: network access besides the warehouse itself (no COPY TO, ATTACH, read_csv of other files,
#: INSTALL), no extension auto-install or auto-load; set at connect time.
SANDBOX_CONFIG: dict[str, object] = {
    "enable_external_access": False,
    "autoinstall_known_extensions": False,
    "autoload_known_extensions": False,
    "allow_community_extensions": False,
}
#: Read-only PRAGMAs a sandboxed query may run (any other PRAGMA is refused).
_READ_PRAGMAS = frozenset(
    {
        "show_tables",
        "show_tables_expanded",
        "table_info",
        "show",
        "database_size",
        "database_list",
        "show_databases",
        "storage_info",
        "version",
        "platform",
        "functions",
        "collations",
        "metadata_info",
    }
)
_EXPLAIN = re.compile(r"^\s*EXPLAIN\s+(ANALY[SZ]E\s+)?(\([^)]*\)\s*)?", re.IGNORECASE)
_PRAGMA = re.compile(r"^\s*PRAGMA\s+(\w+)", re.IGNORECASE)


class WarehouseLockedError(duckdb.IOException):
    """Another process kept the warehouse file locked for longer than the lock timeout."""

    def __init__(
        self, message: str, path: Path, pid: int | None, waited_s: float, attempts: int
    ) -> None:
        super().__init__(message)
        self.path = path
        self.pid = pid
        self.waited_s = waited_s
        self.attempts = attempts


class ReadOnlyQueryError(ValueError):
    """SQL given to a read-only query holds a statement that is not a read."""


def lock_timeout_s(value: float | None = None) -> float:
    """The lock timeout: ``value`` if given, else ``$BETA_PIPELINE_LOCK_TIMEOUT_S``, else 120."""
    if value is not None:
        return max(0.0, float(value))
    env = os.environ.get(LOCK_TIMEOUT_ENV, "").strip()
    if not env:
        return DEFAULT_LOCK_TIMEOUT_S
    try:
        return max(0.0, float(env))
    except ValueError as err:
        raise ValueError(f"{LOCK_TIMEOUT_ENV}={env!r} is not a number of seconds") from err


def is_lock_error(err: BaseException) -> bool:
    """Whether ``err`` is DuckDB's "another process holds the file" error."""
    return isinstance(err, duckdb.IOException) and "could not set lock" in str(err).lower()


def lock_holder(message: str) -> tuple[int | None, str | None]:
    """The holder named in DuckDB's lock error: its pid and a description (pid and command
    line from ``/proc/<pid>/cmdline`` when readable, else the program DuckDB names)."""
    found = _HOLDER.search(message)
    if found is None:
        return None, None
    pid = int(found["pid"])
    command = found["program"]
    with contextlib.suppress(OSError):
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
        parts = [" ".join(p.decode(errors="replace").split()) for p in raw.split(b"\0") if p]
        if parts:  # long arguments (a ``python -c`` script) shortened one by one
            command = " ".join(p if len(p) <= 80 else p[:77] + "..." for p in parts)
    if len(command) > 300:
        command = command[:297] + "..."
    return pid, f"PID {pid} ({command})"


def retry_on_lock(
    opener: Callable[[], duckdb.DuckDBPyConnection],
    path: str | Path,
    *,
    read_only: bool,
    timeout_s: float | None = None,
    logger: logging.Logger | None = None,
) -> duckdb.DuckDBPyConnection:
    """``opener()``, retried while another process holds the file's lock: exponential backoff
    (0.05 s doubling to 0.5 s, jittered) up to ``timeout_s`` (default :func:`lock_timeout_s`),
    logging each wait; then :class:`WarehouseLockedError` naming the holder."""
    log = logger or _LOG
    limit = lock_timeout_s(timeout_s)
    start = time.monotonic()
    delay = _BACKOFF_FIRST_S
    attempts = 0
    warned_at: float | None = None
    mode = "read-only" if read_only else "read-write"
    while True:
        attempts += 1
        try:
            conn = opener()
        except duckdb.IOException as err:
            if not is_lock_error(err):
                raise
            waited = time.monotonic() - start
            pid, holder = lock_holder(str(err))
            holder = holder or "another process"
            left = limit - waited
            if left <= 0:
                raise WarehouseLockedError(
                    f"warehouse {path} is locked by {holder}: gave up opening it {mode} after "
                    f"{waited:.1f} s and {attempts} attempts (lock timeout {limit:g} s: "
                    f"{LOCK_TIMEOUT_ENV} or the resource's lock_timeout_s). DuckDB lets one "
                    "process write the file or many read it, never both: close that "
                    "connection (in notebooks use beta_pipeline.read(), which never holds "
                    "the file between cells).",
                    Path(path),
                    pid,
                    waited,
                    attempts,
                ) from err
            sleep = min(left, delay * random.uniform(0.5, 1.0))
            level = logging.DEBUG
            if warned_at is None or waited - warned_at >= _WARN_EVERY_S:
                level, warned_at = logging.WARNING, waited
            log.log(
                level,
                "warehouse %s is locked by %s; open %s waits %.2f s (attempt %d, %.1f s of %g s)",
                path,
                holder,
                mode,
                sleep,
                attempts,
                waited,
                limit,
            )
            time.sleep(sleep)
            delay = min(delay * _BACKOFF_FACTOR, _BACKOFF_MAX_S)
            continue
        if attempts > 1:
            log.info(
                "warehouse %s opened %s after %.2f s and %d attempts",
                path,
                mode,
                time.monotonic() - start,
                attempts,
            )
        return conn


def connect(
    path: str | Path,
    read_only: bool = False,
    *,
    timeout_s: float | None = None,
    config: dict[str, object] | None = None,
    logger: logging.Logger | None = None,
) -> duckdb.DuckDBPyConnection:
    """Open the warehouse; writers create it (and its tables) on first use.

    While another process holds the file (DuckDB: one read-write process or many read-only
    ones), the open is retried up to ``timeout_s`` (see :func:`retry_on_lock`). ``config``
    are DuckDB settings applied at connect time (e.g. :data:`SANDBOX_CONFIG`).
    """
    path = Path(path)
    if read_only and not path.exists():
        raise FileNotFoundError(
            f"warehouse {path} does not exist yet: materialize the pipeline first "
            "(beta-pipeline run)"
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    kwargs: dict[str, object] = {"read_only": read_only}
    if config:
        kwargs["config"] = dict(config)
    conn = retry_on_lock(
        lambda: duckdb.connect(str(path), **kwargs),
        path,
        read_only=read_only,
        timeout_s=timeout_s,
        logger=logger,
    )
    conn.execute("SET enable_progress_bar = false")
    if not read_only:
        ensure_tables(conn)
    return conn


@contextlib.contextmanager
def open_warehouse(
    path: str | Path,
    read_only: bool = False,
    *,
    timeout_s: float | None = None,
    logger: logging.Logger | None = None,
) -> Iterator[duckdb.DuckDBPyConnection]:
    """Context manager around :func:`connect` (lock retry included) that always closes."""
    conn = connect(path, read_only=read_only, timeout_s=timeout_s, logger=logger)
    try:
        yield conn
    finally:
        conn.close()


def _default_path(path: str | Path | None) -> Path:
    if path is not None:
        return Path(path)
    from beta_pipeline.settings import get_settings

    return get_settings().warehouse_path


@contextlib.contextmanager
def connect_readonly(
    path: str | Path | None = None, timeout_s: float | None = None
) -> Iterator[duckdb.DuckDBPyConnection]:
    """Read-only connection for notebooks and scripts (default: the settings' warehouse),
    waiting while a writer holds the file; closed when the ``with`` block ends, so keep the
    block short: a writer waits for it."""
    with open_warehouse(_default_path(path), read_only=True, timeout_s=timeout_s) as conn:
        yield conn


def read(
    sql: str,
    params: Sequence[object] | dict[str, object] | None = None,
    *,
    path: str | Path | None = None,
    timeout_s: float | None = None,
) -> pd.DataFrame:
    """Run one query read-only and return all its rows: opens, fetches and closes at once,
    so nothing holds the warehouse between notebook cells."""
    with connect_readonly(path, timeout_s=timeout_s) as conn:
        return conn.execute(sql, params).df()


def read_only_statements(sql: str) -> list[duckdb.Statement]:
    """Parse ``sql`` with DuckDB and return its statements if every one is a read: SELECT
    (with CTEs, DESCRIBE, SHOW, SUMMARIZE), EXPLAIN of one, or a read-only PRAGMA; else
    :class:`ReadOnlyQueryError` naming the refused statement."""
    parser = duckdb.connect(":memory:", config=dict(SANDBOX_CONFIG))
    try:
        try:
            statements = parser.extract_statements(sql)
        except duckdb.Error as err:
            raise ReadOnlyQueryError(str(err)) from err
        if not statements:
            raise ReadOnlyQueryError("no SQL statement given")
        for statement in statements:
            refused = _refusal(parser, statement)
            if refused:
                text = " ".join(statement.query.split())
                text = text if len(text) <= 120 else text[:117] + "..."
                raise ReadOnlyQueryError(
                    f"the warehouse query is read-only: {refused} refused in: {text}"
                )
        return statements
    finally:
        parser.close()


def _refusal(parser: duckdb.DuckDBPyConnection, statement: duckdb.Statement) -> str | None:
    kind = statement.type
    if kind == duckdb.StatementType.SELECT:
        return None
    if kind == duckdb.StatementType.EXPLAIN:
        inner = _EXPLAIN.sub("", statement.query, count=1)
        try:
            parts = parser.extract_statements(inner)
        except duckdb.Error:
            return "EXPLAIN of an unparsable statement"
        if len(parts) == 1 and parts[0].type == duckdb.StatementType.SELECT:
            return None
        return f"EXPLAIN of {', '.join(p.type.name for p in parts) or 'nothing'}"
    if kind == duckdb.StatementType.PRAGMA:
        name = _PRAGMA.match(statement.query)
        if name and name[1].lower() in _READ_PRAGMAS:
            return None
        return f"PRAGMA {name[1] if name else ''}".strip()
    words = statement.query.split(maxsplit=1)
    word = words[0].upper() if words else kind.name
    return f"{kind.name} statement" if word == kind.name else f"{word} ({kind.name}) statement"


@contextlib.contextmanager
def open_sandboxed(
    path: str | Path | None = None, timeout_s: float | None = None
) -> Iterator[duckdb.DuckDBPyConnection]:
    """Read-only warehouse connection with :data:`SANDBOX_CONFIG` and its configuration
    locked (``lock_configuration``: SQL cannot SET/RESET anything back); lock retry included."""
    conn = connect(_default_path(path), read_only=True, timeout_s=timeout_s, config=SANDBOX_CONFIG)
    try:
        conn.execute("SET lock_configuration = true")
        yield conn
    finally:
        conn.close()


def _frame_for(table: Table, frame: pd.DataFrame) -> pd.DataFrame:
    missing = [c for c in table.column_names if c not in frame.columns]
    if missing:
        raise ValueError(f"frame for {table.name} lacks columns {missing}")
    return frame.loc[:, table.column_names]


def replace_window(
    conn: duckdb.DuckDBPyConnection,
    table_name: str,
    frame: pd.DataFrame,
    start: pd.Timestamp,
    end: pd.Timestamp,
    extra_filter: dict[str, object] | None = None,
) -> int:
    """Replace the rows of ``table_name`` with ``start <= partition column < end``.

    ``extra_filter`` narrows the delete (and must match every inserted row), e.g.
    ``{"estimator": "ols_60"}`` so one estimator's re-run leaves the others alone.
    Rows of ``frame`` outside the window are refused: a partition write never touches
    another partition. Returns the number of rows inserted.
    """
    table = TABLES[table_name]
    column = table.partition_column
    if column is None:
        raise ValueError(f"{table_name} is not partitioned by a date column")
    data = _frame_for(table, frame)
    if len(data):
        key = pd.to_datetime(data[column])
        outside = (key < pd.Timestamp(start)) | (key >= pd.Timestamp(end))
        if outside.any():
            raise ValueError(
                f"{int(outside.sum())} rows for {table_name} fall outside the partition "
                f"window [{pd.Timestamp(start).date()}, {pd.Timestamp(end).date()})"
            )
    where = [f"{column} >= ?", f"{column} < ?"]
    params: list[object] = [pd.Timestamp(start).date(), pd.Timestamp(end).date()]
    for col, value in (extra_filter or {}).items():
        if col not in table.column_names:
            raise ValueError(f"{col} is not a column of {table_name}")
        if len(data) and not (data[col] == value).all():
            raise ValueError(f"rows for {table_name} must all have {col} = {value!r}")
        where.append(f"{col} = ?")
        params.append(value)
    return _delete_insert(conn, table, data, " AND ".join(where), params)


#: Rows per Arrow record batch handed to DuckDB (zero-copy slices of a piece).
ARROW_BATCH_ROWS = 1 << 20
#: Cap on DuckDB's memory limit while :func:`replace_window_chunks` bulk-writes (bytes).
#: The blocks of a large optimistic write are already on disk; without a cap DuckDB keeps
#: them cached up to its default limit (80 % of RAM), ~30 bytes per written beta row.
WRITE_BUFFER_LIMIT = 2**30


def _arrow_chunk(table: Table, frame: pd.DataFrame):
    """The table's columns of ``frame`` as a one-pass pyarrow RecordBatchReader, or None
    when a column does not convert (left to DuckDB's pandas scan).

    Numbers, datetimes and Categoricals (as dictionaries) are not copied; NaN becomes NULL
    as in DuckDB's pandas scan. A reader, not a Table: DuckDB keeps every object registered
    inside a transaction alive until COMMIT, and a drained reader holds no data, so a
    transaction of many pieces does not keep them all in memory."""
    import pyarrow as pa

    try:
        arrays = [pa.Array.from_pandas(frame[name]) for name in table.column_names]
    except (pa.ArrowException, TypeError, ValueError):
        return None
    data = pa.Table.from_arrays(arrays, names=table.column_names)
    del arrays
    batches = data.to_batches(max_chunksize=ARROW_BATCH_ROWS)

    def drain() -> Iterator[pa.RecordBatch]:
        while batches:
            yield batches.pop(0)

    return pa.RecordBatchReader.from_batches(data.schema, drain())


@dataclass
class ArrowPiece:
    """A piece for :func:`replace_window_chunks` as Arrow record batches made on demand (e.g.
    cut from an estimator's arrays while DuckDB inserts them: no long frame is built).

    ``batches`` yields ``pyarrow.RecordBatch`` es of ``schema``, whose names are the table's
    columns in order; every row's partition column lies in [``first``, ``last``] (checked
    before the insert, so a piece outside the window is refused without being made).
    ``rows`` counts the rows the insert took (set once the piece is written)."""

    batches: Iterable[object]
    schema: object
    first: pd.Timestamp
    last: pd.Timestamp
    label: str = ""
    rows: int = 0

    def reader(self):
        """A one-pass RecordBatchReader over ``batches`` that counts ``rows``."""
        import pyarrow as pa

        def counted() -> Iterator[pa.RecordBatch]:
            for batch in self.batches:
                self.rows += batch.num_rows
                yield batch
            self.batches = ()  # drop the producer (and the arrays it holds) once drained

        return pa.RecordBatchReader.from_batches(self.schema, counted())


def _key_range(values: pd.Series) -> tuple[pd.Timestamp, pd.Timestamp]:
    """Earliest and latest timestamp of a date column, NaT ignored (NaT when none): an
    int64 min/max for datetime64 columns instead of a 30 M-row ``pd.to_datetime``."""
    arr = values.to_numpy()
    if arr.dtype.kind != "M" or not len(arr):
        key = pd.to_datetime(values)
        return key.min(), key.max()
    i8 = arr.view(np.int64)
    nat = np.iinfo(np.int64).min
    lo, hi = i8.min(), i8.max()  # NaT is the smallest int64
    if lo == nat:
        real = i8[i8 != nat]
        lo = real.min() if len(real) else nat
    unit = np.datetime_data(arr.dtype)[0]
    return pd.Timestamp(np.datetime64(int(lo), unit)), pd.Timestamp(np.datetime64(int(hi), unit))


_UNITS = {
    "bytes": 1, "B": 1, "KiB": 2**10, "MiB": 2**20, "GiB": 2**30, "TiB": 2**40,
    "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12,
}


def _memory_limit(conn: duckdb.DuckDBPyConnection) -> tuple[str, int] | None:
    """DuckDB's memory limit as shown (e.g. ``'18.8 GiB'``) and in bytes; None for an
    in-memory database (a cap there could force its data to spill) or if unreadable."""
    with contextlib.suppress(duckdb.Error, TypeError, ValueError, IndexError):
        shown, path = conn.execute(
            "SELECT current_setting('memory_limit'), (SELECT path FROM duckdb_databases() "
            "WHERE database_name = current_database())"
        ).fetchall()[0]
        if not path:
            return None
        number, _, unit = str(shown).strip().partition(" ")
        return str(shown), int(float(number) * _UNITS[unit or "B"])
    return None


@contextlib.contextmanager
def _bounded_buffer_pool(conn: duckdb.DuckDBPyConnection) -> Iterator[None]:
    """Lower DuckDB's memory limit to WRITE_BUFFER_LIMIT for the block, then restore it
    (RESET when it was the default, else the value as shown)."""
    before = _memory_limit(conn)
    if before is None or before[1] <= WRITE_BUFFER_LIMIT:
        yield
        return
    conn.execute("RESET memory_limit")
    shown = conn.execute("SELECT current_setting('memory_limit')").fetchall()[0][0]
    was_default = shown == before[0]
    conn.execute(f"SET memory_limit = '{WRITE_BUFFER_LIMIT}B'")
    try:
        yield
    finally:
        if was_default:
            conn.execute("RESET memory_limit")
        else:
            conn.execute(f"SET memory_limit = '{before[0]}'")


def replace_window_chunks(
    conn: duckdb.DuckDBPyConnection,
    table_name: str,
    frames: Iterable[pd.DataFrame | ArrowPiece],
    start: pd.Timestamp,
    end: pd.Timestamp,
    *,
    overlap: bool = True,
) -> int:
    """Like :func:`replace_window` for data produced in pieces (one estimator at a time):
    one DELETE and many INSERTs inside ONE transaction, so peak memory stays at one piece
    and a failure half-way leaves the previous rows in place.

    Pieces whose columns are numbers, datetimes or Categoricals go to DuckDB as Arrow tables
    (zero-copy; Categoricals as dictionaries), others through DuckDB's pandas scan;
    :class:`ArrowPiece` s stream their record batches (made while DuckDB inserts them; their
    ``rows`` are counted). DuckDB's buffer pool is capped at WRITE_BUFFER_LIMIT during the
    write (see there).

    ``overlap``: a piece is inserted by a helper thread while ``frames`` produces the next
    one (DuckDB works without the GIL), so the generator must not use ``conn`` nor modify
    a piece after yielding it. An error of either side rolls the whole write back."""
    table = TABLES[table_name]
    column = table.partition_column
    if column is None:
        raise ValueError(f"{table_name} is not partitioned by a date column")
    cols = ", ".join(table.column_names)
    lo, hi = pd.Timestamp(start), pd.Timestamp(end)
    insert = f"INSERT INTO {table.name} ({cols}) SELECT {cols} FROM _incoming"

    def put(data: object) -> None:
        conn.register("_incoming", data)
        try:
            conn.execute(insert)
        finally:
            conn.unregister("_incoming")

    pool = ThreadPoolExecutor(1, thread_name_prefix="duckdb-insert") if overlap else None
    pending: list[Future[None]] = []

    def settle() -> None:
        """Wait for the insert in flight (re-raising its error)."""
        while pending:
            pending.pop().result()

    total = 0
    arrow_pieces: list[ArrowPiece] = []
    try:
        with _bounded_buffer_pool(conn):
            conn.execute("BEGIN TRANSACTION")
            try:
                conn.execute(
                    f"DELETE FROM {table.name} WHERE {column} >= ? AND {column} < ?",
                    [lo.date(), hi.date()],
                )
                for frame in frames:
                    if isinstance(frame, ArrowPiece):
                        _check_arrow_piece(table, frame, lo, hi)
                        settle()
                        if pool is None:
                            put(frame.reader())
                        else:
                            pending.append(pool.submit(put, frame.reader()))
                        arrow_pieces.append(frame)
                        del frame
                        continue
                    missing = [c for c in table.column_names if c not in frame.columns]
                    if missing:
                        raise ValueError(f"frame for {table.name} lacks columns {missing}")
                    n = len(frame)
                    if not n:
                        continue
                    first, last = _key_range(frame[column])
                    if (pd.notna(first) and first < lo) or (pd.notna(last) and last >= hi):
                        raise ValueError(
                            f"rows for {table_name} fall outside [{lo.date()}, {hi.date()})"
                        )
                    data = _arrow_chunk(table, frame)
                    if data is None:
                        data = frame.loc[:, table.column_names]
                    settle()
                    if pool is None:
                        put(data)
                    else:
                        pending.append(pool.submit(put, data))
                    del data, frame
                    total += n
                settle()
                total += sum(p.rows for p in arrow_pieces)
                conn.execute("COMMIT")
            except BaseException:
                with contextlib.suppress(BaseException):
                    settle()  # the connection is free again before the rollback
                conn.execute("ROLLBACK")
                raise
    finally:
        if pool is not None:
            pool.shutdown(wait=True)
    return total


def _check_arrow_piece(
    table: Table, piece: ArrowPiece, lo: pd.Timestamp, hi: pd.Timestamp
) -> None:
    """Refuse a piece whose columns are not the table's or whose rows may leave [lo, hi)."""
    names = list(piece.schema.names)  # type: ignore[attr-defined]
    if names != table.column_names:
        raise ValueError(f"piece {piece.label!r} for {table.name} has columns {names}")
    first, last = pd.Timestamp(piece.first), pd.Timestamp(piece.last)
    if first < lo or last >= hi:
        raise ValueError(
            f"rows for {table.name} ({piece.label}) fall outside [{lo.date()}, {hi.date()})"
        )


def _key_filter(table: Table, key_values: dict[str, Sequence[object] | object]) -> tuple[str, list]:
    """``WHERE`` text and parameters matching ``key_values`` (``col = v`` / ``col IN vs``)."""
    where: list[str] = []
    params: list[object] = []
    for col, value in key_values.items():
        if col not in table.column_names:
            raise ValueError(f"{col} is not a column of {table.name}")
        if isinstance(value, (list, tuple, set)):
            values = list(value)
            if not values:
                where.append("FALSE")
                continue
            where.append(f"{col} IN ({', '.join('?' for _ in values)})")
            params.extend(values)
        else:
            where.append(f"{col} = ?")
            params.append(value)
    return " AND ".join(where) or "TRUE", params


def replace_keys(
    conn: duckdb.DuckDBPyConnection,
    table_name: str,
    frame: pd.DataFrame,
    key_values: dict[str, Sequence[object] | object],
) -> int:
    """Replace rows matching ``key_values`` (``col = value`` or ``col IN values``)."""
    return replace_keys_together(conn, [(table_name, frame, key_values)])


def replace_keys_together(
    conn: duckdb.DuckDBPyConnection,
    items: Sequence[tuple[str, pd.DataFrame, dict[str, Sequence[object] | object]]],
) -> int:
    """:func:`replace_keys` for several ``(table, frame, key_values)`` in ONE transaction:
    all tables change or none (e.g. a training run's row and its history)."""
    planned = []
    for table_name, frame, key_values in items:
        table = TABLES[table_name]
        planned.append((table, _frame_for(table, frame), *_key_filter(table, key_values)))
    return _delete_insert_all(conn, planned)


def _delete_insert(
    conn: duckdb.DuckDBPyConnection,
    table: Table,
    data: pd.DataFrame,
    where: str,
    params: list[object],
) -> int:
    return _delete_insert_all(conn, [(table, data, where, params)])


def _delete_insert_all(
    conn: duckdb.DuckDBPyConnection,
    planned: Sequence[tuple[Table, pd.DataFrame, str, list[object]]],
) -> int:
    """For each ``(table, data, where, params)``: delete ``where``, insert ``data``; one
    transaction (the frames are registered outside it, so a failed statement rolls back
    cleanly)."""
    names = [f"_incoming_{i}" for i in range(len(planned))]
    for name, (_, data, _, _) in zip(names, planned, strict=True):
        conn.register(name, data)
    try:
        conn.execute("BEGIN TRANSACTION")
        try:
            for name, (table, data, where, params) in zip(names, planned, strict=True):
                cols = ", ".join(table.column_names)
                conn.execute(f"DELETE FROM {table.name} WHERE {where}", params)
                if len(data):
                    conn.execute(f"INSERT INTO {table.name} ({cols}) SELECT {cols} FROM {name}")
            conn.execute("COMMIT")
        except Exception:
            conn.execute("ROLLBACK")
            raise
    finally:
        for name in names:
            conn.unregister(name)
    return sum(len(data) for _, data, _, _ in planned)


def read_window(
    conn: duckdb.DuckDBPyConnection,
    table_name: str,
    start: pd.Timestamp | None = None,
    end: pd.Timestamp | None = None,
    columns: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Rows of a partitioned table with ``start <= partition column < end``."""
    table = TABLES[table_name]
    cols = list(columns) if columns else table.column_names
    unknown = [c for c in cols if c not in table.column_names]
    if unknown:
        raise ValueError(f"{unknown} are not columns of {table_name}")
    column = table.partition_column
    where, params = ["TRUE"], []
    if start is not None and column:
        where.append(f"{column} >= ?")
        params.append(pd.Timestamp(start).date())
    if end is not None and column:
        where.append(f"{column} < ?")
        params.append(pd.Timestamp(end).date())
    order = f" ORDER BY {', '.join(table.primary_key)}" if table.primary_key else ""
    sql = f"SELECT {', '.join(cols)} FROM {table.name} WHERE {' AND '.join(where)}{order}"
    frame = conn.execute(sql, params).df()
    for c, t in table.columns:
        if t.startswith("DATE") and c in frame.columns:
            frame[c] = pd.to_datetime(frame[c])
    return frame


# --- one source per warehouse -------------------------------------------------------------------


@dataclass(frozen=True)
class SourceBinding:
    """The source a warehouse holds: its kind, config label and a fingerprint of the config."""

    source: str  # embedded | csv | yfinance
    config: str | None  # shipped config name or absolute YAML path (None for embedded)
    fingerprint: str  # sha256 hex of the kind and the resolved config
    bound_at: dt.datetime | None = None

    def same_as(self, other: SourceBinding) -> bool:
        return (self.source, self.fingerprint) == (other.source, other.fingerprint)

    def describe(self) -> str:
        config = f" config={self.config}" if self.config else ""
        when = f" (bound {self.bound_at:%Y-%m-%d %H:%M:%S} UTC)" if self.bound_at else ""
        return f"source={self.source}{config} fingerprint={self.fingerprint[:12]}{when}"


class SourceBindingError(RuntimeError):
    """An ingestion into a warehouse bound to another source (or another config)."""


def _database_path(conn: duckdb.DuckDBPyConnection) -> str:
    row = conn.execute(
        "SELECT path FROM duckdb_databases() WHERE database_name = current_database()"
    ).fetchone()
    return str(row[0]) if row and row[0] else "this warehouse"


def read_source_binding(conn: duckdb.DuckDBPyConnection) -> SourceBinding | None:
    """The warehouse's binding; None before the first ingestion (or in an older file)."""
    try:
        row = conn.execute(
            "SELECT source, config, fingerprint, bound_at FROM meta.source_binding "
            "ORDER BY bound_at LIMIT 1"
        ).fetchone()
    except duckdb.CatalogException:  # a read-only file from before the binding existed
        return None
    return SourceBinding(*row) if row else None


def binding_conflict(bound: SourceBinding, wanted: SourceBinding, where: str) -> str:
    """The error text for ``wanted`` against a warehouse bound to ``bound``."""
    return (
        f"{where} is bound to {bound.describe()}; this run reads "
        f"{wanted.describe()}. One warehouse holds one source, so that no return or beta "
        "mixes prices of two sources. To proceed, either use another home for the new "
        "source (BETA_PIPELINE_HOME=<new folder> beta-pipeline run ...), or run with the bound "
        f"source (--source {bound.source}"
        + (f" --config {bound.config}" if bound.config else "")
        + f"), or delete {where} (and its .wal) to start over with the new source."
    )


def bind_source(
    conn: duckdb.DuckDBPyConnection, wanted: SourceBinding, record: bool = True
) -> SourceBinding:
    """Bind the warehouse to ``wanted`` on its first ingestion, or check that it is bound to it.

    Raises :class:`SourceBindingError` (naming both bindings and how to proceed) when the
    warehouse holds another source or config, or when it is unbound but ``raw.prices`` already
    holds rows of another source kind (a warehouse filled before bindings existed).
    ``record=False`` only checks (an unbound warehouse stays unbound): an ingestion checks
    before loading and binds when it writes, so a source that fails to load binds nothing.
    """
    where = _database_path(conn)
    conn.execute("BEGIN TRANSACTION")
    try:
        bound = read_source_binding(conn)
        if bound is None:
            kinds = {
                str(r[0]).split(":", 1)[0]
                for r in conn.execute(
                    "SELECT DISTINCT source FROM raw.prices WHERE source IS NOT NULL"
                ).fetchall()
            }
            foreign = sorted(kinds - {wanted.source})
            if foreign:
                raise SourceBindingError(
                    f"{where} is not bound to a source yet but raw.prices holds rows of "
                    f"{', '.join(foreign)}; this run reads {wanted.describe()}. Use another "
                    f"BETA_PIPELINE_HOME, or delete {where} to start over."
                )
            bound = SourceBinding(
                wanted.source,
                wanted.config,
                wanted.fingerprint,
                dt.datetime.now(dt.UTC).replace(tzinfo=None, microsecond=0),
            )
            if record:
                conn.execute(
                    "INSERT INTO meta.source_binding VALUES (?, ?, ?, ?)",
                    [bound.source, bound.config, bound.fingerprint, bound.bound_at],
                )
        elif not bound.same_as(wanted):
            raise SourceBindingError(binding_conflict(bound, wanted, where))
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return bound
