"""Assets built from ``dbt_like_sql/*.sql``: one asset per file, lineage from its SQL."""


import os
from collections.abc import Callable, Mapping
from pathlib import Path

import dagster as dg
import pandas as pd

from beta_pipeline.defs.partitions import DUCKDB_POOL
from beta_pipeline.defs.resources import ArtifactStore, DuckDBWarehouse
from beta_pipeline.defs.util import png_metadata, preview
from beta_pipeline.lib import plots, sql_models

GROUP = "marts"

#: Which asset writes each warehouse relation (domains add theirs here).
TABLE_TO_ASSET: dict[str, str] = {
    "raw.prices": "raw_prices",
    "raw.market": "raw_market",
    "raw.market_monthly": "raw_market_monthly",
    "raw.securities": "security_master",
    "returns.daily": "daily_returns",
    "returns.monthly": "monthly_returns",
    "betas.daily": "daily_betas",
    "betas.monthly": "monthly_betas",
    "betas.hedging_performance": "hedging_performance",
    "quality.check_results": "raw_prices",
}

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


def sql_dir() -> Path:
    """``$BETA_PIPELINE_SQL_DIR``, else ``dbt_like_sql/`` beside the package's repo root."""
    env = os.environ.get("BETA_PIPELINE_SQL_DIR")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[3] / "dbt_like_sql"


def _upstream_key(relation: str) -> dg.AssetKey:
    if relation.startswith(f"{sql_models.MART_SCHEMA}."):
        return dg.AssetKey(relation.split(".", 1)[1])
    if relation not in TABLE_TO_ASSET:
        raise ValueError(
            f"SQL model reads {relation}, which no asset writes; known: "
            f"{', '.join(sorted(TABLE_TO_ASSET))} and marts.*"
        )
    return dg.AssetKey(TABLE_TO_ASSET[relation])


def build_sql_asset(model: sql_models.SqlModel) -> dg.AssetsDefinition:
    """A Dagster asset that (re)creates ``marts.<name>`` from the model's SELECT."""
    try:
        deps = [_upstream_key(r) for r in model.depends_on]
    except ValueError as err:
        raise ValueError(f"{model.path}: {err}") from err

    @dg.asset(
        name=model.name,
        deps=deps,
        pool=DUCKDB_POOL,
        kinds={"duckdb", "sql"},
        group_name=GROUP,
        description=model.description,
        metadata={"sql": dg.MetadataValue.md(f"```sql\n{model.sql}\n```"), "path": str(model.path)},
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


def sql_assets(folder: Path | None = None) -> list[dg.AssetsDefinition]:
    """One asset per ``.sql`` file in ``folder`` (default :func:`sql_dir`)."""
    models = sql_models.discover(folder or sql_dir())
    names = {m.name for m in models}
    prefix = f"{sql_models.MART_SCHEMA}."
    for model in models:
        for relation in model.depends_on:
            if relation.startswith(prefix) and relation[len(prefix):] not in names:
                raise ValueError(
                    f"{model.path}: reads {relation}, but there is no SQL model "
                    f"{relation[len(prefix):]}.sql beside it"
                )
    return [build_sql_asset(m) for m in models]
