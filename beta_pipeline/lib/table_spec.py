"""A warehouse table declaration (:class:`Table`): columns, partition column, primary key."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Table:
    """A warehouse table: its DDL columns and the column that partitions it."""

    name: str  # schema-qualified, e.g. "raw.prices"
    columns: tuple[tuple[str, str], ...]  # (name, DuckDB type)
    partition_column: str | None  # date-like column whose window a partition replaces
    primary_key: tuple[str, ...] = ()

    @property
    def column_names(self) -> list[str]:
        return [c for c, _ in self.columns]

    def ddl(self) -> str:
        cols = [f"{c} {t}" for c, t in self.columns]
        if self.primary_key:
            cols.append(f"PRIMARY KEY ({', '.join(self.primary_key)})")
        return f"CREATE TABLE IF NOT EXISTS {self.name} ({', '.join(cols)})"
