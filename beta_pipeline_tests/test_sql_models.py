"""Plain-SQL models: dependency parsing, file loading, materialization and the Dagster layer
(one asset per ``.sql`` file, lineage from its SQL)."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import duckdb
import pytest

from beta_pipeline.definitions import PIPELINE_ASSETS
from beta_pipeline.defs.resources import ArtifactStore, DuckDBWarehouse
from beta_pipeline.defs.sql_models import assets as sql_defs
from beta_pipeline.defs.tables import table_writers
from beta_pipeline.lib import sql_models
from beta_pipeline.lib.warehouse import open_warehouse

# --- referenced_tables -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "sql, expected",
    [
        ("SELECT * FROM returns.daily", ("returns.daily",)),
        # CTEs are not dependencies; the tables they read are
        (
            "WITH x AS (SELECT * FROM returns.daily), y AS (SELECT * FROM x) "
            "SELECT * FROM y JOIN raw.securities s USING (symbol)",
            ("raw.securities", "returns.daily"),
        ),
        # unqualified names are not warehouse relations
        ("SELECT * FROM prices", ()),
        # a CTE named like a table does not hide the schema-qualified table
        ("WITH daily AS (SELECT 1 AS a) SELECT * FROM daily, returns.daily", ("returns.daily",)),
        # subqueries, set operations, case and duplicates
        (
            "SELECT beta FROM (SELECT * FROM BETAS.Daily) UNION ALL "
            "SELECT beta FROM betas.monthly WHERE symbol IN (SELECT symbol FROM raw.securities) "
            "UNION ALL SELECT beta FROM betas.daily",
            ("betas.daily", "betas.monthly", "raw.securities"),
        ),
        ("SELECT 1 AS one", ()),
    ],
)
def test_referenced_tables(sql: str, expected: tuple[str, ...]):
    assert sql_models.referenced_tables(sql) == expected


# --- load_model ---------------------------------------------------------------------------------


def _write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text)
    return path


def test_load_model_reads_the_header(tmp_path: Path):
    path = _write(
        tmp_path,
        "beta_summary.sql",
        "-- materialized: table\n"
        "-- Description: Mean beta per symbol: daily table\n"
        "SELECT symbol, avg(beta) AS beta FROM betas.daily GROUP BY symbol;\n",
    )
    model = sql_models.load_model(path)
    assert model.name == "beta_summary" and model.relation == "marts.beta_summary"
    assert model.materialized == "table"
    assert model.description == "Mean beta per symbol: daily table"
    assert model.depends_on == ("betas.daily",)
    assert not model.sql.endswith(";")
    assert model.path == path


def test_load_model_defaults(tmp_path: Path):
    model = sql_models.load_model(_write(tmp_path, "plain.sql", "SELECT 1 AS one"))
    assert model.materialized == "view"
    assert model.description == "SQL model plain.sql"
    assert model.depends_on == ()


@pytest.mark.parametrize(
    "name, text, message",
    [
        ("wipe.sql", "DELETE FROM raw.prices", "single SELECT"),
        ("two.sql", "SELECT 1; DROP TABLE raw.prices", "single SELECT"),
        ("ddl.sql", "CREATE TABLE marts.x AS SELECT 1", "single SELECT"),
        ("broken.sql", "SELECT FROM WHERE (", "cannot parse"),
        ("empty.sql", "-- description: nothing\n", "cannot parse"),
        ("bad-name.sql", "SELECT 1", "SQL identifier"),
        ("1st.sql", "SELECT 1", "SQL identifier"),
        ("kind.sql", "-- materialized: ephemeral\nSELECT 1", "materialized must be"),
    ],
)
def test_load_model_errors_name_the_file(tmp_path: Path, name: str, text: str, message: str):
    path = _write(tmp_path, name, text)
    with pytest.raises(ValueError, match=message) as err:
        sql_models.load_model(path)
    assert str(path) in str(err.value)


def test_discover_sorts_by_name_and_ignores_a_missing_folder(tmp_path: Path):
    _write(tmp_path, "b_model.sql", "SELECT 2 AS x")
    _write(tmp_path, "a_model.sql", "SELECT 1 AS x")
    _write(tmp_path, "notes.txt", "not a model")
    assert [m.name for m in sql_models.discover(tmp_path)] == ["a_model", "b_model"]
    assert sql_models.discover(tmp_path / "absent") == []


# --- materialize --------------------------------------------------------------------------------


def _kind(conn: duckdb.DuckDBPyConnection, name: str) -> list[str]:
    return [
        r[0]
        for r in conn.execute(
            "SELECT 'view' FROM duckdb_views() WHERE schema_name = 'marts' AND view_name = ? "
            "UNION ALL SELECT 'table' FROM duckdb_tables() "
            "WHERE schema_name = 'marts' AND table_name = ?",
            [name, name],
        ).fetchall()
    ]


def test_materialize_switches_between_view_and_table(tmp_path: Path, warehouse_path: Path):
    body = "SELECT symbol, count(*) AS n FROM raw.securities GROUP BY symbol"
    as_view = sql_models.load_model(_write(tmp_path, "counts.sql", body))
    folder = tmp_path / "t"
    folder.mkdir()
    as_table = sql_models.load_model(
        _write(folder, "counts.sql", "-- materialized: table\n" + body)
    )
    with open_warehouse(warehouse_path) as conn:
        conn.execute("INSERT INTO raw.securities (symbol) VALUES ('A'), ('B')")
        assert sql_models.materialize(conn, as_view) == 2
        assert _kind(conn, "counts") == ["view"]

        assert sql_models.materialize(conn, as_table) == 2
        assert _kind(conn, "counts") == ["table"]
        conn.execute("INSERT INTO raw.securities (symbol) VALUES ('C')")
        # a table is a snapshot until it is materialized again
        assert conn.execute("SELECT count(*) FROM marts.counts").fetchone()[0] == 2
        assert sql_models.materialize(conn, as_table) == 3

        assert sql_models.materialize(conn, as_view) == 3
        assert _kind(conn, "counts") == ["view"]
        conn.execute("INSERT INTO raw.securities (symbol) VALUES ('D')")
        assert conn.execute("SELECT count(*) FROM marts.counts").fetchone()[0] == 4  # live


def test_materialize_failure_keeps_the_previous_relation(tmp_path: Path, warehouse_path: Path):
    good = sql_models.load_model(_write(tmp_path, "m.sql", "SELECT 1 AS x"))
    folder = tmp_path / "bad"
    folder.mkdir()
    bad = sql_models.load_model(
        _write(folder, "m.sql", "-- materialized: table\nSELECT x FROM raw.securities")
    )
    with open_warehouse(warehouse_path) as conn:
        sql_models.materialize(conn, good)
        with pytest.raises(duckdb.Error):
            sql_models.materialize(conn, bad)  # no column x: rolled back
        assert _kind(conn, "m") == ["view"]
        assert conn.execute("SELECT x FROM marts.m").fetchall() == [(1,)]


# --- the Dagster layer --------------------------------------------------------------------------


def _deps(asset: dg.AssetsDefinition) -> set[str]:
    return {d.asset_key.to_user_string() for d in asset.specs_by_key[asset.key].deps}


def test_a_new_sql_file_becomes_an_asset_with_lineage_from_its_sql(
    tmp_path: Path, home: Path, warehouse_path: Path, monkeypatch: pytest.MonkeyPatch
):
    folder = tmp_path / "models"
    folder.mkdir()
    _write(
        folder,
        "mean_returns.sql",
        "-- materialized: table\n-- description: Mean daily return per symbol\n"
        "WITH r AS (SELECT symbol, ret FROM returns.daily)\n"
        "SELECT symbol, avg(ret) AS mean_ret, count(*) AS n FROM r GROUP BY symbol\n",
    )
    monkeypatch.setenv("BETA_PIPELINE_SQL_DIR", str(folder))
    assert sql_defs.sql_dir() == folder
    built = sql_defs.sql_assets(upstream=PIPELINE_ASSETS)
    assert [a.key for a in built] == [dg.AssetKey("mean_returns")]
    asset = built[0]
    assert _deps(asset) == {"daily_returns"}
    assert asset.group_names_by_key[asset.key] == "marts"
    assert asset.descriptions_by_key[asset.key] == "Mean daily return per symbol"

    with open_warehouse(warehouse_path) as conn:
        conn.execute(
            "INSERT INTO returns.daily (date, symbol, ret) VALUES "
            "('2020-01-02', 'A', 0.01), ('2020-01-03', 'A', 0.03), ('2020-01-03', 'B', -0.02)"
        )
    result = dg.materialize(
        built,
        resources={
            "warehouse_db": DuckDBWarehouse(path=str(warehouse_path)),
            "artifacts": ArtifactStore(root=str(home / "artifacts")),
        },
        instance=dg.DagsterInstance.ephemeral(),
    )
    assert result.success
    mat = result.asset_materializations_for_node("mean_returns")[0]
    assert mat.metadata["dagster/row_count"].value == 2
    with open_warehouse(warehouse_path, read_only=True) as conn:
        rows = conn.execute(
            "SELECT symbol, mean_ret, n FROM marts.mean_returns ORDER BY 1"
        ).fetchall()
    assert rows[0][0] == "A" and rows[0][1] == pytest.approx(0.02) and rows[0][2] == 2
    assert rows[1] == ("B", pytest.approx(-0.02), 1)


def test_sql_reading_an_unknown_table_is_a_clear_error(tmp_path: Path):
    path = _write(tmp_path, "typo.sql", "SELECT * FROM returns.daly")
    with pytest.raises(ValueError, match=r"returns\.daly.*no asset writes") as err:
        sql_defs.sql_assets(tmp_path, upstream=PIPELINE_ASSETS)
    assert str(path) in str(err.value)
    assert "returns.daily" in str(err.value)  # the known relations are listed


@pytest.mark.parametrize(
    ("relation", "expected"),
    [
        ("portfolios.summary", {"beta_portfolio_summary"}),
        ("portfolios.sort_skipped", {"beta_portfolio_sorts"}),
        ("neuralbeta.betas", {"neuralbeta_betas"}),
        ("neuralbeta.history", {"neuralbeta_runs"}),
        ("crypto.grid_search", {"crypto_neural_betas"}),
        ("betas.estimator_params", {"daily_betas"}),
    ],
)
def test_sql_reading_any_declared_table_gets_its_writer(
    tmp_path: Path, relation: str, expected: set[str]
):
    """The deps come from the assets' ``beta_pipeline/tables`` metadata, not a Python map."""
    _write(tmp_path, "reader.sql", f"SELECT count(*) AS n FROM {relation}")
    (asset,) = sql_defs.sql_assets(tmp_path, upstream=PIPELINE_ASSETS)
    assert _deps(asset) == expected
    assert asset.specs_by_key[asset.key].metadata["dagster/table_name"] == "marts.reader"


