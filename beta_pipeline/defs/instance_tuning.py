"""Faster Dagster event storage on SQLite (the default instance storage).

A single-run backfill of 33 years writes one materialization event per weekday partition
(about 8,600 per asset). With SQLite's default rollback journal and ``synchronous=FULL``
every event is an fsync'd commit: ~110 ms each on these machines. Switching the event log's
SQLite files to WAL with ``synchronous=NORMAL`` (crash-safe: no corruption, at worst the
last commits are lost on a power cut) makes the same backfill 5-8x faster. WAL is a
property of the file, so the webserver and daemon use it too once a run has set it.

The pragmas apply only to the SQLite files under the ``base_dir`` of a
:class:`BatchingSqliteEventLogStorage` of this process (no other engine is touched), and the
storage's overrides of Dagster internals are active only on the Dagster version they were
tested on (:data:`TESTED_DAGSTER_VERSION`); on any other version the class is Dagster's stock
``SqliteEventLogStorage`` and a warning says so once.
"""

from __future__ import annotations

import functools
import os
import sqlite3
import threading
import warnings
from pathlib import Path

from sqlalchemy import event
from sqlalchemy.engine import Engine

#: The Dagster release whose storage internals the batched write path was written against
#: (and conformance-tested on: beta_pipeline_tests/test_storage_conformance.py).
TESTED_DAGSTER_VERSION = "1.13.27"

_INSTALLED = False
_LOCK = threading.Lock()
#: Resolved ``base_dir`` folders of the batching storages of this process: only SQLite files
#: inside them are tuned.
_TUNED_DIRS: set[str] = set()


class DagsterVersionWarning(UserWarning):
    """The installed Dagster is not the one the batched storage was tested on."""


def dagster_version() -> str:
    """The installed Dagster's version."""
    from dagster.version import __version__

    return __version__


def batching_supported(version: str | None = None) -> bool:
    """Whether the batched write path may run on Dagster ``version`` (default: installed)."""
    return (version or dagster_version()) == TESTED_DAGSTER_VERSION


def _database_file(dbapi_connection: sqlite3.Connection) -> str | None:
    cursor = dbapi_connection.cursor()
    try:
        rows = cursor.execute("PRAGMA database_list").fetchall()
    finally:
        cursor.close()
    return next((row[2] for row in rows if row[1] == "main" and row[2]), None)


def is_tuned_path(path: str | os.PathLike[str]) -> bool:
    """Whether a SQLite file lies under a registered event-log folder."""
    parent = os.path.dirname(os.path.realpath(path))
    return any(parent == d or parent.startswith(d + os.sep) for d in _TUNED_DIRS)


def _tune_sqlite(dbapi_connection: object, _record: object) -> None:
    if not isinstance(dbapi_connection, sqlite3.Connection) or not _TUNED_DIRS:
        return
    path = _database_file(dbapi_connection)
    if path is None or not is_tuned_path(path):
        return
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
    finally:
        cursor.close()


def install() -> None:
    """Register the pragma hook (idempotent). It acts only on the SQLite files of the
    folders registered by :func:`tune_folder`."""
    global _INSTALLED
    with _LOCK:
        if not _INSTALLED:
            event.listen(Engine, "connect", _tune_sqlite)
            _INSTALLED = True


def tune_folder(base_dir: str | os.PathLike[str]) -> None:
    """Tune (WAL, ``synchronous=NORMAL``) the SQLite files that engines open in ``base_dir``."""
    install()
    with _LOCK:
        _TUNED_DIRS.add(os.path.realpath(base_dir))


def storage_class() -> type:
    """The class Dagster instantiates for ``BatchingSqliteEventLogStorage``: the batched one on
    the tested Dagster version, else a plain ``SqliteEventLogStorage`` subclass without
    overrides (whose ``from_config_value`` builds the stock storage) and one warning."""
    if batching_supported():
        return _batching_storage_class()
    return _stock_storage_class()


