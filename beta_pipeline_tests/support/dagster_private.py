"""The tests' only access to private Dagster modules (``dagster._core``), for what Dagster
has no public API for. Every other test uses ``dagster`` (``dg``) or the literal tag strings
of :mod:`.tags`.

- ``EngineEventData``: the payload of the "Started process for run (pid: N)" engine event
  that Dagster's local run launcher reports; the recovery tests fake a launched run with it.
- ``SqliteEventLogStorage``: Dagster's stock SQLite event log, the reference that the
  batched storage of ``defs/instance_tuning.py`` is compared with.

# ---- private Dagster API: checked against the pinned version only -----------------------
When Dagster is upgraded, check these paths and update ``TESTED_DAGSTER_VERSION``.
"""

from __future__ import annotations

import warnings

import dagster as dg

#: The Dagster version these private paths were checked against (``pyproject.toml`` pin).
TESTED_DAGSTER_VERSION = "1.13.27"

if dg.__version__ != TESTED_DAGSTER_VERSION:  # pragma: no cover - only after an upgrade
    warnings.warn(
        f"beta_pipeline_tests/support/dagster_private.py was checked against dagster "
        f"{TESTED_DAGSTER_VERSION}, running {dg.__version__}: check its private imports",
        stacklevel=2,
    )

try:
    from dagster._core.events import EngineEventData
    from dagster._core.storage.event_log.sqlite.sqlite_event_log import SqliteEventLogStorage
except ImportError as error:  # pragma: no cover - only after an upgrade
    raise ImportError(
        f"a private Dagster API moved in dagster {dg.__version__} (checked against "
        f"{TESTED_DAGSTER_VERSION}): update beta_pipeline_tests/support/dagster_private.py"
    ) from error
# ---- end of private Dagster API -----------------------------------------------------------

__all__ = ["TESTED_DAGSTER_VERSION", "EngineEventData", "SqliteEventLogStorage"]
