"""The embedded source: real data from installed wheels (skfolio, arch), no network."""

from __future__ import annotations

from importlib import resources

import numpy as np
import pandas as pd
import pytest

from beta_pipeline.lib.errors import DataValidationError
from beta_pipeline.lib.schema import MARKET_COLUMNS, MONTHLY_MARKET_COLUMNS, PRICE_COLUMNS
from beta_pipeline.lib.sources import EmbeddedSource, PriceSource, clear_cache, make_source
from beta_pipeline.lib.sources.embedded import daily_rf_from_monthly, french_monthly_path
from beta_pipeline_tests.support.sources import block_network

T = pd.Timestamp
STOCKS = {
    "AAPL", "AMD", "BAC", "BBY", "CVX", "GE", "HD", "JNJ", "JPM", "KO",
    "LLY", "MRK", "MSFT", "PEP", "PFE", "PG", "RRC", "UNH", "WMT", "XOM",
}  # fmt: skip


@pytest.fixture(scope="module")
def src() -> EmbeddedSource:
    return EmbeddedSource()


def test_datasets_ship_inside_the_wheels():
    data = resources.files("skfolio.datasets.data")
    for name in ("sp500_dataset.csv.gz", "sp500_index.csv.gz", "factors_dataset.csv.gz"):
        assert data.joinpath(name).is_file(), name
    assert french_monthly_path().is_file()


def test_loads_offline(monkeypatch):
    block_network(monkeypatch)
    clear_cache()  # force a real read of the package files under the network block
    src = make_source("embedded")
    assert isinstance(src, PriceSource)
    assert len(src.load_prices()) == 20 * 8313
    assert not src.load_market().empty and not src.load_market_monthly().empty
    assert src.describe()["kind"] == "embedded"


def test_default_kind_is_embedded(monkeypatch):
    monkeypatch.delenv("BETA_PIPELINE_SOURCE", raising=False)
    assert make_source().kind == "embedded"


def test_prices(src: EmbeddedSource):
    px = src.load_prices()
    assert list(px.columns) == list(PRICE_COLUMNS)
    assert set(px["symbol"]) == STOCKS
    assert px["date"].min() == T("1990-01-02") and px["date"].max() == T("2022-12-28")
    assert len(px) == 20 * 8313 and px["adj_close"].notna().all()
    assert (px["close"] == px["adj_close"]).all() and px["open"].isna().all()
    assert (px["source"] == "embedded").all()
    aapl = px[(px["symbol"] == "AAPL") & (px["date"] == T("1990-01-02"))]
    assert aapl["adj_close"].item() == pytest.approx(0.264)
    win = src.load_prices("2022-12-01", "2022-12-28", symbols=["msft", "XOM"])
    assert win["date"].max() == T("2022-12-27") and set(win["symbol"]) == {"MSFT", "XOM"}


def test_unknown_ticker(src: EmbeddedSource):
    with pytest.raises(DataValidationError) as info:
        src.load_prices(symbols=["AAPL", "NOPE"])
    assert info.value.rule == "unknown_ticker" and "NOPE" in str(info.value)


@pytest.mark.parametrize("universe", ["crypto", "cross_asset"])
def test_crypto_and_cross_asset_need_another_source(src: EmbeddedSource, universe: str):
    with pytest.raises(DataValidationError) as info:
        src.load_prices(universe=universe)
    msg = str(info.value)
    assert info.value.rule == "universe_not_configured"
    assert "BETA_PIPELINE_SOURCE=csv" in msg and "yfinance" in msg
    if universe == "crypto":
        assert "no PyPI package ships crypto prices" in msg


def test_market(src: EmbeddedSource):
    m = src.load_market()
    assert list(m.columns) == list(MARKET_COLUMNS)
    cov = m.groupby("series")["date"].agg(["min", "max", "size"])
    assert cov.loc["mkt_level", "min"] == T("1990-01-02")
    assert cov.loc["mkt_level", "max"] == T("2022-12-28")
    assert cov.loc["mkt_level", "size"] == 8313
    for etf in ("mtum", "qual", "size", "usmv", "vlue"):
        assert cov.loc[f"{etf}_level", "min"] == T("2014-01-02")
        assert cov.loc[f"{etf}_level", "size"] == 2264
    assert cov.loc["wti_level", "max"] == T("2019-01-03")
    assert cov.loc["nasdaq_level", "min"] == T("1999-01-04")
    assert cov.loc["rf", "min"] == T("1990-01-02") and cov.loc["rf", "max"] == T("2022-12-30")
    lv = m[m["series"].str.endswith("_level")]
    assert (lv["value"] > 0).all()
    # every trading day of the index has an rf
    rf_days = set(m.loc[m["series"] == "rf", "date"])
    assert set(m.loc[m["series"] == "mkt_level", "date"]) <= rf_days


def test_daily_rf_compounds_to_the_monthly_rf(src: EmbeddedSource):
    m = src.load_market("2018-01-01", "2019-03-01")
    rf = m[m["series"] == "rf"].set_index("date")["value"]
    monthly = src.load_market_monthly().pivot(index="month", columns="series", values="value")
    compounded = np.expm1(np.log1p(rf).groupby(rf.index.to_period("M").to_timestamp()).sum())
    assert compounded[T("2018-06-01")] == pytest.approx(monthly.loc[T("2018-06-01"), "rf"])
    # after 2018-11 the last monthly value (0.18 %) is carried forward and flagged
    assert compounded[T("2019-02-01")] == pytest.approx(0.0018)
    flag = src.describe()["market"]["rf_carried_forward"]
    assert flag["first"] == "2018-12" and flag["last"] == "2022-12"
    assert flag["value_monthly"] == pytest.approx(0.0018)


def test_daily_rf_helper():
    monthly = pd.Series([0.01, 0.02], index=pd.to_datetime(["2020-01-01", "2020-02-01"]))
    daily, carried = daily_rf_from_monthly(monthly, T("2020-01-01"), T("2020-03-31"))
    assert carried == ["2020-03"]
    assert daily["date"].dt.dayofweek.max() <= 4
    jan = daily[daily["date"].dt.month == 1]["value"]
    assert len(jan) == 21 and np.prod(1 + jan) - 1 == pytest.approx(0.01)


def test_monthly_factors(src: EmbeddedSource):
    mm = src.load_market_monthly()
    assert list(mm.columns) == list(MONTHLY_MARKET_COLUMNS)
    cov = mm.groupby("series")["month"].agg(["min", "max", "size"])
    assert set(cov.index) == {"mkt_rf", "smb", "hml", "rf"}
    assert (cov["min"] == T("1926-07-01")).all() and (cov["max"] == T("2018-11-01")).all()
    assert (cov["size"] == 1109).all()
    first = mm[mm["month"] == T("1926-07-01")].set_index("series")["value"]
    assert first["mkt_rf"] == pytest.approx(0.0296) and first["rf"] == pytest.approx(0.0022)
    assert (mm["month"].dt.day == 1).all()


def test_securities_and_describe(src: EmbeddedSource):
    sec = src.securities()
    assert len(sec) == 20 and sec["sector"].notna().all() and sec["name"].notna().all()
    assert sec.set_index("symbol").loc["XOM", "sector"] == "Energy"
    d = src.describe()
    assert d["prices"]["equity"]["n_symbols"] == 20
    assert d["prices"]["equity"]["first_date"] == "1990-01-02"
    assert d["prices"]["crypto"]["configured"] is False
    assert d["market"]["series"]["mkt_level"]["last"] == "2022-12-28"
    assert d["market_monthly"]["series"]["rf"]["last"] == "2018-11-01"
