"""The ``embedded`` source (default): real data shipped inside installed PyPI packages.

Nothing is downloaded: every frame is read from a CSV inside an installed wheel
(``skfolio/datasets/data/*.csv.gz`` through ``importlib.resources``; ``arch/data/*/*.csv.gz``).
skfolio's *other* loaders (FTSE 100, NASDAQ, ...) download and are never called.

Coverage (skfolio 1.12, arch 7/8):

================  ==============================================  ========================
table / series    from                                            coverage
================  ==============================================  ========================
prices (equity)   ``skfolio.datasets.load_sp500_dataset()``       20 stocks AAPL AMD BAC
                  daily adjusted closes (no OHLC or volume:       BBY CVX GE HD JNJ JPM KO
                  open/high/low/volume are NaN, close =           LLY MRK MSFT PEP PFE PG
                  adj_close)                                      RRC UNH WMT XOM,
                                                                  1990-01-02 .. 2022-12-28,
                                                                  8,313 days: every XNYS
                                                                  session, none else
mkt_level         ``skfolio.datasets.load_sp500_index()``         1990-01-02 .. 2022-12-28
mtum/qual/size/   ``skfolio.datasets.load_factors_dataset()``     2014-01-02 .. 2022-12-28
usmv/vlue_level   (iShares MSCI USA factor ETFs, adjusted)
nasdaq_level      ``arch.data.nasdaq.load()`` Adj Close           1999-01-04 .. 2018-12-31
wti_level         ``arch.data.wti.load()`` (FRED DCOILWTICO spot;  1986-01-02 .. 2019-01-03
                  290 empty holiday rows dropped)
rf (daily)        derived from the monthly RF below (see next)    every XNYS session
                                                                  1990-01-02 .. 2022-12-30
monthly mkt_rf,   ``arch/data/frenchdata/frenchdata.csv.gz`` (Ken  1926-07 .. 2018-11
smb, hml, rf      French's F-F_Research_Data_Factors, percent ->
                  decimal). Read directly: ``arch.data.frenchdata.load()`` parses the
                  YYYYMM dates as nanoseconds since 1970.
crypto,           not shipped by any PyPI package:                raises
cross_asset       ``universe_not_configured``                     universe_not_configured
================  ==============================================  ========================

Daily risk-free rate: the month's RF (decimal, a simple return over the month) is spread
over the month's XNYS sessions (``lib.calendar``: no rf on a holiday, which is no partition)
with compounding, ``rf_d = (1 + rf_m) ** (1 / n_sessions) - 1``, so compounding rf_d over the
month's trading days gives rf_m exactly, as Ken French builds his daily RF. The monthly RF
ends in 2018-11 while prices run to 2022-12: for 2018-12 .. 2022-12 the last monthly value
(0.18 %, i.e. 2018-11) is carried forward. ``describe()["market"]["rf_carried_forward"]``
flags those months; real T-bill rates were ~0.2 %/month in 2019, ~0 in 2020-21 and rose
through 2022, so excess returns in those months are approximate. Use the ``csv`` source
with Ken French's files for exact rf.

``linearmodels.datasets`` (not installed) ships older French data (to 2013) and adds
nothing here.
"""

from __future__ import annotations

from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from beta_pipeline.lib import calendar
from beta_pipeline.lib.sources.base import (
    BaseSource,
    canonical_market,
    canonical_prices,
    check_universe,
    coverage_market,
    coverage_prices,
    not_configured,
    security_frame,
    unconfigured,
)
from beta_pipeline.lib.sources.cache import cached_value
from beta_pipeline.lib.sources.securities import lookup_securities

