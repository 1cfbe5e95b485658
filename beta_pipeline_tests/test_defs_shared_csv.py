"""daily_job on slices of the real shared/data files through the csv source: the known
one-day bad prints of the Kaggle S&P 500 file are flagged by returns_suspicious_moves,
while every error-severity check passes. Skipped when ../shared/data is absent."""

from __future__ import annotations

import re
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from beta_pipeline_tests.support.defs import (
    build,
    evaluations,
    meta_text,
    query,
    run,
    write_shared_slices,
)
from beta_pipeline_tests.support.paths import shared_data_dir

DATA = shared_data_dir()
FILES = ("all_stocks_5yr.csv.gz", "gspc_daily.csv.gz", "ff3_daily.csv.gz")
pytestmark = pytest.mark.skipif(
    DATA is None or not all((DATA / f).is_file() for f in FILES),
    reason="../shared/data (all_stocks_5yr, gspc_daily, ff3_daily) is not beside the repo",
)

#: the names with known bad prints plus others, 25 in all
SYMBOLS = (
    "O", "LNT", "EFX", "FLR", "MPC", "MRO", "NWL", "COP", "MRK",
    "AAPL", "MSFT", "JPM", "XOM", "KO", "PG", "JNJ", "WMT", "GE",
    "PFE", "T", "VZ", "INTC", "CSCO", "HD", "BAC",
)  # fmt: skip
#: slices of the files written to the temporary source (inclusive)
SLICES = (
    ("2013-11-01", "2014-01-31"),
    ("2016-04-15", "2016-06-30"),
    ("2017-08-01", "2017-10-31"),
)


@pytest.fixture(scope="module")
def slice_config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The 25 symbols, ^GSPC and the daily Fama-French factors over the slices, as tmp CSVs
    in the files' own layouts, and a YAML config of the csv source reading them."""
    assert DATA is not None
    folder = tmp_path_factory.mktemp("shared_slice")
    config = write_shared_slices(DATA, folder, SLICES, SYMBOLS)
    written = pd.read_csv(folder / "stocks.csv", usecols=["Name"])
    assert set(written["Name"]) == set(SYMBOLS)
    return config


def _flagged(preview: str) -> set[tuple[str, str]]:
    """(symbol, date) of the offending rows in a check's Markdown preview."""
    out = set()
    for line in preview.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 2 and re.fullmatch(r"\d{4}-\d{2}-\d{2}", cells[1]):
            out.add((cells[0], cells[1]))
    return out


@pytest.mark.parametrize(
    "first,last,date,symbols,min_names",
    [
        ("2013-12-02", "2013-12-31", "2013-12-20", {"O"}, 1),
        ("2016-05-16", "2016-05-27", "2016-05-19", {"LNT"}, 1),
        ("2017-08-15", "2017-10-13", "2017-09-14", {"EFX", "FLR", "MPC", "MRO", "NWL"}, 5),
    ],
    ids=["O-2013-12-20", "LNT-2016-05-19", "2017-09-14"],
)
def test_known_bad_prints_are_flagged(
    slice_config: Path,
    warehouse_path: Path,
    tmp_path: Path,
    first: str,
    last: str,
    date: str,
    symbols: set[str],
    min_names: int,
) -> None:
    defs = build(warehouse_path, tmp_path, kind="csv", config=slice_config)
    result = run(defs, "daily_job", first, last)
    assert result.success
    n_prices = query(warehouse_path, "SELECT count(DISTINCT symbol) AS n FROM raw.prices")
    assert n_prices["n"].iloc[0] == len(SYMBOLS)
    market = query(warehouse_path, "SELECT DISTINCT series FROM raw.market")
    assert {"mkt_level", "mkt_rf", "rf"} <= set(market["series"])

    evs = evaluations(result)
    errors = {n: ev for n, ev in evs.items() if ev.severity == dg.AssetCheckSeverity.ERROR}
    assert len(errors) >= 7
    assert all(ev.passed for ev in errors.values()), {
        n: meta_text(ev, "details") for n, ev in errors.items() if not ev.passed
    }

    moves = evs["returns_suspicious_moves"]
    assert not moves.passed
    assert moves.severity == dg.AssetCheckSeverity.WARN
    flagged = _flagged(meta_text(moves, "preview"))
    on_date = {s for s, d in flagged if d == date}
    assert symbols <= on_date, flagged
    assert len(on_date) >= min_names

    recorded = query(
        warehouse_path,
        "SELECT partition, passed, severity, observed, details FROM quality.check_results "
        "WHERE check_name = 'returns_suspicious_moves'",
    )
    assert len(recorded) == 1
    row = recorded.iloc[0]
    assert row["partition"] == f"{first}..{last}"
    assert not row["passed"] and row["severity"] == "warn"
    assert row["observed"] >= 2 * min_names  # the jump and the reverting day
    found = re.search(r"in (\d+) symbol\(s\)", row["details"])
    assert found and int(found.group(1)) >= min_names, row["details"]
    if min_names == 1:
        (symbol,) = symbols
        assert f"first {symbol} {date}" in row["details"], row["details"]
    # the bad print itself is in returns.daily (flagged, not dropped)
    bad = query(
        warehouse_path,
        "SELECT symbol, ret FROM returns.daily WHERE date = ?",
        [pd.Timestamp(date).date()],
    ).set_index("symbol")["ret"]
    assert all(abs(bad[s]) > 0.15 for s in symbols)
