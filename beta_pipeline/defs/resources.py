"""Dagster resources: the DuckDB warehouse, the price source and the artifact/model store."""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import duckdb
from pydantic import Field

from beta_pipeline.lib import warehouse
from beta_pipeline.settings import get_settings


class DuckDBWarehouse(dg.ConfigurableResource):
    """The DuckDB warehouse file; writers take the one-writer pool, readers open read-only."""

    path: str = Field(description="Path of the DuckDB file (default: $BETA_PIPELINE_HOME).")
    lock_timeout_s: float | None = Field(
        default=None,
        description="Seconds an open waits while another process holds the file (retried "
        "with backoff), default $BETA_PIPELINE_LOCK_TIMEOUT_S or 120.",
    )

    @contextlib.contextmanager
    def writer(self, timeout_s: float | None = None) -> Iterator[duckdb.DuckDBPyConnection]:
        """Read-write connection; waits up to ``timeout_s`` (default :attr:`lock_timeout_s`)
        while another process (a reader too) holds the file."""
        with warehouse.open_warehouse(
            self.path,
            read_only=False,
            timeout_s=self.lock_timeout(timeout_s),
            logger=dg.get_dagster_logger(),
        ) as conn:
            yield conn

    def patient_writer(
        self, min_timeout_s: float = 600.0
    ) -> contextlib.AbstractContextManager[duckdb.DuckDBPyConnection]:
        """:meth:`writer` waiting at least ``min_timeout_s`` (longer if :meth:`lock_timeout`
        is) while another process, say a ``beta-pipeline query`` reader, holds the file:
        for the write at the end of a long computation (a training run), which must not
        be lost to a lock. The retry is :func:`warehouse.retry_on_lock`'s."""
        return self.writer(timeout_s=max(min_timeout_s, self.lock_timeout()))

    def lock_timeout(self, timeout_s: float | None = None) -> float:
        """``timeout_s``, else :attr:`lock_timeout_s`, else the environment's (or 120 s)."""
        return warehouse.lock_timeout_s(timeout_s if timeout_s is not None else self.lock_timeout_s)

    def check_source(self, source: PriceSourceResource) -> warehouse.SourceBinding:
        """Before an ingestion loads anything: fail the step (``dg.Failure`` naming both
        bindings and how to proceed) if the warehouse is bound to another source or config.
        Returns the source's binding, for :meth:`bind_source` at the write."""
        wanted = source.binding()
        with self.writer() as conn:
            _bind(conn, wanted, record=False)
        return wanted

    @staticmethod
    def bind_source(
        conn: duckdb.DuckDBPyConnection, binding: warehouse.SourceBinding
    ) -> warehouse.SourceBinding:
        """In the ingestion's writer connection, right before its write: bind an unbound
        warehouse to ``binding`` (else check it again, as :meth:`check_source`)."""
        return _bind(conn, binding, record=True)

    @contextlib.contextmanager
    def reader(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """Read-only connection (the file is created with its tables if missing); waits while a
        writer process holds the file, as :meth:`writer`."""
        if not Path(self.path).exists():
            with self.writer():
                pass
        with warehouse.open_warehouse(
            self.path,
            read_only=True,
            timeout_s=self.lock_timeout(),
            logger=dg.get_dagster_logger(),
        ) as conn:
            yield conn


class PriceSourceResource(dg.ConfigurableResource):
    """Where prices, index levels and factors come from (``BETA_PIPELINE_SOURCE``)."""

    kind: str = Field(default="embedded", description="embedded | csv | yfinance")
    config_path: str | None = Field(
        default=None, description="YAML file listing the user's files (csv source)."
    )
    symbols: list[str] | None = Field(
        default=None, description="Restrict the equity universe to these tickers."
    )
    cache_dir: str | None = Field(
        default=None,
        description="Folder where validated source files are kept as Parquet (csv source).",
    )

    def get(self):  # -> beta_pipeline.lib.sources.PriceSource
        from beta_pipeline.lib.sources import make_source

        cache = {"cache_dir": self.cache_dir} if self.kind == "csv" else {}
        return make_source(self.kind, config_path=self.config_path, **cache)

    def binding(self) -> warehouse.SourceBinding:
        """What a warehouse filled from this source is bound to (see ``bind_source``)."""
        return source_binding(self.kind, self.config_path)


class ArtifactStore(dg.ConfigurableResource):
    """Folder for plots, checkpoints and large arrays (``$BETA_PIPELINE_HOME/artifacts``)."""

    root: str
    models_url: str | None = None
    """fsspec URL or folder of the walk-forward run bundles, shared by every worker
    (default ``<root>/neuralbeta/bundles``)."""

    def models_root(self) -> str:
        """Where run bundles go (:attr:`models_url`, else under :attr:`root`)."""
        return self.models_url or str(Path(self.root) / "neuralbeta" / "bundles")

    def path(self, *parts: str) -> Path:
        target = Path(self.root).joinpath(*parts)
        target.parent.mkdir(parents=True, exist_ok=True)
        return target


def default_resources() -> dict[str, dg.ConfigurableResource]:
    """Resources built from the environment (see ``beta_pipeline.settings``)."""
    settings = get_settings()
    return {
        "warehouse_db": DuckDBWarehouse(path=str(settings.warehouse_path)),
        "prices": PriceSourceResource(
            kind=settings.source,
            config_path=settings.csv_config,
            cache_dir=str(settings.source_cache_dir) if settings.source_cache_dir else None,
        ),
        "artifacts": ArtifactStore(
            root=str(settings.artifacts_dir), models_url=settings.models_url
        ),
    }


def _bind(
    conn: duckdb.DuckDBPyConnection, wanted: warehouse.SourceBinding, record: bool
) -> warehouse.SourceBinding:
    try:
        return warehouse.bind_source(conn, wanted, record=record)
    except warehouse.SourceBindingError as err:
        raise dg.Failure(
            description=str(err),
            metadata={"bound_to_other_source": True, "wanted": wanted.describe()},
            allow_retries=False,
        ) from err


def source_binding(kind: str | None, config_path: str | None = None) -> warehouse.SourceBinding:
    """The binding of a source: its kind, config label and a fingerprint of its config.

    The fingerprint is the sha256 of the kind, the shipped config's name (if one) and the
    config as the source reads it: ``extends`` merged, ``${VAR}`` expanded, file paths resolved
    (the same YAML text pointing at other files is another source). ``symbols`` restrictions do
    not count: they choose rows, not their values.
    """
    from beta_pipeline.lib.sources import make_source
    from beta_pipeline.lib.sources.config import configs_dir, load_config

    kind = (kind or get_settings().source).strip().lower()
    label: str | None = None
    resolved: object = None
    if kind != "embedded":
        source = make_source(kind, config_path=config_path)
        config = getattr(source, "config", None)
        if config is None and getattr(source, "config_path", None) is not None:
            config = load_config(source.config_path)  # yfinance keeps only the path
        if config is not None and config.path is not None:
            path = config.path.resolve()
            shipped = path.parent == configs_dir().resolve()
            label = path.name if shipped else str(path)
            content = dataclasses.asdict(config)
            for key in ("path", "chain", "description"):  # where the YAML lies, not what it reads
                content.pop(key, None)
            resolved = {"shipped": path.name if shipped else None, "config": content}
    payload = json.dumps({"kind": kind, "config": resolved}, sort_keys=True, default=str)
    return warehouse.SourceBinding(kind, label, hashlib.sha256(payload.encode()).hexdigest())