def test_sql_reading_an_undeclared_schema_names_the_model_file(tmp_path: Path):
    sql = "SELECT * FROM portfolios.nope JOIN neuralbeta.runs USING (x)"
    path = _write(tmp_path, "odd.sql", sql)
    with pytest.raises(ValueError, match=r"portfolios\.nope.*no asset writes") as err:
        sql_defs.sql_assets(tmp_path, upstream=PIPELINE_ASSETS)
    assert str(path) in str(err.value)
    assert "neuralbeta.runs" in str(err.value)  # known tables are listed


def test_every_declared_table_is_written_by_an_asset():
    from beta_pipeline.lib.warehouse import TABLES

    assert sorted(set(TABLES) - set(table_writers(PIPELINE_ASSETS))) == []


def test_sql_reading_an_unknown_mart_is_a_clear_error(tmp_path: Path):
    _write(tmp_path, "a_model.sql", "SELECT 1 AS x")
    path = _write(tmp_path, "b_model.sql", "SELECT * FROM marts.a_modl")
    with pytest.raises(ValueError, match=r"marts\.a_modl") as err:
        sql_defs.sql_assets(tmp_path)
    assert str(path) in str(err.value)
    # the right name resolves to the other model's asset
    path.write_text("SELECT * FROM marts.a_model")
    by_key = {a.key.to_user_string(): a for a in sql_defs.sql_assets(tmp_path)}
    assert _deps(by_key["b_model"]) == {"a_model"}


