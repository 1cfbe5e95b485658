"""The whole crypto and cross-asset study on the full shared/data files, on CPU: ``crypto_job``
(every asset and check of the ``crypto`` group, default settings) through Dagster in-process
with the csv source, then the headline numbers read back from the warehouse.

Run from the repository root (``../shared/data`` beside it, or ``--data-dir``)::

    python benchmarks/bench_crypto.py
    python benchmarks/bench_crypto.py --replicates 5 --epochs 300

Prints wall and CPU time and peak RSS (total and per step: the RSS sampled between the
step's start and success events), the best configuration per market, the
test-span hedging RMSE of MLP vs rolling / expanding OLS, Kalman and no hedge, the
Fama-French add-on, beta statistics and quartile sorts. Writes ``benchmarks/results/
crypto.md`` (and ``.json``). The warehouse is a temporary one (``--keep`` keeps it).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from harness import Meter, gib, machine, write_results  # noqa: E402


def _md(frame: pd.DataFrame, fmt: str = ".4f") -> str:
    return frame.to_markdown(index=False, floatfmt=fmt)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=str(ROOT.parent / "shared" / "data"))
    parser.add_argument("--epochs", type=int, default=None, help="default: the asset's (200)")
    parser.add_argument("--replicates", type=int, default=None, help="default: the asset's (3)")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "crypto"))
    parser.add_argument("--keep", action="store_true", help="keep the temporary home")
    args = parser.parse_args(argv)

    data = Path(args.data_dir).resolve()
    if not (data / "crypto_daily.csv.gz").is_file():
        print(f"no crypto_daily.csv.gz in {data}: pass --data-dir", file=sys.stderr)
        return 2
    home = Path(tempfile.mkdtemp(prefix="bench_crypto_"))
    os.environ.update(
        BETA_PIPELINE_HOME=str(home),
        DAGSTER_HOME=str(home / "dagster_home"),
        BETA_PIPELINE_DATA_DIR=str(data),
    )
    from beta_pipeline.settings import ensure_home

    ensure_home()
    import dagster as dg

    from beta_pipeline.definitions import build_definitions
    from beta_pipeline.defs.resources import ArtifactStore, DuckDBWarehouse, PriceSourceResource
    from beta_pipeline.lib.warehouse import open_warehouse

    db = home / "warehouse.duckdb"
    defs = build_definitions(
        {
            "warehouse_db": DuckDBWarehouse(path=str(db)),
            "prices": PriceSourceResource(kind="csv", config_path="shared_data"),
            "artifacts": ArtifactStore(root=str(home / "artifacts")),
        }
    )
    neural = {k: v for k, v in (("epochs", args.epochs), ("replicates", args.replicates)) if v}
    run_config: dict = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
    if neural:
        run_config["ops"] = {"crypto_neural_betas": {"config": neural}}
    instance = dg.DagsterInstance.get()
    info = machine("dagster", "torch", "duckdb")
    meter = Meter(timeline=True)
    with meter.phase("crypto_job"):
        result = defs.resolve_job_def("crypto_job").execute_in_process(
            instance=instance, run_config=run_config, raise_on_error=False
        )
    measured = meter.close()
    job = measured["phases"]["crypto_job"]
    wall, cpu, peak = job["wall"], job["cpu"], gib(measured["vmhwm_kib"])
    if not result.success:
        for ev in result.get_step_failure_events():
            print(f"{ev.step_key}: {ev.event_specific_data.error.message}", file=sys.stderr)
        return 1
    starts: dict[str, float] = {}
    steps: dict[str, float] = {}
    step_rss: dict[str, float] = {}  # GiB, steps run one after another in-process
    for entry in instance.all_logs(result.run_id):
        ev = entry.dagster_event
        if ev is None or entry.step_key is None:
            continue
        if ev.event_type_value == "STEP_START":
            starts[entry.step_key] = entry.timestamp
        elif ev.event_type_value == "STEP_SUCCESS" and entry.step_key in starts:
            t0 = starts[entry.step_key]
            steps[entry.step_key] = entry.timestamp - t0
            step_rss[entry.step_key] = gib(meter.peak_between(t0, entry.timestamp))
    step_table = pd.DataFrame(
        [(k, v, step_rss[k]) for k, v in sorted(steps.items(), key=lambda kv: -kv[1])],
        columns=["step", "seconds", "peak RSS GiB"],
    )

    with open_warehouse(db, read_only=True) as conn:
        def q(sql: str) -> pd.DataFrame:
            return conn.execute(sql).df()

        best = q(
            "SELECT config, lookback, hidden, lr, activation, val_rmse, test_rmse, best_epoch, "
            "strftime(test_start, '%Y-%m') AS test_start, strftime(test_end, '%Y-%m') AS "
            "test_end, options FROM crypto.best_configs ORDER BY config"
        )
        test = q(
            "PIVOT (SELECT config, method, rmse FROM crypto.hedging WHERE split = 'test') "
            "ON method USING first(rmse) ORDER BY config"
        )
        improvement = q(
            "SELECT config, method, improvement_pct FROM crypto.hedging WHERE split = 'test' "
            "AND method IN ('mlp', 'kalman', 'ols_exp', 'zero') ORDER BY config, method"
        ).pivot(index="config", columns="method", values="improvement_pct").reset_index()
        n_test = q("SELECT max(n) AS n, min(first_month) AS lo, max(last_month) AS hi "
                   "FROM crypto.hedging WHERE split = 'test'")
        ff5 = q(
            "SELECT config, factors_end, test_start, test_end, n_test, test_rmse_base, "
            "test_rmse_ff5, change_pct FROM crypto.ff5_addon ORDER BY config"
        )
        stats = q(
            "SELECT market, coin, n, mean, std, skew, kurtosis, min, max FROM crypto.beta_stats "
            "WHERE method = 'mlp' AND config = market AND sample = 'test' ORDER BY market, coin"
        )
        sorts = q(
            "PIVOT (SELECT config, quartile, avg(excess_return) AS r FROM crypto.quartile_sorts "
            "WHERE method = 'mlp' AND split = 'test' GROUP BY ALL) ON quartile "
            "USING first(r) ORDER BY config"
        )
        annual = q(
            "PIVOT (SELECT market, year, avg(mean_beta) AS b FROM crypto.beta_annual "
            "WHERE method = 'mlp' AND config = market GROUP BY ALL) ON year USING first(b) "
            "ORDER BY market"
        )
    options = json.loads(best["options"].iloc[0])
    best = best.drop(columns="options")
    lines = [
        "# Crypto and cross-asset study: benchmark",
        "",
        f"- machine: {info['processor']}, {info['cores']} CPUs (torch on 1 thread), load "
        f"average {info['load'][0]:.1f} at the start; python {info['python']}",
        f"- crypto_job (11 assets, 3 check suites), csv source on {data}",
        f"- training: {options}",
        f"- **wall {wall:.1f} s, CPU {cpu:.1f} s, peak RSS {peak:.2f} GiB** (in-process "
        "Dagster run, all steps)",
        f"- test span: {n_test['lo'].iloc[0]:%Y-%m}..{n_test['hi'].iloc[0]:%Y-%m}, "
        f"{int(n_test['n'].iloc[0])} coin-months per method",
        "",
        "## Steps (wall seconds, peak RSS sampled during the step)",
        _md(step_table, ".2f"),
        "",
        "## Best configuration per market (lowest validation RMSE)",
        _md(best),
        "",
        "## Test-span next-month hedging RMSE",
        _md(test),
        "",
        "## % improvement over rolling OLS (36 months), test span",
        _md(improvement, ".2f"),
        "",
        "## Fama-French five factors as extra MLP inputs (test RMSE change, %)",
        _md(ff5),
        "",
        "## Neural betas, single-market configurations, test months",
        _md(stats),
        "",
        "## Annual mean neural beta (mean over coins)",
        _md(annual, ".3f"),
        "",
        "## Quartile sorts on neural betas: mean next-month excess return (test months)",
        _md(sorts),
    ]
    text = "\n".join(lines)
    print(text)
    data = {
        "wall_s": wall, "cpu_s": cpu, "peak_rss_gib": peak, "steps": steps,
        "step_peak_rss_gib": step_rss, "machine": info, "options": options,
        "best": best.to_dict(orient="records"),
        "test_rmse": test.to_dict(orient="records"),
        "ff5": ff5.to_dict(orient="records"),
    }
    for path in write_results(Path(args.out), text, data):
        print(f"written: {path}")
    if args.keep:
        print(f"\nwarehouse kept in {home}")
    else:
        instance.dispose()
        shutil.rmtree(home, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
