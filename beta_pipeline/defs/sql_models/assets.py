"""Assets built from ``dbt_like_sql/*.sql``: one asset per file, lineage from its SQL.

A model may read any warehouse table that an asset declares it writes (``defs/tables.py``)
and any other model's ``marts.<name>``: adding a file needs no Python.
"""

import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path

import dagster as dg
import pandas as pd

import beta_pipeline
from beta_pipeline.defs.partitions import DUCKDB_POOL
from beta_pipeline.defs.resources import ArtifactStore, DuckDBWarehouse
from beta_pipeline.defs.tables import TABLES_KEY, table_writers, writes
from beta_pipeline.defs.util import png_metadata, preview
from beta_pipeline.lib import plots, sql_models

GROUP = "marts"

#: Optional plot makers per model name: (relation frame) -> {filename: PNG bytes}.
PlotHook = Callable[[pd.DataFrame], Mapping[str, bytes]]


def _deciles_plot(frame: pd.DataFrame) -> dict[str, bytes]:
    out = {}
    for estimator in ("ols_252", "ols_60m"):
        part = frame[(frame["model"] == "capm") & (frame["estimator"] == estimator)]
        if len(part):
            out[f"deciles_{estimator}.png"] = plots.lines_over_time(
                part, "month", "beta", "decile", f"CAPM beta deciles over time ({estimator})"
            )
    return out


def _coverage_plot(frame: pd.DataFrame) -> dict[str, bytes]:
    part = frame[frame["model"] == "capm"].assign(series=lambda f: f["estimator"])
    if part.empty:
        return {}
    return {
        "coverage.png": plots.lines_over_time(
            part, "month", "share", "series", "Share of stocks with a CAPM beta", "share"
        )
    }


def _sector_plot(frame: pd.DataFrame) -> dict[str, bytes]:
    part = frame[frame["estimator"] == "ols_252"]
    if part.empty:
        return {}
    return {
        "sectors.png": plots.boxplot_by(
            part, "beta", "sector", "CAPM betas (OLS 252d, month ends) by sector"
        )
    }


PLOT_HOOKS: dict[str, PlotHook] = {
    "beta_deciles_monthly": _deciles_plot,
    "beta_coverage": _coverage_plot,
    "beta_by_sector": _sector_plot,
}


#: Folder of the SQL models: top-level in the checkout, package data in a wheel (setup.py).
SQL_FOLDER = "dbt_like_sql"


def sql_dir() -> Path:
    """``$BETA_PIPELINE_SQL_DIR``; else the models shipped in the installed package
    (``beta_pipeline/dbt_like_sql``); else ``dbt_like_sql/`` of the checkout (editable)."""
    env = os.environ.get("BETA_PIPELINE_SQL_DIR")
    if env:
        return Path(env)
    packaged = Path(beta_pipeline.__file__).resolve().parent / SQL_FOLDER
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parents[3] / SQL_FOLDER


def upstream_keys(
    model: sql_models.SqlModel,
    writers: Mapping[str, Sequence[dg.AssetKey]],
    models: Iterable[str] = (),
) -> list[dg.AssetKey]:
    """The assets a model reads: the writers of each table (from the assets' metadata, see
    ``defs/tables.py``) and the SQL models of its ``marts.*`` relations. Raises
    ``ValueError`` naming the model's file for a relation that nothing writes."""
    marts = f"{sql_models.MART_SCHEMA}."
    names = set(models)
    keys: list[dg.AssetKey] = []
    for relation in model.depends_on:
        if relation.startswith(marts):
            name = relation[len(marts):]
            if name not in names:
                raise ValueError(
                    f"{model.path}: reads {relation}, but there is no SQL model "
                    f"{name}.sql beside it"
                )
            found: Sequence[dg.AssetKey] = [dg.AssetKey(name)]
        else:
            found = writers.get(relation, ())
            if not found:
                raise ValueError(
                    f"{model.path}: SQL model reads {relation}, which no asset writes (no "
                    f"asset's {TABLES_KEY!r} metadata names it); known: "
                    f"{', '.join(sorted(writers))} and {marts}*"
                )
        keys.extend(k for k in found if k not in keys)
    return keys


def build_sql_asset(model: sql_models.SqlModel, deps: Sequence[dg.AssetKey]) -> dg.AssetsDefinition:
    """A Dagster asset that (re)creates ``marts.<name>`` from the model's SELECT."""

    @dg.asset(
        name=model.name,
        deps=deps,
        pool=DUCKDB_POOL,
        kinds={"duckdb", "sql"},
        group_name=GROUP,
        description=model.description,
        metadata={
            "sql": dg.MetadataValue.md(f"```sql\n{model.sql}\n```"),
            "path": str(model.path),
            **writes(model.relation),
        },
    )
    def _asset(
        context: dg.AssetExecutionContext,
        warehouse_db: DuckDBWarehouse,
        artifacts: ArtifactStore,
    ) -> dg.MaterializeResult:
        with warehouse_db.writer() as conn:
            n = sql_models.materialize(conn, model)
            frame = conn.execute(f"SELECT * FROM {model.relation}").df()
        context.log.info(f"{model.relation}: {n:,} rows ({model.materialized})")
        meta: dict[str, object] = {"dagster/row_count": n, "preview": preview(frame, 15)}
        hook = PLOT_HOOKS.get(model.name)
        if hook is not None and n:
            for filename, png in hook(frame).items():
                path = artifacts.path("marts", filename)
                path.write_bytes(png)
                meta[filename] = dg.MetadataValue.path(str(path))
                meta[f"{filename}_plot"] = png_metadata(png)
        return dg.MaterializeResult(metadata=meta)

    return _asset


def sql_assets(
    folder: Path | None = None, upstream: Iterable[dg.AssetsDefinition] = ()
) -> list[dg.AssetsDefinition]:
    """One asset per ``.sql`` file in ``folder`` (default :func:`sql_dir`), its deps derived
    from the tables that ``upstream`` assets declare they write (:func:`table_writers`)."""
    models = sql_models.discover(folder or sql_dir())
    writers = table_writers(upstream)
    names = [m.name for m in models]
    return [build_sql_asset(m, upstream_keys(m, writers, names)) for m in models]
