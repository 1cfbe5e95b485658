"""``daily_betas``' fast path (``beta_tables.read_returns_wide``, ``Panel.from_wide``,
``estimate_arrow`` and ``warehouse.ArrowPiece``) against the long-frame path it replaced
(``.df()`` + ``factor_frame`` + ``Panel.build`` + ``estimate``): same panels, and the same
rows, values (NULLs included) and order in ``betas.daily``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from beta_pipeline.lib import beta_tables as bt
from beta_pipeline.lib import warehouse

READ_SQL = (
    "SELECT date, symbol, ret_excess, mkt_excess FROM returns.daily WHERE date < ? "
    "ORDER BY date, symbol"
)
# binary order differs from case-insensitive order; '.' and digits sort before letters
SYMBOLS = ["MSFT", "AAPL", "aapl", "BRK.B", "Z9", "ZZ", "A", "KO", "X1", "IBM"]
T_LEN = 330


def _long_returns(seed: int = 3) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Returns with late listings, delistings, gaps, NULL ret_excess and a date where the
    alphabetically first symbol is missing; and FF3 series with a gap."""
    rng = np.random.default_rng(seed)
    dates = pd.bdate_range("2016-01-04", periods=T_LEN)
    mkt = rng.normal(0.0003, 0.01, T_LEN)
    parts = []
    for i, sym in enumerate(SYMBOLS):
        beta = 0.5 + 0.15 * i
        ret = 0.0001 + beta * mkt + rng.normal(0.0, 0.004, T_LEN)
        keep = rng.random(T_LEN) > 0.03
        if i % 3 == 1:
            keep[: 40 + 11 * i] = False  # late listing
        if i % 4 == 2:
            keep[T_LEN - 25 * i :] = False  # delisting
        frame = pd.DataFrame({"date": dates, "symbol": sym, "ret_excess": ret,
                              "mkt_excess": mkt})[keep]
        parts.append(frame)
    returns = pd.concat(parts, ignore_index=True)
    returns.loc[returns.sample(frac=0.01, random_state=seed).index, "ret_excess"] = np.nan
    # on one date only the later symbols trade: the date's first row is not symbol 'A'
    returns = returns[~((returns["date"] == dates[100]) & (returns["symbol"] < "KO"))]
    returns["prev_date"] = pd.NaT
    returns["ret"] = returns["ret_excess"]
    returns["log_ret"] = np.log1p(returns["ret_excess"])
    series = {
        "mkt_rf": mkt, "smb": rng.normal(0, 0.005, T_LEN), "hml": rng.normal(0, 0.005, T_LEN)
    }
    market = pd.concat(
        [pd.DataFrame({"date": dates, "series": s, "value": v}) for s, v in series.items()],
        ignore_index=True,
    )
    market = market[~((market["series"] == "smb") & (market["date"] == dates[200]))]
    return returns, market


@pytest.fixture
def filled(tmp_path: Path) -> Path:
    path = tmp_path / "warehouse.duckdb"
    returns, market = _long_returns()
    lo, hi = pd.Timestamp("2000-01-01"), pd.Timestamp("2030-01-01")
    with warehouse.open_warehouse(path) as conn:
        warehouse.replace_window(conn, "returns.daily", returns, lo, hi)
        warehouse.replace_window(conn, "raw.market", market, lo, hi)
    return path


def _old_read(path: Path, end: pd.Timestamp) -> tuple[pd.DataFrame, pd.DataFrame]:
    with warehouse.open_warehouse(path, read_only=True) as conn:
        returns = conn.execute(READ_SQL, [end.date()]).df()
        market = warehouse.read_window(conn, "raw.market", None, end)
    returns["date"] = pd.to_datetime(returns["date"])
    return returns, market


def _specs() -> list[bt.EstimatorSpec]:
    fixed = {"ewm": {"half_life": 21.0}, "kalman": {"q": 1e-6, "h": 1.6e-5, "alpha": 0.0}}
    return [
        bt.EstimatorSpec(s.name, s.kind, {**s.params, **fixed.get(s.kind, {})}, s.single_factor)
        for s in bt.daily_specs((20, 60), 21, 15, 60, 60, True)
    ]


@pytest.mark.parametrize("end", ["2030-01-01", "2016-08-01"])
def test_wide_read_builds_the_same_panels(filled: Path, end: str):
    end_ts = pd.Timestamp(end)
    returns, market = _old_read(filled, end_ts)
    with warehouse.open_warehouse(filled, read_only=True) as conn:
        wide = bt.read_returns_wide(conn, end_ts)
    assert wide.rows == len(returns)
    assert list(wide.symbols) == sorted(set(returns["symbol"]))
    for model in ("capm", "ff3"):
        old_f = bt.factor_frame(model, returns, market)
        new_f = bt.factor_frame(model, wide.date_frame(), market)
        pd.testing.assert_frame_equal(old_f, new_f)
        old, new = bt.Panel.build(returns, old_f), bt.Panel.from_wide(wide, new_f)
        pd.testing.assert_index_equal(old.dates, new.dates)
        pd.testing.assert_index_equal(old.symbols, new.symbols)
        assert old.factors == new.factors
        np.testing.assert_array_equal(old.y, new.y)
        np.testing.assert_array_equal(old.x, new.x)
    # CAPM covers every return date: the panel shares the wide array (no copy)
    assert bt.Panel.from_wide(wide, bt.factor_frame("capm", wide.date_frame(), market)).y is wide.y


