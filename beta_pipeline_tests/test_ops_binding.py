"""One source per warehouse: the binding (lib/warehouse.py), its fingerprint (defs/resources.py),
the ingestion assets and the CLI refusing another source, and returns never computed across
two sources (lib/returns.py)."""

from __future__ import annotations

import logging
from pathlib import Path

import dagster as dg
import duckdb
import numpy as np
import pandas as pd
import pytest

from beta_pipeline.cli import main
from beta_pipeline.defs.ingestion.assets import raw_market, raw_prices
from beta_pipeline.defs.resources import DuckDBWarehouse, PriceSourceResource, source_binding
from beta_pipeline.lib import warehouse
from beta_pipeline.lib.returns import cross_source_pairs, daily_returns
from beta_pipeline_tests.support.defs import (
    csv_config,
    failure_text,
    make_market,
    make_prices,
    query,
    write_frame,
)

EMBEDDED = warehouse.SourceBinding("embedded", None, "e" * 64)
CSV = warehouse.SourceBinding("csv", "/data/mine.yaml", "c" * 64)


def _csv_source(folder: Path, name: str = "cfg.yaml", seed: int = 0) -> Path:
    write_frame(
        folder / "prices.csv", make_prices(("AAA", "BBB"), "2020-01-01", "2020-01-31", seed)
    )
    write_frame(folder / "market.csv", make_market("2020-01-01", "2020-01-31"))
    return csv_config(folder, "prices.csv", "market.csv", name=name)


# --- lib/warehouse.py --------------------------------------------------------------------------


def test_first_bind_records_the_source_and_later_ones_check_it(warehouse_path: Path) -> None:
    with warehouse.open_warehouse(warehouse_path) as conn:
        assert warehouse.read_source_binding(conn) is None
        assert warehouse.bind_source(conn, CSV, record=False).same_as(CSV)  # a check only
        assert warehouse.read_source_binding(conn) is None
        bound = warehouse.bind_source(conn, EMBEDDED)
        assert bound.same_as(EMBEDDED) and bound.bound_at is not None
        assert warehouse.bind_source(conn, EMBEDDED) == bound  # the same source: fine
        with pytest.raises(warehouse.SourceBindingError) as err:
            warehouse.bind_source(conn, CSV)
        other_config = warehouse.SourceBinding("embedded", None, "f" * 64)
        with pytest.raises(warehouse.SourceBindingError):
            warehouse.bind_source(conn, other_config)
        assert conn.execute("SELECT count(*) FROM meta.source_binding").fetchone()[0] == 1
    message = str(err.value)
    assert "source=embedded" in message and "source=csv config=/data/mine.yaml" in message
    assert "BETA_PIPELINE_HOME" in message and str(warehouse_path) in message
    with warehouse.open_warehouse(warehouse_path, read_only=True) as conn:
        assert warehouse.read_source_binding(conn) == bound


def test_an_unbound_warehouse_with_foreign_prices_refuses_to_bind(warehouse_path: Path) -> None:
    with warehouse.open_warehouse(warehouse_path) as conn:
        conn.execute(
            "INSERT INTO raw.prices (date, symbol, adj_close, source) "
            "VALUES (DATE '2016-12-30', 'GE', 30.0, 'csv:all_stocks_5yr.csv.gz')"
        )
        with pytest.raises(warehouse.SourceBindingError, match="holds rows of csv"):
            warehouse.bind_source(conn, EMBEDDED)
        assert warehouse.read_source_binding(conn) is None
        assert warehouse.bind_source(conn, CSV).same_as(CSV)


def test_read_binding_of_an_older_read_only_file(tmp_path: Path) -> None:
    path = tmp_path / "old.duckdb"
    duckdb.connect(str(path)).close()  # no meta schema at all
    with warehouse.open_warehouse(path, read_only=True) as conn:
        assert warehouse.read_source_binding(conn) is None


# --- the fingerprint ------------------------------------------------------------------------------


def test_fingerprints_tell_sources_and_configs_apart(tmp_path: Path) -> None:
    embedded = source_binding("embedded", None)
    assert embedded == source_binding("embedded", "ignored.yaml")
    assert embedded.config is None
    cfg = _csv_source(tmp_path / "a")
    mine = source_binding("csv", str(cfg))
    assert mine.source == "csv" and mine.config == str(cfg.resolve())
    assert mine == source_binding("csv", str(cfg))  # stable
    assert not mine.same_as(embedded)
    # the same YAML text reading other files is another source
    other = _csv_source(tmp_path / "b")
    assert not source_binding("csv", str(other)).same_as(mine)
    # a changed mapping of the same files too
    cfg.write_text(cfg.read_text().replace("units: percent", "units: decimal"))
    assert not source_binding("csv", str(cfg)).same_as(mine)
    # shipped configs are named, and differ from each other
    shipped = source_binding("yfinance", None)
    assert shipped.config == "yfinance.yaml"
    assert shipped.same_as(source_binding("yfinance", "yfinance"))


# --- the ingestion assets and the CLI ----------------------------------------------------------


