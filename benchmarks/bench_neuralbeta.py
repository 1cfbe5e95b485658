"""NeuralBeta on the paper's synthetic scenarios: Table 1, RMSE(beta), oracle-gap shares.

Example (CPU, one thread, the quick budget):

    nice python benchmarks/bench_neuralbeta.py --scenarios stepwise,cyclical,constant \\
        --models gru_nb,gru_nbi --budget quick --out benchmarks/results/

For every scenario: generate ``--n-samples`` samples (70/20/10 split), tune the WLS half-life
on the validation split, train each model (best validation checkpoint restored) and evaluate
on the 10 % test split (the paper's protocol, 10,000 samples by default) and on an independent
test set of ``--test-samples`` samples (less sampling noise; 0 = skip). Prints
Table 1 (% RMSE(y) improvement over rolling OLS, the paper's cell in brackets), RMSE(beta),
the share of the oracle gap closed, the correlation of validation RMSE(y) and RMSE(beta)
across checkpoints (Fig. 5) and, optionally, the Lightning-vs-plain-PyTorch throughput.
Results go to ``<out>/neuralbeta_<budget>.json``; checkpoints to ``<out>/<budget>/...``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from beta_pipeline.lib.neuralbeta import baselines, metrics, synthetic
from beta_pipeline.lib.neuralbeta.experiments import MODELS, PAPER_TABLE1
from beta_pipeline.lib.nn import NeuralBetaConfig, NeuralBetaDataModule, get_budget, predict, train
from beta_pipeline.lib.nn.throughput import compare_throughput

# Paper Table 1 (% RMSE(y) improvement over OLS) and the model names: one definition in lib.
PAPER: dict[str, dict[str, float]] = PAPER_TABLE1
ALL_MODELS = MODELS


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--scenarios", default="constant,stepwise,cyclical")
    p.add_argument("--models", default=",".join(ALL_MODELS))
    p.add_argument("--budget", default="quick", choices=["quick", "paper", "tiny"])
    p.add_argument("--n-samples", type=int, default=synthetic.DEFAULT_SAMPLES)
    p.add_argument(
        "--test-samples",
        type=int,
        default=50_000,
        help="size of an extra independent test set (0: only the 10%% split)",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="benchmarks/results/")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--max-steps", type=int, help="override the budget's max_steps")
    p.add_argument("--lr", type=float, help="override the budget's learning rate")
    p.add_argument("--batch-size", type=int, help="override the budget's batch size")
    p.add_argument("--val-every", type=int, help="override the budget's validation interval")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="model config override applied to every model, e.g. hidden=32",
    )
    p.add_argument("--no-bayes", action="store_true", help="skip the Bayes reference")
    p.add_argument(
        "--throughput",
        default="gru_nbi",
        help="model for the Lightning vs torch throughput test ('none' to skip)",
    )
    p.add_argument("--throughput-steps", type=int, default=150)
    return p.parse_args(argv)


def _override(value: str) -> Any:
    for cast in (int, float):
        try:
            return cast(value)
        except ValueError:
            pass
    return value


def baseline_rmses(
    scenario: str,
    parts: dict[str, synthetic.SyntheticData],
    test: synthetic.SyntheticData,
    bayes: bool,
) -> dict[str, Any]:
    """RMSE(y) and RMSE(beta) of the baselines of ``neuralbeta.baselines.synthetic_baselines``
    (OLS, tuned WLS, Kalman, the Bayes reference, the oracle) on ``test``."""
    betas, params = baselines.synthetic_baselines(
        scenario, parts["train"], parts["val"], test, bayes=bayes
    )
    _, _, xn, yn, bn = test.windows()
    out: dict[str, Any] = {
        "half_life": params["wls_half_life"],
        "half_life_grid_val_rmse": params["wls_grid_val_rmse"],
        "kalman_params": params.get("kalman"),
    }
    for name, beta in betas.items():
        out[name] = {
            "rmse_y": metrics.rmse_y(beta, xn, yn),
            "rmse_beta": metrics.rmse_beta(beta, bn),
        }
    return out


def probe_weights(system: Any, seed: int) -> dict[str, list[float]]:
    """Fig. 6: mean NBI weights per step when beta jumps 2 -> 0 at different positions."""
    probe = synthetic.jump_probe(n_per_position=1000, seed=seed)
    x, y, *_ = probe.windows()
    _, w = predict(system, x, y)
    pos = probe.meta["jump"]
    return {str(int(k)): w[pos == k].mean(0).tolist() for k in np.unique(pos)}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    budget = get_budget(args.budget)
    changes = {
        k: getattr(args, k)
        for k in ("max_steps", "lr", "batch_size", "val_every")
        if getattr(args, k)
    }
    budget = dataclasses.replace(budget, **changes)
    overrides = {k: _override(v) for k, v in (kv.split("=", 1) for kv in args.set)}
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    models = [m for m in args.models.split(",") if m]
    results: dict[str, Any] = {"budget": budget.to_dict(), "args": vars(args), "scenarios": {}}
    for scenario in [s for s in args.scenarios.split(",") if s]:
        data = synthetic.generate(scenario, n=args.n_samples, seed=args.seed)
        parts = data.split()
        tests = {"split": parts["test"]}
        if args.test_samples:
            tests["independent"] = synthetic.generate(
                scenario, n=args.test_samples, seed=args.seed + 1
            )
        entry: dict[str, Any] = {"tests": {}, "training": {}}
        for tname, test in tests.items():
            t0 = time.perf_counter()
            base = baseline_rmses(scenario, parts, test, not args.no_bayes)
            entry["tests"][tname] = {"n": test.n, "baselines": base, "models": {}}
            print(
                f"[{scenario}/{tname}] baselines in {time.perf_counter() - t0:.0f}s, "
                f"WLS half-life {base['half_life']}",
                flush=True,
            )
        dm = NeuralBetaDataModule.from_synthetic(data)
        for name in models:
            cfg = NeuralBetaConfig.preset(name, **overrides)
            res = train(
                cfg, dm, budget, seed=args.seed, out_dir=out_dir / args.budget / scenario / name
            )
            hist = res.history
            corr = (
                float(
                    np.corrcoef([h["rmse_y"] for h in hist], [h["rmse_beta"] for h in hist])[0, 1]
                )
                if len(hist) > 2
                else float("nan")
            )
            rec: dict[str, Any] = {
                "train_seconds": res.seconds,
                "train_cpu_seconds": res.cpu_seconds,
                "steps": res.steps,
                "best_step": res.best_step,
                "history": hist,
                "corr_rmse_y_rmse_beta": corr,
                "config": res.config,
                "checkpoint": res.checkpoint_path,
            }
            if scenario == "stepwise" and cfg.head == "nbi":
                rec["probe_weights"] = probe_weights(res.system, args.seed + 2)
            entry["training"][name] = rec
            for tname, test in tests.items():
                x, y, xn, yn, bn = test.windows()
                beta, _ = predict(res.system, x, y)
                entry["tests"][tname]["models"][name] = {
                    "rmse_y": metrics.rmse_y(beta, xn, yn),
                    "rmse_beta": metrics.rmse_beta(beta, bn),
                }
            split = entry["tests"]["split"]
            imp = metrics.improvement_pct(
                split["models"][name]["rmse_y"], split["baselines"]["ols"]["rmse_y"]
            )
            print(
                f"[{scenario}] {name}: {res.seconds:.0f}s wall, {res.cpu_seconds:.0f}s cpu, "
                f"best step {res.best_step}, split-test improvement {imp:.2f} %",
                flush=True,
            )
        results["scenarios"][scenario] = entry
    if args.throughput != "none":
        scenario = next(iter(results["scenarios"]), "stepwise")
        dm = NeuralBetaDataModule.from_synthetic(
            synthetic.generate(scenario, n=20_000, seed=args.seed)
        )
        cfg = NeuralBetaConfig.preset(args.throughput, **overrides)
        results["throughput"] = {
            "model": args.throughput,
            **compare_throughput(cfg, dm, budget, steps=args.throughput_steps),
        }
    path = out_dir / f"neuralbeta_{args.budget}.json"
    path.write_text(json.dumps(results, indent=1, default=float))
    print(report(results))
    print(f"\nwritten {path}")
    return results


def _cell(ours: float, paper: float | None) -> str:
    return f"{ours:.2f} ({paper:.2f})" if paper is not None else f"{ours:.2f}"


def report(results: dict[str, Any]) -> str:
    """The tables as Markdown: one block per test set, then training diagnostics."""
    from tabulate import tabulate

    scen = results["scenarios"]
    models = sorted(
        {m for e in scen.values() for m in e["training"]},
        key=lambda m: ALL_MODELS.index(m) if m in ALL_MODELS else 99,
    )
    cols = ["wls", *models, "bayes"]
    names = ["WLS (tuned)", *models, "Bayes ref."]
    parts: list[str] = []
    order = ["split", "independent"]
    tnames = sorted({t for e in scen.values() for t in e["tests"]}, key=order.index)
    for tname in tnames:
        t1, tb, tg = [], [], []
        for sc, e in scen.items():
            if tname not in e["tests"]:
                continue
            te = e["tests"][tname]
            base = te["baselines"]
            ols, orc = base["ols"]["rmse_y"], base["oracle"]["rmse_y"]
            rows = {k: base[k] for k in ("wls", "bayes") if k in base} | te["models"]
            paper = PAPER.get(sc, {})
            t1.append(
                [
                    sc,
                    *[
                        _cell(metrics.improvement_pct(rows[c]["rmse_y"], ols), paper.get(c))
                        if c in rows
                        else ""
                        for c in cols
                    ],
                    f"{metrics.improvement_pct(orc, ols):.2f}",
                ]
            )
            tb.append(
                [
                    sc,
                    f"{base['ols']['rmse_beta']:.4f}",
                    *[f"{rows[c]['rmse_beta']:.4f}" if c in rows else "" for c in cols],
                ]
            )
            tg.append(
                [
                    sc,
                    *[
                        f"{metrics.oracle_gap_share(rows[c]['rmse_y'], ols, orc):.3f}"
                        if c in rows
                        else ""
                        for c in cols
                    ],
                ]
            )
        n = next(e["tests"][tname]["n"] for e in scen.values() if tname in e["tests"])
        parts += [
            f"## Test set: {tname} ({n} samples per scenario)",
            "\nTable 1: % RMSE(y) improvement over rolling OLS, ours (paper)\n",
            tabulate(t1, ["scenario", *names, "oracle"], tablefmt="github"),
            "\nRMSE(beta) vs the true beta_{t+1}\n",
            tabulate(tb, ["scenario", "OLS", *names], tablefmt="github"),
            "\nShare of the oracle gap closed: (RMSE_OLS - RMSE) / (RMSE_OLS - RMSE_oracle)\n",
            tabulate(tg, ["scenario", *names], tablefmt="github"),
            "",
        ]
    tc = [
        [
            sc,
            *[
                f"{e['training'][m]['corr_rmse_y_rmse_beta']:.3f} "
                f"({e['training'][m]['train_cpu_seconds']:.0f}s, "
                f"best {e['training'][m]['best_step']})"
                if m in e["training"]
                else ""
                for m in models
            ],
        ]
        for sc, e in scen.items()
    ]
    parts += [
        "## Training: corr(val RMSE(y), val RMSE(beta)) across checks "
        "(train CPU seconds, best step)\n",
        tabulate(tc, ["scenario", *models], tablefmt="github"),
    ]
    if "throughput" in results:
        t = results["throughput"]
        parts.append(
            f"\nThroughput ({t['model']}, batch {t['batch_size']:.0f}): Lightning "
            f"{t['lightning_seq_per_s']:.0f} seq/s, plain torch {t['torch_seq_per_s']:.0f} "
            f"seq/s, Lightning overhead {t['overhead_pct']:.1f} %"
        )
    return "\n".join(parts)


if __name__ == "__main__":
    main(sys.argv[1:])
