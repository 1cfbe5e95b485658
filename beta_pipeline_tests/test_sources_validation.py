"""Bad inputs for the csv source: each raises one DataValidationError naming rule, file, row."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from beta_pipeline.lib.errors import DataValidationError
from beta_pipeline.lib.sources import CsvSource, make_source
from beta_pipeline.lib.sources.cache import READS
from beta_pipeline_tests.support.sources import assert_error, config_for, write

GOOD = """
date,symbol,open,high,low,close,volume
2020-01-02,AAA,10,11,9,10.5,100
2020-01-02,BBB,20,21,19,20.5,200
2020-01-03,AAA,10.5,11,10,10.8,110
2020-01-03,BBB,20.5,21,20,20.2,210
2020-01-06,AAA,10.8,11.2,10.6,11.0,120
2020-01-06,BBB,20.2,20.9,20.0,20.6,220
"""

FACTORS = """
date,Mkt-RF,SMB,HML,RF
2020-01-02,0.86,-0.97,-0.35,0.006
2020-01-03,-0.67,0.30,0.00,0.006
2020-01-06,0.36,-0.21,-0.55,0.006
2020-01-07,-0.19,-0.03,-0.25,0.006
2020-01-08,0.47,-0.17,-0.64,0.006
2020-01-09,0.65,-0.71,-0.48,0.006
"""


def equity_source(tmp_path: Path, csv_text: str, extra: str = "", name: str = "px.csv"):
    data = write(tmp_path / name, csv_text)
    cfg = config_for(
        tmp_path,
        f"""
        universes:
          equity:
            - path: {name}
        {extra}
        """,
    )
    return CsvSource(str(cfg)), data


def load_error(
    tmp_path: Path, csv_text: str, extra: str = "", **kw
) -> tuple[DataValidationError, Path]:
    src, data = equity_source(tmp_path, csv_text, extra)
    with pytest.raises(DataValidationError) as info:
        src.load_prices(**kw)
    return info.value, data


def factor_source(tmp_path: Path, text: str, units: str) -> tuple[CsvSource, Path]:
    data = write(tmp_path / "ff.csv", text)
    cfg = config_for(
        tmp_path,
        f"""
        market:
          - path: ff.csv
            units: {units}
            series: {{mkt_rf: Mkt-RF, smb: SMB, hml: HML, rf: RF}}
        """,
    )
    return CsvSource(str(cfg)), data


# --- the good case -------------------------------------------------------------------------


def test_good_file_is_canonical(tmp_path):
    src, _ = equity_source(tmp_path, GOOD)
    px = src.load_prices()
    assert list(px.columns) == [
        "date",
        "symbol",
        "open",
        "high",
        "low",
        "close",
        "adj_close",
        "volume",
        "source",
    ]
    assert len(px) == 6 and set(px["symbol"]) == {"AAA", "BBB"}
    assert str(px["date"].dtype) == "datetime64[ns]"
    assert (px["adj_close"] == px["close"]).all()  # no adjusted column -> adj_close = close
    assert (px["source"] == "csv:px.csv").all()
    # half-open window and symbol filter (case-insensitive)
    win = src.load_prices("2020-01-03", "2020-01-06", symbols=["aaa"])
    assert win["date"].tolist() == [pd.Timestamp("2020-01-03")]
    assert win["symbol"].tolist() == ["AAA"]


# --- one test per rule ------------------------------------------------------------------------


def test_missing_column(tmp_path):
    err, data = load_error(tmp_path, "date,symbol,open\n2020-01-02,AAA,1\n")
    assert_error(err, "missing_column", data, 1)
    assert "close" in str(err)


def test_missing_configured_column(tmp_path):
    src_text = GOOD.replace("symbol", "ticker")
    data = write(tmp_path / "px.csv", src_text)
    cfg = config_for(
        tmp_path,
        """
        universes:
          equity:
            - path: px.csv
              columns: {symbol: Name}
        """,
    )
    with pytest.raises(DataValidationError) as info:
        CsvSource(str(cfg)).load_prices()
    assert_error(info.value, "missing_column", data, 1)
    assert "'Name'" in str(info.value)


def test_non_numeric_close(tmp_path):
    err, data = load_error(tmp_path, GOOD.replace("10.8,110", "abc,110"))
    assert_error(err, "non_numeric", data, 4)
    assert err.symbol == "AAA" and err.date == "2020-01-03" and "'abc'" in str(err)


def test_negative_price(tmp_path):
    err, data = load_error(tmp_path, GOOD.replace("20.2,210", "-20.2,210"))
    assert_error(err, "non_positive_price", data, 5)
    assert err.symbol == "BBB" and err.date == "2020-01-03"


def test_zero_price(tmp_path):
    err, data = load_error(tmp_path, GOOD.replace("2020-01-06,AAA,10.8", "2020-01-06,AAA,0"))
    assert_error(err, "non_positive_price", data, 6)
    assert "open" in str(err)


def test_duplicate_rows(tmp_path):
    text = GOOD.rstrip() + "\n2020-01-03,AAA,10.5,11,10,10.8,110\n"
    err, data = load_error(tmp_path, text)
    assert_error(err, "duplicate_row", data, 8)
    assert "repeats row 4" in str(err)


def test_empty_file(tmp_path):
    err, data = load_error(tmp_path, "")
    assert_error(err, "empty_file", data, 1)


def test_header_only_file(tmp_path):
    err, data = load_error(tmp_path, "date,symbol,close\n")
    assert_error(err, "empty_file", data, 1)


def test_unparseable_date(tmp_path):
    err, data = load_error(tmp_path, GOOD.replace("2020-01-03,BBB", "03/01/2020,BBB"))
    assert_error(err, "unparseable_date", data, 5)
    assert "03/01/2020" in str(err)


def test_out_of_order_dates(tmp_path):
    text = """
    date,symbol,close
    2020-01-02,AAA,1
    2020-01-06,AAA,2
    2020-01-03,AAA,3
    2020-01-07,AAA,4
    """
    err, data = load_error(tmp_path, text)
    assert_error(err, "out_of_order", data, 4)
    assert err.symbol == "AAA"


def test_descending_dates_are_reversed(tmp_path):
    text = """
    date,symbol,close
    2020-01-07,AAA,4
    2020-01-06,AAA,3
    2020-01-03,AAA,2
    2020-01-02,BBB,9
    2020-01-03,BBB,8
    """
    src, _ = equity_source(tmp_path, text)
    px = src.load_prices(symbols="AAA")
    assert px["date"].is_monotonic_increasing and px["close"].tolist() == [2.0, 3.0, 4.0]


def test_all_nan_day(tmp_path):
    text = GOOD.replace("2020-01-03,AAA,10.5,11,10,10.8,110", "2020-01-03,AAA,,,,,110").replace(
        "2020-01-03,BBB,20.5,21,20,20.2,210", "2020-01-03,BBB,NaN,,,NA,"
    )
    err, data = load_error(tmp_path, text)
    assert_error(err, "all_nan_day", data, 4)
    assert err.date == "2020-01-03"


def test_isolated_nan_close_is_dropped_and_counted(tmp_path):
    src, data = equity_source(tmp_path, GOOD.replace("10.8,110", ",110"))
    px = src.load_prices()
    assert len(px) == 5
    assert src.describe()["files"][str(data)]["nan_rows_dropped"] == 1


def test_unknown_ticker(tmp_path):
    src, data = equity_source(tmp_path, GOOD)
    with pytest.raises(DataValidationError) as info:
        src.load_prices(symbols=["AAA", "ZZZ", "YYY"])
    err = info.value
    assert err.rule == "unknown_ticker" and "ZZZ" in str(err) and "YYY" in str(err)
    assert str(data) in str(err)


def test_percent_factors_given_as_decimals(tmp_path):
    decimals = "date,Mkt-RF,SMB,HML,RF\n" + "\n".join(
        f"2020-01-{d:02d},{0.0086 * (-1) ** d},{0.003},{-0.004},0.00006" for d in range(2, 12)
    )
    src, data = factor_source(tmp_path, decimals, "percent")
    with pytest.raises(DataValidationError) as info:
        src.load_market()
    assert_error(info.value, "units_mismatch", data, 2)
    assert "looks like decimals" in str(info.value)


def test_decimal_factors_given_as_percent(tmp_path):
    src, data = factor_source(tmp_path, FACTORS, "decimal")
    with pytest.raises(DataValidationError) as info:
        src.load_market()
    assert_error(info.value, "units_mismatch", data, 2)


def test_percent_factors_are_divided_by_100(tmp_path):
    src, _ = factor_source(tmp_path, FACTORS, "percent")
    m = src.load_market().pivot(index="date", columns="series", values="value")
    assert m.loc["2020-01-02", "mkt_rf"] == pytest.approx(0.0086)
    assert m.loc["2020-01-02", "rf"] == pytest.approx(0.00006)


WTI = """
date,symbol,open,high,low,close,volume
2020-04-16,CL=F,19.9,20.3,19.2,19.87,100
2020-04-16,GC=F,1730,1740,1710,1717,50
2020-04-17,CL=F,19.8,20.4,17.3,18.27,100
2020-04-17,GC=F,1717,1720,1680,1683,50
2020-04-20,CL=F,17.7,17.8,-40.3,-37.63,100
2020-04-20,GC=F,1683,1700,1680,1694,50
"""


def test_wti_negative_price_without_allow(tmp_path):
    err, data = load_error(tmp_path, WTI)
    assert_error(err, "non_positive_price", data, 6)
    assert err.symbol == "CL=F" and err.date == "2020-04-20"


def test_wti_negative_price_allowed_for_that_symbol_only(tmp_path):
    src, _ = equity_source(tmp_path, WTI, name="px.csv")
    cfg = config_for(
        tmp_path,
        """
        universes:
          cross_asset:
            - path: px.csv
              allow_nonpositive: [CL=F]
        """,
        name="allow.yaml",
    )
    px = CsvSource(str(cfg)).load_prices(universe="cross_asset")
    assert px.loc[px["symbol"] == "CL=F", "close"].min() == -37.63
    # the same allowance does not cover another symbol
    data = write(tmp_path / "px.csv", WTI.replace("1683,1700,1680,1694", "1683,1700,1680,-1"))
    with pytest.raises(DataValidationError) as info:
        CsvSource(str(cfg)).load_prices(universe="cross_asset")
    assert_error(info.value, "non_positive_price", data, 7)
    assert info.value.symbol == "GC=F"


def test_bad_yaml(tmp_path):
    cfg = write(tmp_path / "bad.yaml", "universes:\n  equity:\n    - path: [unclosed\n")
    with pytest.raises(DataValidationError) as info:
        CsvSource(str(cfg))
    assert info.value.rule == "config_error"
    assert str(cfg) in str(info.value) and info.value.row is not None
    assert f"row={info.value.row}" in str(info.value)


def test_unknown_config_key_names_line(tmp_path):
    cfg = config_for(
        tmp_path,
        """
        universes:
          equity:
            - path: px.csv
              layuot: wide
        """,
    )
    with pytest.raises(DataValidationError) as info:
        CsvSource(str(cfg))
    assert_error(info.value, "config_error", cfg, 3)
    assert "layuot" in str(info.value)


def test_factor_units_are_required(tmp_path):
    cfg = config_for(tmp_path, "market:\n  - path: ff.csv\n    series: {mkt_rf: Mkt-RF}\n")
    with pytest.raises(DataValidationError) as info:
        CsvSource(str(cfg))
    assert_error(info.value, "config_error", cfg, 2)


def test_unset_env_var_is_config_error(tmp_path, monkeypatch):
    monkeypatch.delenv("BP_TEST_UNSET_DIR", raising=False)
    cfg = config_for(tmp_path, "universes:\n  equity:\n    - path: ${BP_TEST_UNSET_DIR}/px.csv\n")
    with pytest.raises(DataValidationError) as info:
        CsvSource(str(cfg))
    assert info.value.rule == "config_error" and "BP_TEST_UNSET_DIR" in str(info.value)


def test_env_expansion_and_relative_paths(tmp_path, monkeypatch):
    write(tmp_path / "data" / "px.csv", GOOD)
    monkeypatch.setenv("BP_TEST_DIR", str(tmp_path / "data"))
    cfg = config_for(
        tmp_path / "conf",
        "universes:\n  equity:\n    - path: ${BP_TEST_DIR}/px.csv\n"
        "  crypto:\n    - path: ../data/${BP_TEST_MISSING:-px}.csv\n",
    )
    src = CsvSource(str(cfg))
    assert len(src.load_prices()) == 6
    assert len(src.load_prices(universe="crypto")) == 6  # relative to the YAML's folder
    monkeypatch.chdir(tmp_path)
    cwd_cfg = config_for(
        tmp_path,
        "paths_relative_to: cwd\nuniverses:\n  equity:\n    - path: data/px.csv\n",
        "c.yaml",
    )
    assert len(CsvSource(str(cwd_cfg)).load_prices()) == 6


def test_missing_file(tmp_path):
    cfg = config_for(tmp_path, "universes:\n  equity:\n    - path: nowhere.csv\n")
    with pytest.raises(DataValidationError) as info:
        CsvSource(str(cfg)).load_prices()
    assert info.value.rule == "missing_file" and "nowhere.csv" in str(info.value)


def test_universe_not_configured(tmp_path):
    src, _ = equity_source(tmp_path, GOOD)
    with pytest.raises(DataValidationError) as info:
        src.load_prices(universe="crypto")
    assert info.value.rule == "universe_not_configured" and "crypto" in str(info.value)


def test_wide_layout_and_all_nan_row(tmp_path):
    wide = """
    Date,AAA,BBB,CCC
    2020-01-02,1.0,,5
    2020-01-03,1.1,2.0,5.1
    2020-01-06,1.2,,5.2
    2020-01-07,1.3,2.2,
    """
    data = write(tmp_path / "wide.csv.gz", "")
    with gzip.open(data, "wt") as fh:
        fh.write(wide.replace("    ", "").lstrip("\n"))
    cfg = config_for(
        tmp_path, "universes:\n  equity:\n    - path: wide.csv.gz\n      layout: wide\n"
    )
    src = CsvSource(str(cfg))
    px = src.load_prices()
    assert len(px) == 9
    assert px.loc[px["symbol"] == "BBB", "date"].min() == pd.Timestamp("2020-01-03")
    assert src.describe()["files"][str(data)]["empty_cells_inside_ranges"] == 1
    with gzip.open(data, "wt") as fh:
        fh.write(
            wide.replace("    ", "").lstrip("\n").replace("2020-01-06,1.2,,5.2", "2020-01-06,,,")
        )
    os.utime(data, ns=(1, 10**18))  # make sure the cache sees a new mtime
    with pytest.raises(DataValidationError) as info:
        CsvSource(str(cfg)).load_prices()
    assert_error(info.value, "all_nan_day", data, 4)


def test_duplicates_across_files(tmp_path):
    write(tmp_path / "a.csv", GOOD)
    b = write(tmp_path / "b.csv", "date,symbol,close\n2020-01-09,AAA,1\n2020-01-06,BBB,2\n")
    cfg = config_for(tmp_path, "universes:\n  equity:\n    - path: a.csv\n    - path: b.csv\n")
    with pytest.raises(DataValidationError) as info:
        CsvSource(str(cfg)).load_prices()
    assert_error(info.value, "duplicate_row", b, 3)


def test_parquet_and_rename(tmp_path):
    frame = pd.DataFrame(
        {
            "Date": pd.to_datetime(["2020-01-02", "2020-01-03", "2020-01-02"]),
            "Ticker": ["brk.b", "brk.b", "aaa"],
            "Close": [1.0, 2.0, 3.0],
            "Adj Close": [0.9, 1.8, 3.0],
        }
    )
    frame.to_parquet(tmp_path / "px.parquet")
    cfg = config_for(
        tmp_path, "universes:\n  equity:\n    - path: px.parquet\n      rename: {BRK.B: BRK-B}\n"
    )
    px = CsvSource(str(cfg)).load_prices()
    assert sorted(px["symbol"].unique()) == ["AAA", "BRK-B"]
    assert px.loc[px["symbol"] == "BRK-B", "adj_close"].tolist() == [0.9, 1.8]
    bad = frame.assign(Close=[1.0, -2.0, 3.0])
    bad.to_parquet(tmp_path / "px.parquet")
    os.utime(tmp_path / "px.parquet", ns=(1, 2 * 10**18))
    with pytest.raises(DataValidationError) as info:
        CsvSource(str(cfg)).load_prices()
    assert_error(info.value, "non_positive_price", tmp_path / "px.parquet", 2)


FRENCH = (
    "This file was created by CMPT_ME_BEME_RETS using the 202408 CRSP database.\r\n"
    "The 1-month TBill rate data are from Ibbotson Associates.\r\n"
    "\r\n"
    ",Mkt-RF,SMB,HML,RF\r\n"
    "202401,    0.70,   -5.09,   -2.38,    0.47\r\n"
    "202402,    5.06,   -0.78,   -3.49,    0.42\r\n"
    "202403,    2.83,   -1.20,    4.19,  -99.99\r\n"
    "\r\n"
    " Annual Factors: January-December \r\n"
    ",Mkt-RF,SMB,HML,RF\r\n"
    "  2023,   21.68,   -6.00,  -13.70,    4.95\r\n"
    "\r\n"
    "Copyright 2024 Eugene F. Fama and Kenneth R. French\r\n"
)


def test_french_raw_parser(tmp_path):
    raw = tmp_path / "F-F_Research_Data_Factors.CSV"
    raw.write_bytes(FRENCH.encode())
    cfg = config_for(
        tmp_path,
        f"""
        monthly:
          - path: {raw.name}
            format: french
            series: {{mkt_rf: Mkt-RF, smb: SMB, hml: HML, rf: RF}}
        """,
    )
    m = CsvSource(str(cfg)).load_market_monthly()
    wide = m.pivot(index="month", columns="series", values="value")
    assert list(wide.index) == list(pd.to_datetime(["2024-01-01", "2024-02-01", "2024-03-01"]))
    assert wide.loc["2024-02-01", "mkt_rf"] == pytest.approx(0.0506)
    assert np.isnan(wide.loc["2024-03-01", "rf"])  # -99.99 is French's missing marker
    assert len(m) == 11  # the annual row 2023 is not read
    # windows on months are half-open too
    assert (
        CsvSource(str(cfg)).load_market_monthly("2024-02-01", "2024-03-01")["month"].nunique() == 1
    )


def test_french_raw_without_header(tmp_path):
    raw = write(tmp_path / "x.CSV", "just text\nno header here\n")
    cfg = config_for(
        tmp_path, f"market:\n  - path: {raw.name}\n    format: french\n    series: {{rf: RF}}\n"
    )
    with pytest.raises(DataValidationError) as info:
        CsvSource(str(cfg)).load_market()
    assert_error(info.value, "missing_column", raw, 1)


def test_market_level_must_be_positive(tmp_path):
    data = write(tmp_path / "idx.csv", "Date,Adj Close\n2020-01-02,3000\n2020-01-03,0\n")
    cfg = config_for(tmp_path, "market:\n  - path: idx.csv\n    series: {mkt_level: Adj Close}\n")
    with pytest.raises(DataValidationError) as info:
        CsvSource(str(cfg)).load_market()
    assert_error(info.value, "non_positive_price", data, 3)


def test_series_precedence_first_file_wins(tmp_path):
    write(tmp_path / "a.csv", FACTORS)
    write(tmp_path / "b.csv", FACTORS.replace("0.86", "9.99"))
    cfg = config_for(
        tmp_path,
        """
        market:
          - path: a.csv
            units: percent
            series: {mkt_rf: Mkt-RF}
          - path: b.csv
            units: percent
            series: {mkt_rf: Mkt-RF, smb: SMB}
        """,
    )
    src = CsvSource(str(cfg))
    m = src.load_market()
    assert m.loc[(m["series"] == "mkt_rf"), "value"].iloc[0] == pytest.approx(0.0086)
    assert set(m["series"]) == {"mkt_rf", "smb"}
    shadowed = src.describe()["market"]["shadowed"]
    assert shadowed == [
        {"series": "mkt_rf", "used": str(tmp_path / "a.csv"), "ignored": str(tmp_path / "b.csv")}
    ]


def test_each_file_is_parsed_once(tmp_path):
    src, data = equity_source(tmp_path, GOOD)
    cfg = src.config.path
    before = READS[str(data.resolve())]
    for _ in range(3):
        CsvSource(str(cfg)).load_prices()
        make_source("csv", str(cfg)).load_prices(symbols=["BBB"])
    assert READS[str(data.resolve())] - before <= 1


def test_market_levels_from_a_long_price_file(tmp_path):
    write(tmp_path / "xa.csv", WTI)
    cfg = config_for(
        tmp_path,
        """
        market:
          - path: xa.csv
            layout: long
            value: close
            allow_nonpositive: true
            series: {gold_level: GC=F, wti_level: CL=F}
        monthly:
          - path: xa.csv
            layout: long
            value: close
            allow_nonpositive: true
            series: {gold_level: GC=F}
        """,
    )
    src = CsvSource(str(cfg))
    m = src.load_market().pivot(index="date", columns="series", values="value")
    assert m.loc["2020-04-17", "gold_level"] == 1683 and m.loc["2020-04-20", "wti_level"] == -37.63
    mm = src.load_market_monthly()
    assert mm["month"].tolist() == [pd.Timestamp("2020-04-01")] and mm["value"].item() == 1694
    bad = config_for(
        tmp_path,
        "market:\n  - path: xa.csv\n    layout: long\n    allow_nonpositive: true\n"
        "    series: {x_level: NOPE}\n",
        "b.yaml",
    )
    with pytest.raises(DataValidationError) as info:
        CsvSource(str(bad)).load_market()
    assert info.value.rule == "unknown_ticker" and "NOPE" in str(info.value)


def test_make_source_kinds(tmp_path):
    assert make_source("embedded", "ignored.yaml").kind == "embedded"
    with pytest.raises(ValueError, match="unknown source kind"):
        make_source("bloomberg")
    with pytest.raises(DataValidationError) as info:
        make_source("csv", str(tmp_path / "absent.yaml"))
    assert info.value.rule == "config_error"
    # a csv config handed to yfinance falls back to the shipped ticker lists
    src, _ = equity_source(tmp_path, GOOD)
    yf = make_source("yfinance", str(src.config.path), download=lambda **kw: None)
    assert "AAPL" in yf.universes["equity"]
