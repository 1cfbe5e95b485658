"""Every warehouse table, collected from the domains' declarations in one explicit list.

Each domain declares its tables once (``lib/core_tables.py``, ``lib/crypto/tables.py``,
``lib/neuralbeta/tables.py``, ``lib/portfolios/tables.py``); :data:`ALL_TABLES` names them
all, so :func:`beta_pipeline.lib.warehouse.ensure_tables` creates the same tables whatever
was imported before. The ``marts.*`` relations are the SQL models' (``dbt_like_sql/``).
"""

from __future__ import annotations

from beta_pipeline.lib import core_tables
from beta_pipeline.lib.crypto import tables as crypto
from beta_pipeline.lib.neuralbeta import tables as neuralbeta
from beta_pipeline.lib.portfolios import tables as portfolios
from beta_pipeline.lib.table_spec import Table

ALL_TABLES: tuple[Table, ...] = (
    *core_tables.TABLES,
    *neuralbeta.TABLES,
    *portfolios.TABLES,
    *crypto.TABLES,
)


def _by_name(tables: tuple[Table, ...]) -> dict[str, Table]:
    """Tables by name; a name declared twice is an error."""
    out: dict[str, Table] = {}
    for table in tables:
        if table.name in out:
            raise ValueError(f"warehouse table {table.name} is declared twice")
        out[table.name] = table
    return out


#: Tables by schema-qualified name (``warehouse.TABLES`` is this mapping).
TABLES: dict[str, Table] = _by_name(ALL_TABLES)