SOURCE = "embedded"
ETF_LEVELS = {
    "MTUM": "mtum_level",
    "QUAL": "qual_level",
    "SIZE": "size_level",
    "USMV": "usmv_level",
    "VLUE": "vlue_level",
}
_HINTS = {
    "crypto": "no PyPI package ships crypto prices; set BETA_PIPELINE_SOURCE=csv with a config "
    "listing crypto files (e.g. beta_pipeline/configs/shared_data.yaml), or yfinance",
    "cross_asset": "no PyPI package ships cross-asset (FX, gold, futures, ETF) prices; set "
    "BETA_PIPELINE_SOURCE=csv with a config listing cross_asset files (e.g. "
    "beta_pipeline/configs/shared_data.yaml), or yfinance",
}


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:  # pragma: no cover
        return "unknown"


def _key(name: str) -> tuple[str, ...]:
    return ("embedded", name, _version("skfolio"), _version("arch"))


def _sp500_stocks() -> pd.DataFrame:
    from skfolio.datasets import load_sp500_dataset

    return load_sp500_dataset()


def _sp500_index() -> pd.DataFrame:
    from skfolio.datasets import load_sp500_index

    return load_sp500_index()


def _factor_etfs() -> pd.DataFrame:
    from skfolio.datasets import load_factors_dataset

    return load_factors_dataset()


def french_monthly_path() -> Path:
    import arch.data.frenchdata as fd

    return Path(fd.__file__).resolve().parent / "frenchdata.csv.gz"


def _french_monthly() -> pd.DataFrame:
    """arch's Fama–French monthly file: Date (YYYYMM), Mkt-RF, SMB, HML, RF in percent."""
    raw = pd.read_csv(french_monthly_path(), dtype={"Date": str})
    month = pd.to_datetime(raw["Date"].str.strip(), format="%Y%m")
    out = pd.DataFrame({"month": month})
    for col, name in (("Mkt-RF", "mkt_rf"), ("SMB", "smb"), ("HML", "hml"), ("RF", "rf")):
        out[name] = pd.to_numeric(raw[col], errors="raise") / 100.0
    return out


def _arch_level(module: str, column: str) -> pd.Series:
    import importlib

    frame = importlib.import_module(f"arch.data.{module}").load()
    s = frame[column].astype("float64").dropna()
    s.index = pd.DatetimeIndex(s.index).normalize()
    return s


def daily_rf_from_monthly(
    monthly_rf: pd.Series, start: pd.Timestamp, end: pd.Timestamp
) -> tuple[pd.DataFrame, list[str]]:
    """Spread monthly simple rates over each month's XNYS sessions in [start, end].

    ``monthly_rf`` is indexed by month start. Months after its last one carry its last value
    forward; returns the daily frame (date, value) and the carried-forward months.
    """
    days = calendar.sessions(start, end)
    months = days.to_period("M").to_timestamp()
    known = monthly_rf.sort_index()
    rate = known.reindex(months.unique())
    carried = rate.index[rate.isna() & (rate.index > known.index.max())]
    rate = rate.ffill()
    n_days = pd.Series(1, index=days).groupby(months).transform("size").to_numpy()
    rm = rate.reindex(months).to_numpy()
    daily = np.power(1.0 + rm, 1.0 / n_days) - 1.0
    frame = pd.DataFrame({"date": days, "value": daily}).dropna()
    return frame, [str(m.date())[:7] for m in carried]