@functools.cache
def _stock_storage_class() -> type:
    from dagster._core.storage.event_log.sqlite.sqlite_event_log import SqliteEventLogStorage

    warnings.warn(
        f"beta_pipeline: Dagster {dagster_version()} is not the tested "
        f"{TESTED_DAGSTER_VERSION}: BatchingSqliteEventLogStorage falls back to Dagster's stock "
        "SqliteEventLogStorage (correct, but single-run backfills record events slowly)",
        DagsterVersionWarning,
        stacklevel=2,
    )
    return type(
        "BatchingSqliteEventLogStorage",
        (SqliteEventLogStorage,),
        {"__doc__": "Dagster's stock SqliteEventLogStorage (version guard: no overrides)."},
    )


@functools.cache
def _batching_storage_class():
    """A SqliteEventLogStorage that writes a batch of asset events in two transactions.

    Built lazily so importing this module does not import Dagster's storage internals.
    """
    from dagster._core.events import ASSET_EVENTS
    from dagster._core.storage.asset_check_execution_record import (
        AssetCheckExecutionRecordStatus,
    )
    from dagster._core.storage.event_log.schema import AssetCheckExecutionsTable
    from dagster._core.storage.event_log.sqlite.sqlite_event_log import SqliteEventLogStorage
    from dagster._core.storage.sqlalchemy_compat import db_result
    from dagster_shared.serdes import serialize_value

    class BatchingSqliteEventLogStorage(SqliteEventLogStorage):
        """Dagster's per-run-shard SQLite event log, plus a batched write path.

        A single-run backfill reports one materialization per partition (8,600 for 33 years
        of weekdays) in batches (``DAGSTER_EVENT_BATCH_SIZE``). The stock SQLite storage
        stores a batch event by event, each in two freshly created engines (run shard and
        index shard): ~20-50 ms per event here. This class writes a batch of asset events
        of one run into the run shard in one transaction and mirrors them into the index
        shard in a second one, exactly as ``store_event`` does for a single event.
        """

        def __init__(self, base_dir: str, inst_data=None) -> None:
            tune_folder(Path(base_dir))  # before the parent opens (and initializes) any file
            super().__init__(base_dir, inst_data=inst_data)

        @classmethod
        def from_config_value(cls, inst_data, config_value):  # type: ignore[override]
            return cls(inst_data=inst_data, **config_value)

        def _store_asset_check_evaluation_planned(self, event, event_id) -> None:
            """Same rows as Dagster's, but the event is serialized once, not once per
            partition (a check planned over 8,600 partitions took minutes)."""
            planned = event.dagster_event.event_specific_data
            subset = planned.partitions_subset
            keys = subset.get_partition_keys() if subset else [None]
            common = dict(
                asset_key=planned.asset_key.to_string(),
                check_name=planned.check_name,
                run_id=event.run_id,
                execution_status=AssetCheckExecutionRecordStatus.PLANNED.value,
                evaluation_event=serialize_value(event),
                evaluation_event_timestamp=self._event_insert_timestamp(event),
                evaluation_event_storage_id=event_id,
            )
            with self.index_connection() as conn:
                for i in range(0, len(keys), 2000):
                    conn.execute(
                        AssetCheckExecutionsTable.insert().values(
                            [{**common, "partition": k} for k in keys[i : i + 2000]]
                        )
                    )

        def store_event_batch(self, events) -> None:  # type: ignore[override]
            run_ids = {e.run_id for e in events}
            mirrored = all(
                e.is_dagster_event and e.dagster_event_type in ASSET_EVENTS for e in events
            )
            if len(events) < 2 or len(run_ids) != 1 or not mirrored:
                for event in events:
                    self.store_event(event)
                return
            statements = [self.prepare_insert_event(e) for e in events]
            with self.run_connection(next(iter(run_ids))) as conn:
                for statement in statements:
                    conn.execute(statement)
            with self.index_transaction() as conn:
                ids = []
                for statement in statements:
                    with db_result(conn, statement) as result:
                        ids.append(result.inserted_primary_key[0])
                self._store_asset_event_tags(conn, list(events), ids)
                for event, event_id in zip(events, ids, strict=True):
                    self._store_asset_event(conn, event, event_id)

    return BatchingSqliteEventLogStorage


def __getattr__(name: str):
    if name == "BatchingSqliteEventLogStorage":
        return storage_class()
    raise AttributeError(name)
