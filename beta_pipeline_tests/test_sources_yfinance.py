"""The yfinance source with a stubbed download (no network): both column layouts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from beta_pipeline.lib.errors import DataValidationError
from beta_pipeline.lib.schema import PRICE_COLUMNS
from beta_pipeline.lib.sources import YFinanceSource, make_source
from beta_pipeline.lib.sources.yahoo import irx_to_daily, split_download
from beta_pipeline_tests.conftest_sources import block_network, shared_data_dir, write

T = pd.Timestamp
FIELDS = ["Open", "High", "Low", "Close", "Adj Close", "Volume"]


def bars_file(tmp_path: Path, ticker: str, rows: list[tuple]) -> Path:
    """A CSV in yfinance's per-ticker shape (Date, Open, High, Low, Close, Adj Close, Volume)."""
    lines = ["Date,Open,High,Low,Close,Adj Close,Volume"]
    lines += [",".join(str(x) for x in r) for r in rows]
    return write(tmp_path / f"{ticker.replace('^', '_')}.csv", "\n".join(lines) + "\n")


def read_bars(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, index_col="Date", parse_dates=True)


def make_stub(bars: dict[str, pd.DataFrame], layout: str, calls: list[dict]):
    """A stand-in for yfinance.download returning the requested layout from local frames."""

    def download(tickers, start=None, end=None, **kwargs):
        calls.append({"tickers": tickers, "start": start, "end": end, **kwargs})
        names = [tickers] if isinstance(tickers, str) else list(tickers)
        index = pd.DatetimeIndex(sorted(set().union(*(bars[t].index for t in names if t in bars))))
        index = index[(index >= T(start)) & ((index < T(end)) if end else True)]
        index.name = "Date"
        frames = {}
        for t in names:  # unknown tickers come back as all-NaN columns, as yfinance does
            f = bars.get(t, pd.DataFrame(columns=FIELDS, dtype=float))
            frames[t] = f.reindex(index)[FIELDS]
        if layout == "flat":
            assert len(names) == 1
            return frames[names[0]]
        out = pd.concat(frames, axis=1, names=["Ticker", "Price"])
        if layout == "column":  # yfinance's default group_by="column": (Price, Ticker)
            out = out.swaplevel(0, 1, axis=1).sort_index(axis=1, level=0)
        return out

    return download


@pytest.fixture
def local_bars(tmp_path: Path) -> dict[str, pd.DataFrame]:
    days = ["2021-03-01", "2021-03-02", "2021-03-03", "2021-03-04", "2021-03-05", "2021-04-01"]
    aaa = [
        (d, 10 + i, 11 + i, 9 + i, 10.5 + i, 10.0 + i, 1000 * (i + 1)) for i, d in enumerate(days)
    ]
    bbb = [(d, 50, 51, 49, 50 + i, 49 + i, 500) for i, d in enumerate(days) if i != 2]  # a gap
    gspc = [(d, 3800 + i, 3850, 3750, 3810 + i, 3810 + i, 0) for i, d in enumerate(days)]
    irx = [(d, 0.04, 0.04, 0.04, 5.0, 5.0, 0) for d in days[:-2]]  # ends early: carried forward
    out = {}
    for ticker, rows in (("AAA", aaa), ("BBB", bbb), ("^GSPC", gspc), ("^IRX", irx)):
        out[ticker] = read_bars(bars_file(tmp_path, ticker, rows))
    return out


@pytest.fixture(autouse=True)
def _no_network(monkeypatch):
    block_network(monkeypatch)
    monkeypatch.delenv("BETA_PIPELINE_YFINANCE_CONFIG", raising=False)


@pytest.mark.parametrize("layout", ["ticker", "column"])
def test_prices_both_layouts(local_bars, layout):
    calls: list[dict] = []
    src = make_source(
        "yfinance",
        download=make_stub(local_bars, layout, calls),
        universes={"equity": ["AAA", "BBB"]},
    )
    px = src.load_prices("2021-03-01", "2021-03-06")
    assert list(px.columns) == list(PRICE_COLUMNS)
    assert len(px) == 5 + 4  # BBB has no row on 2021-03-03: padding dropped, not an error
    assert (px["source"] == "yfinance").all()
    aaa = px[px["symbol"] == "AAA"].set_index("date")
    assert (
        aaa.loc[T("2021-03-02"), "close"] == 11.5 and aaa.loc[T("2021-03-02"), "adj_close"] == 11.0
    )
    assert aaa.loc[T("2021-03-02"), "volume"] == 2000.0
    assert calls[0]["auto_adjust"] is False and calls[0]["progress"] is False
    assert calls[0]["start"] == "2021-03-01" and calls[0]["end"] == "2021-03-06"


def test_single_ticker_flat_columns(local_bars):
    src = YFinanceSource(download=make_stub(local_bars, "flat", []))
    px = src.load_prices(symbols=["AAA"])
    assert len(px) == 6 and set(px["symbol"]) == {"AAA"}


