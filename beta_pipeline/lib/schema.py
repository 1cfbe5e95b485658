"""Canonical in-memory frames shared by sources, returns, quality checks and the warehouse.

All dates are timezone-naive ``datetime64[ns]`` normalised to midnight; all returns and
factor values are decimals (0.01 == 1 %), never percent.
"""

from __future__ import annotations

PRICE_COLUMNS: tuple[str, ...] = (
    "date",  # trading day
    "symbol",  # ticker as given by the source (upper case)
    "open",
    "high",
    "low",
    "close",  # raw close
    "adj_close",  # split/dividend adjusted close; equals close when the source has no adjustment
    "volume",
    "source",  # name of the source ("embedded", "csv:<file>", "yfinance")
)

# raw.market: long format (date, series, value). Series naming convention:
#   *_level   index or ETF levels (e.g. mkt_level = market index close)
#   rf        risk-free simple return per period, decimal
#   mkt_rf, smb, hml, rmw, cma, mom   factor returns, decimal
MARKET_COLUMNS: tuple[str, ...] = ("date", "series", "value")
MONTHLY_MARKET_COLUMNS: tuple[str, ...] = ("month", "series", "value")

SECURITY_COLUMNS: tuple[str, ...] = ("symbol", "name", "sector", "asset_class", "source")

DAILY_RETURN_COLUMNS: tuple[str, ...] = (
    "date",
    "symbol",
    "prev_date",  # date of the previous price the return is measured from
    "ret",  # simple return of adj_close
    "log_ret",
    "ret_excess",  # ret - rf
    "mkt_excess",  # market excess return on the same day
)
MONTHLY_RETURN_COLUMNS: tuple[str, ...] = (
    "month",  # first day of the month
    "symbol",
    "ret",
    "log_ret",
    "ret_excess",
    "mkt_excess",
    "n_days",  # daily returns compounded into the month
)

# Well-known series names in raw.market
MARKET_LEVEL = "mkt_level"
RISK_FREE = "rf"
FACTOR_SERIES: tuple[str, ...] = ("mkt_rf", "smb", "hml", "rmw", "cma", "mom")