def test_every_shipped_sql_model_parses_resolves_and_runs(
    warehouse_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.delenv("BETA_PIPELINE_SQL_DIR", raising=False)
    folder = sql_defs.sql_dir()
    files = sorted(folder.glob("*.sql"))
    assert files, f"no SQL models in {folder}"
    models = {m.name: m for m in sql_models.discover(folder)}
    assert sorted(models) == [p.stem for p in files]
    assets = {a.key.to_user_string(): a for a in sql_defs.sql_assets(upstream=PIPELINE_ASSETS)}
    assert set(assets) == set(models)
    writers = {
        t: {k.to_user_string() for k in keys}
        for t, keys in table_writers(PIPELINE_ASSETS).items()
    }
    for name, model in models.items():
        assert model.depends_on, f"{name} reads no warehouse table"
        for relation in model.depends_on:
            schema, table = relation.split(".", 1)
            if schema == sql_models.MART_SCHEMA:
                assert table in models, (name, relation)
            else:
                assert relation in writers, (name, relation)
        assert _deps(assets[name]) == set().union(
            *({r.split(".", 1)[1]} if r.startswith("marts.") else writers[r]
              for r in model.depends_on)
        )
    assert _deps(assets["betas_month_end"]) == {"daily_betas"}

    # every model runs on an empty warehouse, upstream marts first
    done: list[str] = []
    with open_warehouse(warehouse_path) as conn:
        pending = dict(models)
        while pending:
            ready = [
                n for n, m in pending.items()
                if all(r.split(".", 1)[1] in done for r in m.depends_on if r.startswith("marts."))
            ]
            assert ready, f"dependency cycle among {sorted(pending)}"
            for name in sorted(ready):
                sql_models.materialize(conn, pending.pop(name))
                done.append(name)
                assert _kind(conn, name) == [models[name].materialized]