def test_unknown_ticker(local_bars):
    src = YFinanceSource(download=make_stub(local_bars, "ticker", []))
    with pytest.raises(DataValidationError) as info:
        src.load_prices(symbols=["AAA", "NOPE"])
    assert info.value.rule == "unknown_ticker" and "NOPE" in str(info.value)


def test_negative_price_is_validated(local_bars):
    bad = local_bars["AAA"].copy()
    bad.loc[T("2021-03-03"), "Close"] = -1.0
    src = YFinanceSource(download=make_stub({**local_bars, "AAA": bad}, "column", []))
    with pytest.raises(DataValidationError) as info:
        src.load_prices(symbols=["AAA"])
    assert info.value.rule == "non_positive_price" and info.value.row == 3
    assert "yfinance.download(AAA)" in str(info.value)


def test_market_series(local_bars):
    src = YFinanceSource(download=make_stub(local_bars, "ticker", []))
    m = src.load_market("2021-03-01", "2021-04-02")
    wide = m.pivot(index="date", columns="series", values="value")
    assert wide.loc[T("2021-03-01"), "mkt_level"] == 3810
    daily = (1.05) ** (1 / 252) - 1
    assert wide.loc[T("2021-03-02"), "rf"] == pytest.approx(daily)
    assert np.isnan(wide.loc[T("2021-04-01"), "rf"])  # ^IRX too stale (> 7 days): no rf
    assert wide.loc[T("2021-03-05"), "rf"] == pytest.approx(daily)  # 1 day old: carried
    assert irx_to_daily(pd.Series([0.0]))[0] == 0.0


def test_market_monthly_is_derived(local_bars):
    src = YFinanceSource(download=make_stub(local_bars, "column", []))
    mm = src.load_market_monthly("2021-03-01", "2021-05-01")
    wide = mm.pivot(index="month", columns="series", values="value")
    assert list(wide.index) == [T("2021-03-01"), T("2021-04-01")]
    rf_mar = (1 + ((1.05) ** (1 / 252) - 1)) ** 5 - 1
    assert wide.loc[T("2021-03-01"), "rf"] == pytest.approx(rf_mar)
    assert wide.loc[T("2021-04-01"), "mkt_rf"] == pytest.approx(3815 / 3814 - 1)


def test_universe_lists_come_from_config(local_bars, tmp_path):
    src = YFinanceSource(download=make_stub(local_bars, "ticker", []))
    assert src.universes["crypto"] == ["BTC-USD", "ETH-USD", "LTC-USD", "BCH-USD"]
    assert "CL=F" in src.allow_nonpositive
    cfg = write(tmp_path / "y.yaml", "yfinance:\n  universes: {equity: [AAA]}\n")
    small = YFinanceSource(str(cfg), download=make_stub(local_bars, "ticker", []))
    assert set(small.load_prices()["symbol"]) == {"AAA"}
    with pytest.raises(DataValidationError) as info:
        small.load_prices(universe="crypto")
    assert info.value.rule == "universe_not_configured"
    assert small.securities()["symbol"].tolist() == ["AAA"]


def test_split_download_rejects_flat_multi_ticker():
    flat = pd.DataFrame({"Close": [1.0]}, index=pd.to_datetime(["2021-01-04"]))
    with pytest.raises(DataValidationError):
        split_download(flat, ["A", "B"])


def test_with_real_bars_from_shared_data(monkeypatch):
    """Stub fed from shared/data: CL=F's negative close passes thanks to the config."""
    data = shared_data_dir()
    if data is None:
        pytest.skip("shared/data not found (set BETA_PIPELINE_DATA_DIR)")
    xa = pd.read_csv(data / "cross_asset_daily.csv.gz", parse_dates=["date"])
    xa = xa[(xa["date"] >= "2020-04-01") & (xa["date"] < "2020-05-01")]
    bars = {}
    for sym, g in xa.groupby("symbol"):
        f = g.set_index("date")[["open", "high", "low", "close", "volume"]]
        f.columns = ["Open", "High", "Low", "Close", "Volume"]
        f.insert(4, "Adj Close", f["Close"])
        f.index.name = "Date"
        bars[str(sym)] = f
    src = YFinanceSource(download=make_stub(bars, "column", []))
    px = src.load_prices("2020-04-01", "2020-05-01", universe="cross_asset")
    assert px.loc[(px["symbol"] == "CL=F") & (px["date"] == T("2020-04-20")), "close"].item() == (
        pytest.approx(-37.63)
    )
    strict = YFinanceSource(
        download=make_stub(bars, "ticker", []), universes={"cross_asset": ["CL=F"]}
    )
    strict.allow_nonpositive = ()
    with pytest.raises(DataValidationError) as info:
        strict.load_prices("2020-04-01", "2020-05-01", universe="cross_asset")
    assert info.value.rule == "non_positive_price" and info.value.symbol == "CL=F"