def _materialize(asset, warehouse_path: Path, kind: str, config: Path | None = None):
    return dg.materialize(
        [asset],
        resources={
            "warehouse_db": DuckDBWarehouse(path=str(warehouse_path)),
            "prices": PriceSourceResource(
                kind=kind, config_path=str(config) if config is not None else None
            ),
        },
        partition_key="2020-01-07",
        instance=dg.DagsterInstance.ephemeral(),
        raise_on_error=False,
    )


def test_ingestion_from_another_source_fails_naming_both(
    warehouse_path: Path, tmp_path: Path
) -> None:
    # a source that fails to load binds nothing: the warehouse stays free for another one
    broken = _csv_source(tmp_path / "broken")
    (tmp_path / "broken" / "prices.csv").write_text("date,symbol,close\n2020-01-07,AAA,-1\n")
    result = _materialize(raw_prices, warehouse_path, "csv", broken)
    assert not result.success and "non_positive_price" in failure_text(result)
    with warehouse.open_warehouse(warehouse_path, read_only=True) as conn:
        assert warehouse.read_source_binding(conn) is None

    assert _materialize(raw_prices, warehouse_path, "embedded").success
    before = query(warehouse_path, "SELECT * FROM raw.prices ORDER BY symbol")
    assert set(before["source"]) == {"embedded"}
    cfg = _csv_source(tmp_path / "src")
    for asset in (raw_prices, raw_market):
        result = _materialize(asset, warehouse_path, "csv", cfg)
        assert not result.success
        message = failure_text(result)
        assert "is bound to source=embedded" in message, message
        assert f"this run reads source=csv config={cfg.resolve()}" in message
        assert "BETA_PIPELINE_HOME" in message
    after = query(warehouse_path, "SELECT * FROM raw.prices ORDER BY symbol")
    pd.testing.assert_frame_equal(after, before)
    assert query(warehouse_path, "SELECT count(*) AS n FROM raw.market")["n"].iloc[0] == 0
    # the bound source still ingests
    assert _materialize(raw_market, warehouse_path, "embedded").success


def test_cli_refuses_another_source_before_running_and_info_shows_the_binding(
    home: Path, capsys: pytest.CaptureFixture
) -> None:
    with warehouse.open_warehouse(home / "warehouse.duckdb") as conn:
        warehouse.bind_source(conn, source_binding("embedded", None))
    args = ["run", "--select", "raw_prices", "--start", "2020-01-06", "--end", "2020-01-10"]
    assert main([*args, "--source", "yfinance"]) == 2
    err = capsys.readouterr().err
    assert "is bound to source=embedded" in err and "source=yfinance" in err
    instance = dg.DagsterInstance.get()
    try:
        assert instance.get_runs() == []  # refused before any run
    finally:
        instance.dispose()
    assert main(["info"]) == 0
    assert "binding:   source=embedded fingerprint=" in capsys.readouterr().out


# --- lib/returns.py -------------------------------------------------------------------------------


def test_returns_never_span_two_sources(caplog: pytest.LogCaptureFixture) -> None:
    days = pd.bdate_range("2016-12-26", "2017-01-06")
    csv_days, embedded_days = days[days.year == 2016], days[days.year == 2017]
    prices = pd.concat(
        [
            pd.DataFrame({"date": csv_days, "symbol": "GE", "adj_close": 30.0, "source": "csv:a"}),
            pd.DataFrame(
                {"date": embedded_days, "symbol": "GE", "adj_close": 170.0, "source": "embedded"}
            ),
            # one source kind over two files of one csv config: its seam keeps its return
            pd.DataFrame({"date": csv_days, "symbol": "AA", "adj_close": 10.0, "source": "csv:a"}),
            pd.DataFrame(
                {"date": embedded_days, "symbol": "AA", "adj_close": 11.0, "source": "csv:b"}
            ),
        ],
        ignore_index=True,
    )
    market = pd.DataFrame(
        {"date": days, "series": "mkt_level", "value": 100.0 + np.arange(len(days))}
    )
    with caplog.at_level(logging.WARNING, logger="beta_pipeline.lib.returns"):
        out = daily_returns(prices, market)
    ge = out.loc[out["symbol"] == "GE"].set_index("date")
    seam = embedded_days[0]
    assert seam not in ge.index  # no +467 % "return" from a csv price to an embedded one
    assert (ge["ret"].abs() < 1e-12).all() and len(ge) == len(days) - 2
    aa = out.loc[out["symbol"] == "AA"].set_index("date")
    assert aa.loc[seam, "ret"] == pytest.approx(0.1)
    assert "1 return(s) not computed because the previous price comes from another source" in (
        caplog.text
    )
    assert "GE on 2017-01-02, embedded after csv:a on 2016-12-30" in caplog.text
    pairs = cross_source_pairs(prices)
    assert pairs[["symbol", "source", "prev_source"]].values.tolist() == [
        ["GE", "embedded", "csv:a"]
    ]
    assert pairs["date"].tolist() == [seam]
    # a single source, or no source column: nothing dropped, nothing logged
    caplog.clear()
    one = prices.loc[prices["symbol"] == "AA"]
    with caplog.at_level(logging.WARNING, logger="beta_pipeline.lib.returns"):
        assert len(daily_returns(one.drop(columns=["source"]), market)) == len(days) - 1
        assert len(daily_returns(one, market)) == len(days) - 1
    assert not caplog.text and cross_source_pairs(one).empty
