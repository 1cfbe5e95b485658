"""Every file of shared/data read through the shipped configs (skipped when shared/data is absent).

Parsed files are cached per process, so each large file is read once for the whole module.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from beta_pipeline.lib.errors import DataValidationError
from beta_pipeline.lib.sources import CsvSource, make_source
from beta_pipeline.lib.sources.cache import READS
from beta_pipeline_tests.support.sources import (
    assert_error,
    config_for,
    require_shared_data,
)

T = pd.Timestamp


@pytest.fixture(autouse=True)
def _default_config(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BETA_PIPELINE_CSV_CONFIG", raising=False)


@pytest.fixture
def data_dir(monkeypatch: pytest.MonkeyPatch) -> Path:
    return require_shared_data(monkeypatch)


@pytest.fixture
def src(data_dir: Path) -> CsvSource:
    return CsvSource()  # default: the shipped shared_data.yaml


def test_default_config_is_shared_data(src: CsvSource, monkeypatch):
    assert src.config.path.name == "shared_data.yaml"
    monkeypatch.setenv("BETA_PIPELINE_SOURCE", "csv")
    assert make_source().config.path.name == "shared_data.yaml"


def test_all_stocks_5yr_long(src: CsvSource):
    px = src.load_prices()
    assert len(px) == 619_040
    assert px["symbol"].nunique() == 505
    assert px["date"].min() == T("2013-02-08") and px["date"].max() == T("2018-02-07")
    assert px["date"].nunique() == 1259
    days = px.groupby("symbol").size()
    assert (days == 1259).sum() == 470
    assert (
        days["APTV"] == 44 and days["DWDP"] == 109
    )  # listed mid-range (the data README says 110; the file has 109)
    assert (px["adj_close"] == px["close"]).all()  # the Kaggle file has no adjusted close
    assert int(px["open"].isna().sum()) == 11 and int(px["high"].isna().sum()) == 8
    assert (px["source"] == "csv:all_stocks_5yr.csv.gz").all()
    first = px.iloc[0]
    assert (first["date"], first["symbol"], first["close"]) == (T("2013-02-08"), "A", 45.08)
    aal = px[(px["symbol"] == "AAL") & (px["date"] == T("2013-02-08"))].iloc[0]
    assert (aal["open"], aal["high"], aal["low"], aal["close"], aal["volume"]) == (
        15.07,
        15.12,
        14.63,
        14.75,
        8_407_500.0,
    )
    assert list(px.columns)[-1] == "source" and px["date"].is_monotonic_increasing


def test_wide_close_equals_long(src: CsvSource, data_dir: Path):
    wide = make_source("csv", "shared_data_wide.yaml").load_prices()
    assert len(wide) == 619_040 and wide["symbol"].nunique() == 505
    assert wide["open"].isna().all() and (wide["adj_close"] == wide["close"]).all()
    long = src.load_prices()
    pd.testing.assert_series_equal(
        wide.set_index(["date", "symbol"])["close"],
        long.set_index(["date", "symbol"])["close"],
    )


def test_crypto(src: CsvSource):
    px = src.load_prices(universe="crypto")
    assert len(px) == 12_642
    g = px.groupby("symbol")["date"].agg(["min", "max", "size"])
    assert set(g.index) == {"BTC-USD", "ETH-USD", "LTC-USD", "BCH-USD"}
    assert g.loc["BTC-USD", "min"] == T("2014-09-17") and g.loc["LTC-USD", "min"] == T("2014-09-17")
    assert g.loc["ETH-USD", "min"] == T("2017-11-09") and g.loc["BCH-USD", "min"] == T("2017-11-09")
    assert (g["max"] == T("2024-12-07")).all()
    assert g.loc["BTC-USD", "size"] == 3735 and g.loc["ETH-USD", "size"] == 2586
    assert (px["date"].dt.dayofweek >= 5).any()  # weekends are kept (7-day market)


def test_cross_asset_and_the_negative_wti_close(src: CsvSource):
    px = src.load_prices(universe="cross_asset")
    assert len(px) == 59_343 and px["symbol"].nunique() == 8
    g = px.groupby("symbol")["date"].agg(["min", "max"])
    assert g.loc["DX-Y.NYB", "min"] == T("1971-01-04") and g.loc["DX-Y.NYB", "max"] == T(
        "2025-08-12"
    )
    assert g.loc["SPY", "min"] == T("1993-01-29") and g.loc["SPY", "max"] == T("2026-02-23")
    assert g.loc["EURUSD=X", "min"] == T("2003-12-01") and g.loc["CL=F", "min"] == T("2000-08-23")
    wti = px[(px["symbol"] == "CL=F") & (px["date"] == T("2020-04-20"))]
    assert wti["close"].item() == pytest.approx(-37.63)
    others = px[px["symbol"] != "CL=F"]
    assert (others[["open", "high", "low", "close"]] > 0).all().all()


def test_negative_wti_close_fails_without_allowance(data_dir: Path, tmp_path: Path):
    cfg = config_for(
        tmp_path,
        f"""
        extends: shared_data.yaml
        universes:
          cross_asset:
            - path: {data_dir}/cross_asset_daily.csv.gz
              date_format: "%Y-%m-%d"
        """,
    )
    with pytest.raises(DataValidationError) as info:
        CsvSource(str(cfg)).load_prices(universe="cross_asset")
    err = info.value
    assert err.rule == "non_positive_price" and err.symbol == "CL=F"
    assert str(data_dir / "cross_asset_daily.csv.gz") in str(err) and err.row is not None
    # the offending line is a CL=F row of 2020-04-20 or 21 (its low went negative too)
    assert err.date in {"2020-04-20", "2020-04-21"}


def test_daily_market_series(src: CsvSource):
    m = src.load_market()
    cov = m.groupby("series")["date"].agg(["min", "max", "size"])
    assert set(cov.index) == {"mkt_level", "mkt_rf", "smb", "hml", "rmw", "cma", "mom", "rf"}
    assert cov.loc["mkt_rf", "size"] == 25_901 and cov.loc["mkt_rf", "min"] == T("1926-07-01")
    assert cov.loc["rmw", "size"] == 15_481 and cov.loc["rmw", "min"] == T("1963-07-01")
    assert cov.loc["mom", "size"] == 25_800 and cov.loc["mom", "min"] == T("1926-11-03")
    assert cov.loc["mkt_level", "size"] == 24_114
    assert cov.loc["mkt_level", "min"] == T("1927-12-30")
    assert cov.loc["mkt_level", "max"] == T("2023-12-28")
    assert (
        cov.loc[["mkt_rf", "smb", "hml", "rmw", "cma", "mom", "rf"], "max"] == T("2024-12-31")
    ).all()
    day = m[m["date"] == T("2013-02-11")].set_index("series")["value"]
    # decimals, not percent: Mkt-RF -0.08 % on 2013-02-11
    assert day["mkt_rf"] == pytest.approx(-0.0008, abs=1e-12)
    assert day["hml"] == pytest.approx(0.0038, abs=1e-12)
    assert day["rf"] == 0.0
    assert day["mkt_level"] == pytest.approx(1517.01001)
    assert m.loc[m["series"] != "mkt_level", "value"].abs().median() < 0.02


def test_smb_comes_from_the_three_factor_file(src: CsvSource, data_dir: Path):
    m = src.load_market("2024-12-30", "2025-01-01")
    smb = m[m["series"] == "smb"].set_index("date")["value"]
    assert smb[T("2024-12-30")] == pytest.approx(0.0012)  # ff3; ff5 says 0.24 %
    info = src.describe()["market"]["series_files"]
    assert info["smb"].endswith("ff3_daily.csv.gz") and info["rmw"].endswith("ff5_daily.csv.gz")


def test_monthly_factors(src: CsvSource):
    mm = src.load_market_monthly()
    cov = mm.groupby("series")["month"].agg(["min", "max", "size"])
    assert cov.loc["mkt_rf", "size"] == 1178 and cov.loc["rmw", "size"] == 734
    assert cov.loc["mkt_rf", "min"] == T("1926-07-01") and cov.loc["cma", "min"] == T("1963-07-01")
    assert (cov["max"] == T("2024-08-01")).all()
    aug = mm[mm["month"] == T("2024-08-01")].set_index("series")["value"]
    assert aug["mkt_rf"] == pytest.approx(0.0161) and aug["rf"] == pytest.approx(0.0048)
    # a window on months: [2024-07-15, 2024-09-01) holds August only
    assert mm.pipe(lambda _: src.load_market_monthly("2024-07-15", "2024-09-01"))[
        "month"
    ].unique().tolist() == [T("2024-08-01")]


def _french_config(tmp_path: Path, data_dir: Path) -> Path:
    raw = data_dir / "french_raw"
    return config_for(
        tmp_path,
        f"""
        market:
          - path: {raw}/F-F_Research_Data_Factors_daily_202412.CSV.gz
            format: french
            series: {{mkt_rf: Mkt-RF, smb: SMB, hml: HML, rf: RF}}
          - path: {raw}/F-F_Research_Data_5_Factors_2x3_daily_202412.CSV.gz
            format: french
            series: {{mkt_rf5: Mkt-RF, smb5: SMB, hml5: HML, rmw: RMW, cma: CMA, rf5: RF}}
        monthly:
          - path: {raw}/F-F_Research_Data_5_Factors_2x3_202408.CSV.gz
            format: french
            series: {{mkt_rf: Mkt-RF, smb: SMB, hml: HML, rmw: RMW, cma: CMA, rf: RF}}
        """,
        name="french.yaml",
    )


def _plain_config(tmp_path: Path, data_dir: Path) -> Path:
    return config_for(
        tmp_path,
        f"""
        market:
          - path: {data_dir}/ff3_daily.csv.gz
            units: percent
            series: {{mkt_rf: Mkt-RF, smb: SMB, hml: HML, rf: RF}}
          - path: {data_dir}/ff5_daily.csv.gz
            units: percent
            series: {{mkt_rf5: Mkt-RF, smb5: SMB, hml5: HML, rmw: RMW, cma: CMA, rf5: RF}}
        monthly:
          - path: {data_dir}/ff5_monthly.csv
            date_format: "%Y-%m"
            units: percent
            series: {{mkt_rf: Mkt-RF, smb: SMB, hml: HML, rmw: RMW, cma: CMA, rf: RF}}
        """,
        name="plain.yaml",
    )


def test_french_raw_files_equal_the_preparsed_files(data_dir: Path, tmp_path: Path):
    raw = CsvSource(str(_french_config(tmp_path, data_dir)))
    plain = CsvSource(str(_plain_config(tmp_path, data_dir)))
    for kind in ("daily", "monthly"):
        key = "date" if kind == "daily" else "month"
        a = (raw.load_market() if kind == "daily" else raw.load_market_monthly()).pivot(
            index=key, columns="series", values="value"
        )
        b = (plain.load_market() if kind == "daily" else plain.load_market_monthly()).pivot(
            index=key, columns="series", values="value"
        )
        assert sorted(a.columns) == sorted(b.columns)
        common = a.index.intersection(b.index)
        assert len(common) == (25_901 if kind == "daily" else 734)
        diff = (a.loc[common, b.columns] - b.loc[common]).abs().max().max()
        assert diff <= 1e-9, (kind, diff)
    # the shipped raw-format config reads the same files and yields the same canonical series
    shipped = make_source("csv", "shared_data_french_raw.yaml")
    s = shipped.load_market("2013-01-01", "2014-01-01").pivot(
        index="date", columns="series", values="value"
    )
    p = (
        CsvSource()
        .load_market("2013-01-01", "2014-01-01")
        .pivot(index="date", columns="series", values="value")
    )
    assert np.allclose(s[p.columns].to_numpy(), p.to_numpy(), atol=1e-9, equal_nan=True)
    assert len(shipped.load_market_monthly()) == 734 * 6


def test_describe_and_read_once(src: CsvSource, data_dir: Path):
    d = src.describe()
    assert d["prices"]["equity"]["n_symbols"] == 505
    assert d["prices"]["crypto"]["first_date"] == "2014-09-17"
    assert d["prices"]["cross_asset"]["last_date"] == "2026-02-23"
    assert d["market"]["series"]["mkt_level"]["last"] == "2023-12-28"
    assert d["market_monthly"]["series"]["rmw"]["first"] == "1963-07-01"
    assert d["files"][str(data_dir / "all_stocks_5yr.csv.gz")]["rows_read"] == 619_040
    # many sources and loads in this module, one parse per file (and parse spec)
    for name in ("all_stocks_5yr.csv.gz", "crypto_daily.csv.gz", "gspc_daily.csv.gz"):
        assert READS[str(data_dir / name)] == 1, name


def test_securities(src: CsvSource):
    sec = src.securities()
    assert list(sec.columns) == ["symbol", "name", "sector", "asset_class", "source"]
    eq = sec[sec["asset_class"] == "equity"]
    assert len(eq) == 505 and eq["sector"].notna().all()
    assert sec.set_index("symbol").loc["AAPL", "sector"] == "Information Technology"
    assert sec.set_index("symbol").loc["BTC-USD", "asset_class"] == "crypto"
    assert sec.set_index("symbol").loc["CL=F", "asset_class"] == "commodity"


def test_missing_data_dir_is_reported(monkeypatch, tmp_path):
    monkeypatch.setenv("BETA_PIPELINE_DATA_DIR", str(tmp_path / "nothing"))
    with pytest.raises(DataValidationError) as info:
        CsvSource().load_prices()
    assert info.value.rule == "missing_file" and "BETA_PIPELINE_DATA_DIR" in str(info.value)


def test_row_numbers_are_file_lines(data_dir: Path, tmp_path: Path):
    """An error in a big real file names the physical line (header = line 1)."""
    text = (data_dir / "ff3_monthly.csv").read_text().splitlines()
    text[10] = text[10].replace(",", ",x", 1)  # line 11 -> non-numeric Mkt-RF
    bad = tmp_path / "ff3_monthly_bad.csv"
    bad.write_text("\n".join(text) + "\n")
    cfg = config_for(
        tmp_path,
        f"""
        monthly:
          - path: {bad}
            date_format: "%Y-%m"
            units: percent
            series: {{mkt_rf: Mkt-RF}}
        """,
    )
    with pytest.raises(DataValidationError) as info:
        CsvSource(str(cfg)).load_market_monthly()
    assert_error(info.value, "non_numeric", bad, 11)


def test_default_data_dir_is_relative_to_the_working_directory(monkeypatch, tmp_path):
    repo = Path(__file__).resolve().parents[1]
    if not (repo.parent / "shared" / "data" / "crypto_daily.csv.gz").is_file():
        pytest.skip("shared/ is not beside the repository")
    monkeypatch.delenv("BETA_PIPELINE_DATA_DIR", raising=False)
    monkeypatch.chdir(repo)
    spec = CsvSource().config.universes["crypto"][0]
    expected = (repo.parent / "shared" / "data" / "crypto_daily.csv.gz").resolve()
    assert spec.path.resolve() == expected
    monkeypatch.chdir(tmp_path)  # elsewhere, ../shared/data does not exist
    with pytest.raises(DataValidationError) as info:
        CsvSource().load_prices(universe="crypto")
    assert info.value.rule == "missing_file"
