"""The csv source's on-disk cache (validated files kept as Parquet, keyed by content hash) and
its window-first price reads (issue 12): same frames as a fresh parse, never a stale or
partial entry, and a bad file is never cached."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pandas as pd
import pytest

from beta_pipeline.lib.errors import DataValidationError
from beta_pipeline.lib.sources import CsvSource, make_source
from beta_pipeline.lib.sources.base import BaseSource
from beta_pipeline.lib.sources.cache import DISK_HITS, READS, clear_cache
from beta_pipeline.settings import get_settings
from beta_pipeline_tests.support.sources import config_for, write

# symbols out of order within a date, so the canonical sort matters
PRICES = """
date,symbol,open,high,low,close,volume
2020-01-02,BBB,20,21,19,20.5,200
2020-01-02,AAA,10,11,9,10.5,100
2020-01-03,BBB,20.5,21,20,20.2,210
2020-01-03,AAA,10.5,11,10,10.8,110
2020-01-06,BBB,20.2,20.9,20.0,20.6,220
2020-01-06,AAA,10.8,11.2,10.6,11.0,120
2020-01-07,AAA,11.0,11.3,10.9,11.1,130
2020-01-07,CCC,5.0,5.2,4.9,5.1,50
"""

FACTORS = """
date,Mkt-RF,SMB,HML,RF
2020-01-02,0.86,-0.97,-0.35,0.006
2020-01-03,-0.67,0.30,0.00,0.006
2020-01-06,0.36,-0.21,-0.55,0.006
2020-01-07,-0.19,-0.03,-0.25,0.006
"""

CONFIG = """
universes:
  equity:
    - path: px.csv
market:
  - path: ff.csv
    units: percent
    series: {mkt_rf: Mkt-RF, smb: SMB, hml: HML, rf: RF}
"""


@pytest.fixture(autouse=True)
def _fresh_process_cache():
    clear_cache()
    yield
    clear_cache()


def _source(tmp_path: Path, cache: Path | None) -> CsvSource:
    write(tmp_path / "px.csv", PRICES)
    write(tmp_path / "ff.csv", FACTORS)
    cfg = config_for(tmp_path, CONFIG)
    return CsvSource(str(cfg), cache_dir=cache)


def _entries(cache: Path) -> list[Path]:
    return sorted(p for p in cache.iterdir() if not p.name.startswith("."))


def test_second_process_reads_parquet_with_identical_frames(tmp_path):
    cache = tmp_path / "cache"
    src = _source(tmp_path, cache)
    first_prices, first_market = src.load_prices(), src.load_market()
    px = str((tmp_path / "px.csv").resolve())
    assert READS[px] == 1 and DISK_HITS[px] == 0
    assert len(_entries(cache)) == 2  # the price file and the factor file
    clear_cache()  # a new process: nothing in memory
    again = _source(tmp_path, cache)
    pd.testing.assert_frame_equal(again.load_prices(), first_prices)
    pd.testing.assert_frame_equal(again.load_market(), first_market)
    assert READS[px] == 0 and DISK_HITS[px] == 1
    # and both equal a source without any cache
    clear_cache()
    plain = _source(tmp_path, None)
    pd.testing.assert_frame_equal(plain.load_prices(), first_prices)
    assert again.describe()["files"] == plain.describe()["files"]


def test_changed_file_gets_a_new_entry_and_the_old_one_goes(tmp_path):
    cache = tmp_path / "cache"
    src = _source(tmp_path, cache)
    src.load_prices()
    before = _entries(cache)
    clear_cache()
    changed = PRICES.replace("CCC,5.0,5.2,4.9,5.1,50", "CCC,5.0,5.2,4.9,9.9,50")
    write(tmp_path / "px.csv", changed)
    src = CsvSource(str(tmp_path / "cfg.yaml"), cache_dir=cache)
    frame = src.load_prices(symbols="CCC")
    assert frame["close"].tolist() == [9.9]
    after = _entries(cache)
    assert len(after) == len(before) and set(after) != set(before)


def test_bad_file_is_not_cached_and_raises_again(tmp_path):
    cache = tmp_path / "cache"
    src = _source(tmp_path, cache)
    write(tmp_path / "px.csv", PRICES.replace("20.2,210", "-20.2,210"))
    for _ in range(2):
        clear_cache()
        with pytest.raises(DataValidationError) as info:
            src.load_prices()
        assert info.value.rule == "non_positive_price"
    assert not cache.exists() or not _entries(cache)


def test_corrupt_entry_is_rebuilt(tmp_path, caplog):
    cache = tmp_path / "cache"
    src = _source(tmp_path, cache)
    expected = src.load_prices()
    for entry in _entries(cache):
        (entry / "frame.parquet").write_bytes(b"not parquet")
    clear_cache()
    with caplog.at_level(logging.WARNING):
        got = _source(tmp_path, cache).load_prices()
    pd.testing.assert_frame_equal(got, expected)
    assert "unreadable" in caplog.text
    clear_cache()
    _source(tmp_path, cache).load_prices()
    assert DISK_HITS[str((tmp_path / "px.csv").resolve())] == 1


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write to a read-only folder")
def test_unwritable_cache_only_costs_the_parse(tmp_path):
    cache = tmp_path / "cache"
    cache.mkdir()
    cache.chmod(0o500)
    try:
        frame = _source(tmp_path, cache).load_prices()
    finally:
        cache.chmod(0o700)
    assert len(frame) == 8


def test_cache_in_a_file_path_only_costs_the_parse(tmp_path):
    blocker = tmp_path / "not_a_folder"
    blocker.write_text("x")
    frame = _source(tmp_path, blocker / "cache").load_prices()
    assert len(frame) == 8


@pytest.mark.parametrize(
    ("start", "end", "symbols"),
    [
        (None, None, None),
        ("2020-01-03", "2020-01-07", None),
        ("2020-01-07", None, ["CCC", "AAA"]),
        (None, "2020-01-03", "BBB"),
        ("2021-01-01", None, None),  # nothing in the window
    ],
)
def test_window_first_read_equals_the_base_read(tmp_path, start, end, symbols):
    src = _source(tmp_path, tmp_path / "cache")
    fast = src.load_prices(start, end, symbols)
    pd.testing.assert_frame_equal(fast, BaseSource.load_prices(src, start, end, symbols))


def test_window_first_read_still_rejects_unknown_tickers(tmp_path):
    src = _source(tmp_path, None)
    with pytest.raises(DataValidationError) as info:
        src.load_prices("2020-01-07", None, ["BBB", "ZZZ"])  # BBB is known, not in window
    assert info.value.rule == "unknown_ticker" and "ZZZ" in str(info.value)


def test_settings_and_make_source(tmp_path, monkeypatch):
    monkeypatch.setenv("BETA_PIPELINE_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("BETA_PIPELINE_SOURCE_CACHE", raising=False)
    assert get_settings().source_cache_dir == (tmp_path / "home" / "cache" / "sources").resolve()
    monkeypatch.setenv("BETA_PIPELINE_SOURCE_CACHE", "off")
    assert get_settings().source_cache_dir is None
    cfg = config_for(tmp_path, CONFIG)
    src = make_source("csv", str(cfg), cache_dir=tmp_path / "c")
    assert isinstance(src, CsvSource) and src.cache_dir == tmp_path / "c"
