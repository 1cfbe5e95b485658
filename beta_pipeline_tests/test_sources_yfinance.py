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
from beta_pipeline_tests.support.paths import KAGGLE_STOCKS, shared_data_dir
from beta_pipeline_tests.support.sources import block_network, write

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
    data = shared_data_dir(KAGGLE_STOCKS)
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


# --- the exchange calendar: holidays, missing tickers, the default range -------------------

#: Independence Day week 2024: Thursday 2024-07-04 is a holiday, 2024-07-03 a half day.
JULY = ["2024-07-01", "2024-07-02", "2024-07-03", "2024-07-05", "2024-07-08"]
#: After the close of Monday 2024-07-08: every day of JULY is complete.
AFTER = pd.Timestamp("2024-07-08 18:00", tz="America/New_York")


@pytest.fixture
def july_bars(tmp_path: Path) -> dict[str, pd.DataFrame]:
    aaa = [(d, 10, 11, 9, 10.0 + i, 10.0 + i, 100) for i, d in enumerate(JULY)]
    bbb = [(d, 50, 51, 49, 50.0 + i, 50.0 + i, 100) for i, d in enumerate(JULY) if d != JULY[3]]
    gspc = [(d, 5500, 5550, 5450, 5500.0 + i, 5500.0 + i, 0) for i, d in enumerate(JULY)]
    irx = [(d, 5.2, 5.2, 5.2, 5.2, 5.2, 0) for d in JULY]
    out = {}
    for ticker, rows in (("AAA", aaa), ("BBB", bbb), ("^GSPC", gspc), ("^IRX", irx)):
        out[ticker] = read_bars(bars_file(tmp_path, ticker, rows))
    return out


def july_source(bars: dict[str, pd.DataFrame], calls: list[dict], now=AFTER) -> YFinanceSource:
    return YFinanceSource(
        download=make_stub(bars, "ticker", calls),
        universes={"equity": ["AAA", "BBB"]},
        clock=lambda: now,
    )


@pytest.mark.parametrize(
    ("start", "end"), [("2024-07-04", "2024-07-05"), ("2024-07-06", "2024-07-08")]
)
def test_window_without_a_session_is_empty_and_downloads_nothing(july_bars, start, end):
    calls: list[dict] = []
    src = july_source(july_bars, calls)
    px = src.load_prices(start, end)
    assert px.empty and list(px.columns) == list(PRICE_COLUMNS)
    assert src.load_market(start, end).empty
    assert src.load_market_monthly(start, end).empty
    assert calls == []


def test_a_session_loads(july_bars):
    calls: list[dict] = []
    px = july_source(july_bars, calls).load_prices("2024-07-03", "2024-07-04")
    assert sorted(px["symbol"]) == ["AAA", "BBB"] and set(px["date"]) == {T("2024-07-03")}
    assert calls[0]["start"] == "2024-07-03" and calls[0]["end"] == "2024-07-04"


def test_one_ticker_missing_on_a_session_warns_and_the_check_names_it(july_bars, caplog):
    from beta_pipeline.lib.quality import check_prices

    src = july_source(july_bars, [])
    with caplog.at_level("WARNING", logger="beta_pipeline.lib.sources.yahoo"):
        day = src.load_prices("2024-07-05", "2024-07-06")
    assert list(day["symbol"]) == ["AAA"]
    assert "BBB" in caplog.text and "2024-07-05" in caplog.text
    # the quality check of that session (with its neighbours as context) names BBB
    context = src.load_prices("2024-07-01", "2024-07-09")
    out = {o.check_name: o for o in check_prices(context, scope=("2024-07-05", "2024-07-06"))}
    holes = out["prices_missing_symbol_days"]
    assert not holes.passed and holes.severity == "warn"
    assert "BBB 2024-07-05" in holes.details
    assert not any(o.is_error for o in out.values())


def test_ticker_absent_longer_than_a_gap_is_unknown(july_bars):
    june = july_bars["AAA"].iloc[[0]].set_axis(pd.DatetimeIndex([T("2024-06-28")], name="Date"))
    aaa = pd.concat([june, july_bars["AAA"]])  # six sessions with data
    bars = {**july_bars, "AAA": aaa, "BBB": july_bars["BBB"].iloc[0:0]}
    with pytest.raises(DataValidationError) as info:
        july_source(bars, []).load_prices("2024-06-01", "2024-07-09")
    assert info.value.rule == "unknown_ticker" and info.value.symbol == "BBB"
    # five days of the others' data (a week) are not enough to call it unknown
    five = july_source(bars, []).load_prices("2024-07-01", "2024-07-09")
    assert set(five["symbol"]) == {"AAA"} and len(five) == 5