class EmbeddedSource(BaseSource):
    """Offline data from skfolio and arch (see module docstring for coverage)."""

    kind = "embedded"

    def _prices(self, universe: str) -> pd.DataFrame:
        check_universe(universe)
        if universe != "equity":
            raise not_configured(universe, self.kind, _HINTS[universe])
        return cached_value(_key("prices"), self._build_prices)

    @staticmethod
    def _build_prices() -> pd.DataFrame:
        wide = _sp500_stocks()
        wide.index = pd.DatetimeIndex(wide.index).normalize()
        long = wide.rename_axis("date").rename_axis("symbol", axis=1).stack().rename("adj_close")
        frame = long.reset_index()
        frame["symbol"] = frame["symbol"].astype(str).str.upper()
        frame["close"] = frame["adj_close"]
        frame["source"] = SOURCE
        return canonical_prices(frame)

    def _market(self) -> pd.DataFrame:
        return cached_value(_key("market"), self._build_market)[0]

    def _rf_info(self) -> list[str]:
        return cached_value(_key("market"), self._build_market)[1]

    def _build_market(self) -> tuple[pd.DataFrame, list[str]]:
        idx = _sp500_index()["SP500"].astype("float64")
        idx.index = pd.DatetimeIndex(idx.index).normalize()
        parts = [pd.DataFrame({"date": idx.index, "series": "mkt_level", "value": idx.values})]
        etfs = _factor_etfs()
        etfs.index = pd.DatetimeIndex(etfs.index).normalize()
        for col, name in ETF_LEVELS.items():
            s = etfs[col].dropna()
            parts.append(pd.DataFrame({"date": s.index, "series": name, "value": s.values}))
        for module, column, name in (
            ("nasdaq", "Adj Close", "nasdaq_level"),
            ("wti", "DCOILWTICO", "wti_level"),
        ):
            s = _arch_level(module, column)
            parts.append(pd.DataFrame({"date": s.index, "series": name, "value": s.values}))
        ff = self._monthly_wide()
        start = idx.index.min().to_period("M").to_timestamp()
        end = idx.index.max().to_period("M").to_timestamp(how="end").normalize()
        rf, carried = daily_rf_from_monthly(ff.set_index("month")["rf"], start, end)
        parts.append(rf.assign(series="rf"))
        frame = pd.concat(parts, ignore_index=True)
        return canonical_market(frame), carried

    def _monthly_wide(self) -> pd.DataFrame:
        return cached_value(_key("ff_monthly"), _french_monthly)

    def _market_monthly(self) -> pd.DataFrame:
        def build() -> pd.DataFrame:
            wide = self._monthly_wide()
            long = wide.melt(id_vars="month", var_name="series", value_name="value")
            return canonical_market(long, monthly=True)

        return cached_value(_key("market_monthly"), build)

    def securities(self) -> pd.DataFrame:
        symbols = sorted(self._prices("equity")["symbol"].unique())
        return security_frame(lookup_securities(symbols, "equity", SOURCE))

    def describe(self) -> dict[str, Any]:
        carried = self._rf_info()
        return {
            "kind": self.kind,
            "packages": {"skfolio": _version("skfolio"), "arch": _version("arch")},
            "prices": {
                "equity": {
                    "configured": True,
                    "from": "skfolio.datasets.load_sp500_dataset (daily adjusted closes)",
                    "fields": "adj_close only; close = adj_close; open/high/low/volume NaN",
                    **coverage_prices(self._prices("equity"), exchange_calendar=True),
                },
                "crypto": unconfigured(hint=_HINTS["crypto"]),
                "cross_asset": unconfigured(hint=_HINTS["cross_asset"]),
            },
            "market": {
                **coverage_market(self._market()),
                "from": {
                    "mkt_level": "skfolio.datasets.load_sp500_index",
                    **{
                        v: f"skfolio.datasets.load_factors_dataset[{k}]"
                        for k, v in ETF_LEVELS.items()
                    },
                    "nasdaq_level": "arch.data.nasdaq (Adj Close)",
                    "wti_level": "arch.data.wti (FRED DCOILWTICO)",
                    "rf": "monthly RF of arch/data/frenchdata spread over XNYS sessions: "
                    "(1 + rf_m) ** (1 / n_sessions) - 1",
                },
                "rf_carried_forward": {
                    "months": carried,
                    "first": carried[0] if carried else None,
                    "last": carried[-1] if carried else None,
                    "value_monthly": float(self._monthly_wide()["rf"].iloc[-1]),
                    "note": "monthly RF ends 2018-11; later months repeat the last value",
                },
            },
            "market_monthly": {
                **coverage_market(self._market_monthly(), monthly=True),
                "from": "arch/data/frenchdata/frenchdata.csv.gz (Ken French, percent -> decimal)",
            },
        }
