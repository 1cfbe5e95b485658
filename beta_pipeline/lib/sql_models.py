"""Plain-SQL models (``dbt_like_sql/*.sql``): discovery, dependency parsing, materialization.

Each file holds one DuckDB ``SELECT`` and becomes the relation ``marts.<file stem>``.
Optional header comments configure it::

    -- materialized: table        (default: view)
    -- description: Deciles of betas per month

Dependencies are the schema-qualified tables the SELECT reads (found with sqlglot, CTE
names excluded), so adding a file needs no Python: its lineage follows from its SQL.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import duckdb
import sqlglot
from sqlglot import exp

MART_SCHEMA = "marts"
_HEADER = re.compile(r"^\s*--\s*(materialized|description)\s*:\s*(.+?)\s*$", re.IGNORECASE)


@dataclass(frozen=True)
class SqlModel:
    """One SQL file: its relation name, SELECT text, upstream tables and settings."""

    name: str
    path: Path
    sql: str
    depends_on: tuple[str, ...]  # schema-qualified relations, e.g. ("betas.daily",)
    materialized: str  # "view" | "table"
    description: str

    @property
    def relation(self) -> str:
        return f"{MART_SCHEMA}.{self.name}"


def referenced_tables(sql: str) -> tuple[str, ...]:
    """Schema-qualified relations read by ``sql`` (CTEs and unqualified names excluded)."""
    tree = sqlglot.parse_one(sql, read="duckdb")
    ctes = {cte.alias_or_name for cte in tree.find_all(exp.CTE)}
    found: set[str] = set()
    for table in tree.find_all(exp.Table):
        if table.name in ctes and not table.db:
            continue
        if table.db:
            found.add(f"{table.db}.{table.name}".lower())
    return tuple(sorted(found))


def load_model(path: Path) -> SqlModel:
    """Parse one ``.sql`` file; raises ``ValueError`` naming the file if it is not a SELECT."""
    text = path.read_text()
    settings = {"materialized": "view", "description": ""}
    for line in text.splitlines():
        match = _HEADER.match(line)
        if match:
            settings[match.group(1).lower()] = match.group(2)
    if settings["materialized"] not in ("view", "table"):
        raise ValueError(f"{path}: materialized must be 'view' or 'table'")
    body = text.strip().rstrip(";")
    try:
        tree = sqlglot.parse_one(body, read="duckdb")
    except sqlglot.errors.ParseError as err:
        raise ValueError(f"{path}: cannot parse SQL: {err}") from err
    if not isinstance(tree, (exp.Select, exp.Union, exp.Query)):
        raise ValueError(f"{path}: a model must be a single SELECT statement")
    name = path.stem.lower()
    if not re.fullmatch(r"[a-z_][a-z0-9_]*", name):
        raise ValueError(f"{path}: file name must be a SQL identifier (letters, digits, _)")
    description = settings["description"] or f"SQL model {path.name}"
    return SqlModel(
        name=name,
        path=path,
        sql=body,
        depends_on=referenced_tables(body),
        materialized=settings["materialized"],
        description=description,
    )


def discover(folder: Path) -> list[SqlModel]:
    """Every model in ``folder`` (sorted by name); an absent folder has none."""
    if not folder.is_dir():
        return []
    return [load_model(p) for p in sorted(folder.glob("*.sql"))]


def materialize(conn: duckdb.DuckDBPyConnection, model: SqlModel) -> int:
    """Create or replace the model's view/table in one transaction; returns its row count."""
    kind = "TABLE" if model.materialized == "table" else "VIEW"
    conn.execute(f"CREATE SCHEMA IF NOT EXISTS {MART_SCHEMA}")
    conn.execute("BEGIN TRANSACTION")
    try:
        existing = conn.execute(
            "SELECT 'VIEW' FROM duckdb_views() WHERE schema_name = ? AND view_name = ? "
            "UNION ALL SELECT 'TABLE' FROM duckdb_tables() "
            "WHERE schema_name = ? AND table_name = ?",
            [MART_SCHEMA, model.name, MART_SCHEMA, model.name],
        ).fetchall()
        for (existing_kind,) in existing:
            if existing_kind != kind:
                conn.execute(f"DROP {existing_kind} {model.relation}")
        conn.execute(f"CREATE OR REPLACE {kind} {model.relation} AS {model.sql}")
        conn.execute("COMMIT")
    except Exception:
        conn.execute("ROLLBACK")
        raise
    return int(conn.execute(f"SELECT count(*) FROM {model.relation}").fetchone()[0])
