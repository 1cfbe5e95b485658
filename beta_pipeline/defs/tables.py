"""Which asset writes which warehouse table: definition metadata on the assets, read back.

An asset that writes warehouse tables declares them with :func:`writes`: Dagster's
``dagster/table_name`` names its main table (shown in the UI), and ``beta_pipeline/tables``
lists every table it writes (several for e.g. ``daily_betas`` or ``crypto_neural_betas``).
:func:`table_writers` walks the asset specs' metadata back into ``{table: [asset keys]}``,
so the SQL models' lineage follows from the assets themselves (no hand-kept map).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import dagster as dg

from beta_pipeline.lib.sql_models import MART_SCHEMA
from beta_pipeline.lib.tables import TABLES

#: Dagster's metadata key of the (main) table an asset writes.
TABLE_NAME_KEY = "dagster/table_name"
#: Every warehouse table an asset writes (a list of schema-qualified names).
TABLES_KEY = "beta_pipeline/tables"


def writes(main: str, *others: str) -> dict[str, object]:
    """Definition metadata of an asset writing ``main`` (and ``others``); names are checked
    against the table declarations (``marts.*`` are the SQL models' relations)."""
    names = [main, *others]
    unknown = [n for n in names if n not in TABLES and not n.startswith(f"{MART_SCHEMA}.")]
    if unknown:
        raise ValueError(f"unknown warehouse tables {unknown}: declare them in lib/*tables.py")
    return {TABLE_NAME_KEY: main, TABLES_KEY: names}


def tables_of(metadata: Mapping[str, object]) -> list[str]:
    """The tables named by one asset spec's metadata (none for an asset without)."""
    value = metadata.get(TABLES_KEY)
    value = getattr(value, "value", value)  # a JsonMetadataValue once normalized
    if value is None:
        main = metadata.get(TABLE_NAME_KEY)
        main = getattr(main, "value", main)
        return [str(main)] if main else []
    return [str(v) for v in value]


def table_writers(assets: Iterable[dg.AssetsDefinition]) -> dict[str, list[dg.AssetKey]]:
    """``{table: [keys of the assets writing it]}`` from the assets' definition metadata."""
    out: dict[str, list[dg.AssetKey]] = {}
    for asset in assets:
        for spec in asset.specs:
            for table in tables_of(spec.metadata):
                out.setdefault(table, []).append(spec.key)
    return out
