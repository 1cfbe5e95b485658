"""benchmarks/harness.py (the benchmarks' measuring tools) and the bit-for-bit comparison of
bench_daily_betas.py; the benchmarks themselves are not run here."""

from __future__ import annotations

import importlib
import json
import re
import sys
import time
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
BENCH = REPO_ROOT / "benchmarks"
#: benchmarks that time the library from the outside (issue 13)
OUTSIDE = ("bench_daily_betas.py", "bench_estimators.py", "bench_crypto.py",
           "bench_incremental_day.py")


@pytest.fixture
def harness(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.syspath_prepend(str(BENCH))
    return importlib.import_module("harness")


def test_meter_phases_rows_and_rss(harness) -> None:
    meter = harness.Meter(interval=0.005)
    with meter.phase("outer", rows=3):
        with meter.phase("inner") as ph:
            block = b"x" * (64 << 20)  # written: 64 MiB resident
            time.sleep(0.02)
            ph.rows = 5
        del block
    with meter.phase("inner"):
        pass
    meter.add("elsewhere", 1.5, 0.5, rows=7)
    out = meter.close()
    ph = out["phases"]
    assert ph["outer"]["calls"] == 1 and ph["outer"]["rows"] == 3
    assert ph["inner"]["calls"] == 2 and ph["inner"]["rows"] == 5
    assert ph["outer"]["wall"] >= ph["inner"]["wall"] >= 0.02
    assert ph["inner"]["rss_kib"] >= 64 << 10
    assert ph["elsewhere"] == {"wall": 1.5, "cpu": 0.5, "rss_kib": 0, "rows": 7, "calls": 0}
    assert out["peak_sampled_kib"] >= ph["inner"]["rss_kib"] and out["vmhwm_kib"] > 0


def test_meter_iterate_names_phases_after_items(harness) -> None:
    meter = harness.Meter()

    def produce():
        for label, n in (("a", 2), ("b", 3), ("a", 4)):
            time.sleep(0.01)
            yield label, n

    got = list(meter.iterate(lambda item: f"make {item[0]}", produce(), rows=lambda i: i[1]))
    assert got == [("a", 2), ("b", 3), ("a", 4)]
    assert list(meter.iterate("empty", iter(()))) == []
    ph = meter.close()["phases"]
    assert ph["make a"]["calls"] == 2 and ph["make a"]["rows"] == 6
    assert ph["make b"]["calls"] == 1 and ph["make b"]["rows"] == 3
    assert ph["make a"]["wall"] >= 0.02
    assert ph["empty"]["calls"] == 0  # the final, empty next() is time, not a call
    assert "(iterate)" not in ph


def test_peak_between_and_clock(harness) -> None:
    meter = harness.Meter(interval=0.005, timeline=True)
    t0 = time.time()
    block = b"y" * (48 << 20)
    time.sleep(0.05)
    t1 = time.time()
    del block
    meter.close()
    assert meter.peak_between(t0, t1) >= 48 << 10
    assert meter.peak_between(t1 + 10, t1 + 20) == 0
    (wall, cpu), out = harness.best_of(lambda: sum(range(10000)), repeat=3)
    assert out == sum(range(10000)) and 0 < wall < 1 and cpu >= 0


def test_in_child_result_failure_and_abort(harness, tmp_path: Path) -> None:
    script = tmp_path / "bench_probe.py"
    script.write_text(
        "import os, sys\n"
        f"sys.path.insert(0, {str(BENCH)!r})\n"
        "from harness import Meter\n"
        "def ok(n, name):\n"
        "    return {'n': n * 2, 'name': name, 'pid': os.getpid()}\n"
        "def boom():\n"
        "    raise SystemExit(7)\n"
        "def hog():\n"
        "    meter = Meter(interval=0.005, abort_gib=0.05)\n"
        "    with meter.phase('hog'):\n"
        "        block = b'z' * (200 << 20)\n"
        "        import time; time.sleep(5)\n"
        "    return {'never': len(block)}\n"
    )
    res = harness.in_child(script, "ok", n=21, name="x")
    assert res["n"] == 42 and res["name"] == "x" and "failed" not in res
    assert res["child_max_rss_kib"] > 0 and res["child_wall_s"] > 0
    assert harness.in_child(script, "boom")["failed"] == 7
    aborted = harness.in_child(script, "hog")
    assert aborted["failed"] == harness.ABORT_EXIT
    assert aborted["aborted_in"] == "hog" and aborted["abort_rss_kib"] > 0.05 * 2**20


def test_run_process_and_results(harness, tmp_path: Path) -> None:
    run = harness.run_process([sys.executable, "-c", "import sys; print('hi'); sys.exit(3)"])
    assert run.returncode == 3 and run.output.strip() == "hi" and run.max_rss_kib > 0
    lines = harness.md_table(["a", "b"], [[1, "x"]], "lr")
    assert lines == ["| a | b |", "| --- | ---: |", "| 1 | x |"]
    paths = harness.write_results(tmp_path / "sub" / "r", "# t", {"k": 1})
    assert [p.name for p in paths] == ["r.md", "r.json"]
    assert paths[0].read_text() == "# t\n" and json.loads(paths[1].read_text()) == {"k": 1}
    info = harness.machine("pytest", "no-such-package-here")
    assert info["cores"] and "pytest" in info and "no-such-package-here" not in info


def test_compare_checksums(harness) -> None:
    bench = importlib.import_module("bench_daily_betas")
    row = {"date": "2020-01-02", "symbol": "S1", "model": "capm", "estimator": "ols_60",
           "factor": "mkt_excess", "beta": "1.25", "alpha": "0.0", "r2": "0.5",
           "resid_std": "0.01", "n_obs": "60"}
    group = {"model": "capm", "estimator": "ols_60", "factor": "mkt_excess", "n": 1, "h": 11,
             "first": "2020-01-02", "last": "2020-01-02"}
    ref = {"groups": [group], "sample": [row], "dtypes": [["beta", "DOUBLE"]]}
    same = bench.compare_checksums(ref, json.loads(json.dumps(ref)))
    assert same["identical"] and same["groups"][0]["hash_equal"]
    new = {"groups": [{**group, "h": 12}, {**group, "estimator": "ewm"}],
           "sample": [{**row, "beta": "1.2500001", "alpha": "nan"}],
           "dtypes": ref["dtypes"]}
    diff = bench.compare_checksums(ref, new)
    assert not diff["identical"]
    g = {x["estimator"]: x for x in diff["groups"]}
    assert g["ewm"]["in"] == "new only"
    assert g["ols_60"]["rows_equal"] and not g["ols_60"]["hash_equal"]
    assert g["ols_60"]["max_abs_diff_beta"] == pytest.approx(1e-7)
    assert g["ols_60"]["null_mismatch_alpha"] == 1


@pytest.mark.parametrize("name", OUTSIDE)
def test_benchmarks_patch_no_module_names(name: str) -> None:
    """Timed from the outside: no assignment to a module's attribute (``mod._run = ...``,
    ``setattr``), no module put into ``sys.modules``, no hidden ``--_`` options."""
    text = (BENCH / name).read_text()
    assert not re.search(r"^\s*(beta_tables|warehouse|hedging_sql)\.\w+\s*=", text, re.M)
    assert "setattr(" not in text and "sys.modules[" not in text and '"--_' not in text