def test_wide_returns_market_is_each_dates_first_row():
    days = np.array([5, 5, 5, 3, 3, 9])
    codes = np.array([2, 0, 1, 1, 2, 2])
    ret = np.array([1.0, 2.0, np.nan, 4.0, 5.0, 6.0])
    mkt = np.array([0.2, 0.0, 0.1, 0.3, 0.4, np.nan])
    wide = bt.WideReturns.from_codes(days, codes, ret, mkt, ["a", "b", "c"])
    assert list(wide.dates) == list(pd.to_datetime(["1970-01-04", "1970-01-06", "1970-01-10"]))
    np.testing.assert_array_equal(wide.mkt, [0.3, 0.0, np.nan])
    np.testing.assert_array_equal(
        wide.y, [[np.nan, 4.0, 5.0], [2.0, np.nan, 1.0], [np.nan, np.nan, 6.0]]
    )


def _write(path: Path, pieces, start, end) -> tuple[int, pd.DataFrame]:
    with warehouse.open_warehouse(path) as conn:
        n = warehouse.replace_window_chunks(conn, "betas.daily", pieces, start, end)
        rows = conn.execute("SELECT * FROM betas.daily").df()  # insertion order
    return n, rows


@pytest.mark.parametrize("overlap", [True, False])
def test_estimate_arrow_writes_the_same_rows_as_the_long_frames(
    filled: Path, tmp_path: Path, overlap: bool
):
    start, end = pd.Timestamp("2016-03-01"), pd.Timestamp("2017-03-01")
    returns, market = _old_read(filled, end)
    with warehouse.open_warehouse(filled, read_only=True) as conn:
        wide = bt.read_returns_wide(conn, end)
    specs = _specs()

    def old_pieces():
        for model in ("capm", "ff3"):
            panel = bt.Panel.build(returns, bt.factor_frame(model, returns, market))
            yield from bt.estimate(panel, model, specs, start, end)

    written: list[warehouse.ArrowPiece] = []

    def new_pieces():
        for model in ("capm", "ff3"):
            panel = bt.Panel.from_wide(wide, bt.factor_frame(model, wide.date_frame(), market))
            for piece in bt.estimate_arrow(panel, model, specs, start, end):
                written.append(piece)
                yield piece

    n_old, old = _write(tmp_path / "old.duckdb", old_pieces(), start, end)
    with warehouse.open_warehouse(tmp_path / "new.duckdb") as conn:
        n_new = warehouse.replace_window_chunks(
            conn, "betas.daily", new_pieces(), start, end, overlap=overlap
        )
        new = conn.execute("SELECT * FROM betas.daily").df()
    assert n_new == n_old == len(old) > 0
    pd.testing.assert_frame_equal(old, new)
    assert new["r2"].isna().any()  # Kalman's R² is NaN -> NULL in both
    counts = {p.label: p.rows for p in written if p.rows}
    want = old.groupby(["model", "estimator"]).size()
    assert counts == {f"{m}/{e}": int(v) for (m, e), v in want.items()}
    assert "ff3/kalman" not in counts  # single-factor spec skipped for FF3
    assert set(old["factor"][old["model"] == "ff3"]) == {"mkt_rf", "smb", "hml"}


def test_arrow_piece_outside_the_window_rolls_back(filled: Path, tmp_path: Path):
    path = tmp_path / "w.duckdb"
    with warehouse.open_warehouse(filled, read_only=True) as conn:
        wide = bt.read_returns_wide(conn, pd.Timestamp("2030-01-01"))
    panel = bt.Panel.from_wide(wide, bt.factor_frame("capm", wide.date_frame(), None))
    spec = [s for s in _specs() if s.name == "ols_20"]
    start, end = pd.Timestamp("2016-03-01"), pd.Timestamp("2016-06-01")
    n, before = _write(path, bt.estimate_arrow(panel, "capm", spec, start, end), start, end)
    assert n == len(before) > 0
    assert before["date"].min() >= start and before["date"].max() < end
    # a piece reaching past the window is refused before any of it is made; nothing changes
    wider = bt.estimate_arrow(panel, "capm", spec, start, end + pd.Timedelta(days=30))
    with warehouse.open_warehouse(path) as conn, pytest.raises(ValueError, match="outside"):
        warehouse.replace_window_chunks(conn, "betas.daily", wider, start, end)
    with warehouse.open_warehouse(path, read_only=True) as conn:
        after = conn.execute("SELECT * FROM betas.daily").df()
    pd.testing.assert_frame_equal(before, after)
    # re-running replaces, never duplicates
    n2, again = _write(path, bt.estimate_arrow(panel, "capm", spec, start, end), start, end)
    assert n2 == n
    pd.testing.assert_frame_equal(before, again)


def test_empty_returns_give_no_pieces(tmp_path: Path):
    path = tmp_path / "w.duckdb"
    with warehouse.open_warehouse(path) as conn:
        wide = bt.read_returns_wide(conn, pd.Timestamp("2030-01-01"))
    assert wide.empty and wide.y.shape == (0, 0)
    factors = bt.factor_frame("capm", wide.date_frame(), None)
    panel = bt.Panel.from_wide(wide, factors)
    assert list(bt.estimate_arrow(panel, "capm", _specs(), pd.Timestamp("2016-01-01"),
                                  pd.Timestamp("2017-01-01"))) == []


def test_read_returns_wide_leaves_no_transaction_open(filled: Path):
    """The symbol list and the codes are read in one transaction (one snapshot), which is
    closed afterwards: the connection can start its own."""
    with warehouse.open_warehouse(filled, read_only=True) as conn:
        bt.read_returns_wide(conn, pd.Timestamp("2030-01-01"))
        conn.execute("BEGIN TRANSACTION")  # fails inside an open transaction
        conn.execute("COMMIT")