def test_no_data_at_all_on_sessions_is_a_clear_error(july_bars):
    calls: list[dict] = []
    src = july_source(july_bars, calls, now=pd.Timestamp("2024-07-12 18:00", tz="UTC"))
    with pytest.raises(DataValidationError) as info:
        src.load_prices("2024-07-09", "2024-07-11")  # sessions, but nothing published
    err = info.value
    assert err.rule == "no_data" and "2024-07-09..2024-07-10" in str(err)
    assert "not yet published" in str(err) and len(calls) == 1
    with pytest.raises(DataValidationError) as market:
        src.load_market("2024-07-09", "2024-07-11")
    assert market.value.rule == "no_data"


def test_incomplete_sessions_are_not_loaded(july_bars):
    calls: list[dict] = []
    during = pd.Timestamp("2024-07-05 11:00", tz="America/New_York")
    src = july_source(july_bars, calls, now=during)
    with pytest.raises(DataValidationError) as info:
        src.load_prices("2024-07-05", "2024-07-06")
    assert info.value.rule == "no_data" and "not closed" in str(info.value) and calls == []
    week = src.load_prices("2024-07-01", "2024-07-06")
    assert week["date"].max() == T("2024-07-03")  # Friday's bar is intraday at 11:00
    assert src.load_market("2024-07-01", "2024-07-06")["date"].max() == T("2024-07-03")


@pytest.mark.parametrize(
    ("now", "last"),
    [
        ("2024-07-04 12:00", "2024-07-03"),  # the holiday: the half day before it
        ("2024-07-05 15:59", "2024-07-03"),  # Friday before its close
        ("2024-07-05 16:00", "2024-07-05"),
        ("2024-07-07 10:00", "2024-07-05"),  # Sunday
    ],
)
def test_describe_gives_the_default_range(july_bars, now, last):
    moment = pd.Timestamp(now, tz="America/New_York")
    d = july_source(july_bars, []).describe(now=moment)
    equity = d["prices"]["equity"]
    assert equity["first_date"] == "2000-01-01" and equity["last_date"] == last
    assert d["prices"]["cross_asset"] == {
        "configured": True,
        "symbols": ["DX-Y.NYB", "EURUSD=X", "GC=F", "GLD", "CL=F", "NG=F", "XLE", "SPY"],
        "first_date": "2000-01-01",
        "last_date": last,
        "calendar": "weekdays",
    }
    crypto_last = moment.tz_convert("UTC").tz_localize(None).normalize() - pd.Timedelta("1D")
    assert d["prices"]["crypto"]["last_date"] == str(crypto_last.date())
    # the clock is the default for now=, and start= sets first_date
    later = YFinanceSource(
        download=make_stub(july_bars, "ticker", []), start="2015-06-01", clock=lambda: moment
    )
    assert later.describe()["prices"]["equity"]["first_date"] == "2015-06-01"
    assert later.describe()["prices"]["equity"]["last_date"] == last


def test_every_source_describes_first_and_last_date(july_bars, tmp_path):
    """The CLI's default range reads describe()["prices"]["equity"][first_date/last_date]."""
    csv = write(
        tmp_path / "p.csv",
        "date,symbol,close\n2024-07-03,AAA,1.0\n2024-07-05,AAA,1.1\n",
    )
    cfg = write(tmp_path / "c.yaml", f"version: 1\nuniverses:\n  equity:\n    - path: {csv}\n")
    sources = {
        "yfinance": july_source(july_bars, []),
        "csv": make_source("csv", str(cfg)),
        "embedded": make_source("embedded"),
    }
    for kind, src in sources.items():
        d = src.describe()
        for universe, entry in d["prices"].items():
            assert {"configured", "first_date", "last_date"} <= set(entry), (kind, universe)
            if not entry["configured"]:
                assert entry["first_date"] is None and entry["last_date"] is None
        equity = d["prices"]["equity"]
        assert pd.Timestamp(equity["first_date"]) <= pd.Timestamp(equity["last_date"]), kind
    csv_eq = sources["csv"].describe()["prices"]["equity"]
    assert (csv_eq["first_date"], csv_eq["last_date"]) == ("2024-07-03", "2024-07-05")
    assert csv_eq["calendar"]["missing_sessions"] == 0  # 2024-07-04 is a holiday
