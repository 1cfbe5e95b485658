"""NeuralBeta against the Bayes ceiling: each model's share of the exact posterior's gain.

Example (CPU, one thread, the quick budget, all four models on stepwise and cyclical):

    nice .venv/bin/python benchmarks/bench_bayes_gain.py --experiments stepwise,cyclical \\
        --models gru_nb,gru_nbi,attn_nb,attn_nbi --budget quick --out benchmarks/results/bayes_gain

For every experiment: generate ``--n-samples`` samples (70/20/10 split, seed ``--seed``),
compute OLS and the Bayes posterior mean on the 10 % test split and on the validation
subset the training scores, train each model (best validation checkpoint restored) and
report its % RMSE(y) improvement over OLS on the test split, the Bayes posterior's
improvement on the same windows and the ratio of the two, with the updates run and the
training seconds (wall and CPU). The validation loss of every check is kept; the PNG plots
it against the update with the Bayes posterior's validation loss as the floor.

``--set KEY=VALUE`` overrides a model-config field of every model (``hidden=32``),
``--budget-set KEY=VALUE`` a budget field (``lr=3e-3``, ``lr_schedule=cosine``,
``grad_clip=1.0``); ``--tag`` names the results files, so variants can sit side by side.
Results: ``<out>/<tag>.md``, ``<tag>.json`` (written after every model) and
``<tag>_curves.png``; ``--replot <tag>.json`` redraws both from a results file.
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

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import machine, md_table, write_results  # noqa: E402

from beta_pipeline.lib.neuralbeta import baselines, metrics, synthetic, windows  # noqa: E402
from beta_pipeline.lib.neuralbeta.experiments import MODELS  # noqa: E402
from beta_pipeline.lib.nn import (  # noqa: E402
    NeuralBetaConfig,
    NeuralBetaDataModule,
    get_budget,
    predict,
    train,
)

#: the share of the Bayes posterior's gain a model should reach (issue 14)
TARGET_SHARE = 0.95


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--experiments", default="stepwise,cyclical")
    p.add_argument("--models", default=",".join(MODELS))
    p.add_argument("--budget", default="quick", choices=["quick", "paper", "tiny"])
    p.add_argument("--max-steps", type=int, help="override the budget's max_steps")
    p.add_argument("--val-every", type=int, help="override the budget's validation interval")
    p.add_argument("--n-samples", type=int, default=synthetic.DEFAULT_SAMPLES)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--budget-set", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--out", default="benchmarks/results/bayes_gain")
    p.add_argument("--tag", default=None, help="results file name (default: the budget)")
    p.add_argument("--replot", metavar="JSON", help="only redraw the table and PNG of a run")
    return p.parse_args(argv)


def replot(path: Path) -> dict[str, Any]:
    """Rewrite the Markdown and PNG of a results JSON (filling in validation references
    that an older version of this script did not store)."""
    results = json.loads(path.read_text())
    val_limit = results["budget"].get("val_limit")
    for exp, entry in results["experiments"].items():
        if "ols_val_mse" not in entry["reference"]:
            data = synthetic.generate(exp, n=results["n_samples"], seed=results["seed"])
            parts = data.split()
            entry["reference"] = references(exp, parts, val_limit)
            y_scale2 = NeuralBetaDataModule.from_synthetic(data).scaler.y_scale ** 2
            for r in entry["models"].values():
                r["target_val_loss"] = share_loss(entry["reference"], TARGET_SHARE) / y_scale2
    write_results(path.with_suffix(""), report(results), results)
    plot_curves(results, path.with_name(f"{results['tag']}_curves.png"))
    return results


def _value(text: str) -> Any:
    if text in ("None", "none"):
        return None
    if text in ("True", "False"):
        return text == "True"
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def _pairs(items: list[str]) -> dict[str, Any]:
    return {k: _value(v) for k, v in (kv.split("=", 1) for kv in items)}


def references(
    experiment: str, parts: dict[str, synthetic.SyntheticData], val_limit: int | None
) -> dict[str, Any]:
    """OLS and Bayes RMSE(y) on the test split; OLS's and the Bayes posterior's hedging MSE
    on the validation windows the training scores (raw units)."""
    bayes = baselines.BAYES[experiment]
    x, y, xn, yn, _ = parts["test"].windows()
    out = {
        "n_test": int(len(yn)),
        "ols_rmse_y": metrics.rmse_y(windows.ols_beta(x, y), xn, yn),
        "bayes_rmse_y": metrics.rmse_y(bayes(x, y), xn, yn),
    }
    val = parts["val"] if val_limit is None else parts["val"].subset(slice(0, val_limit))
    xv, yv, xnv, ynv, _ = val.windows()
    out["bayes_val_mse"] = metrics.rmse_y(bayes(xv, yv), xnv, ynv) ** 2
    out["ols_val_mse"] = metrics.rmse_y(windows.ols_beta(xv, yv), xnv, ynv) ** 2
    out["bayes_gain_pct"] = metrics.improvement_pct(out["bayes_rmse_y"], out["ols_rmse_y"])
    return out


def run_model(
    name: str,
    overrides: dict[str, Any],
    dm: NeuralBetaDataModule,
    test: synthetic.SyntheticData,
    ref: dict[str, Any],
    budget: Any,
    seed: int,
) -> dict[str, Any]:
    """Train one preset and score it on the test split against OLS and Bayes."""
    cfg = NeuralBetaConfig.preset(name, **overrides)
    res = train(cfg, dm, budget, seed=seed)
    x, y, xn, yn, bn = test.windows()
    beta, _ = predict(res.system, x, y)
    gain = metrics.improvement_pct(metrics.rmse_y(beta, xn, yn), ref["ols_rmse_y"])
    y_scale2 = float(dm.scaler.y_scale) ** 2
    return {
        "gain_pct": gain,
        "ratio": gain / ref["bayes_gain_pct"],
        "rmse_beta": metrics.rmse_beta(beta, bn),
        "steps": res.steps,
        "best_step": res.best_step,
        "seconds": res.seconds,
        "cpu_seconds": res.cpu_seconds,
        "params": int(sum(p.numel() for p in res.system.model.parameters())),
        "config": res.config,
        "history": res.history,
        "bayes_val_loss": ref["bayes_val_mse"] / y_scale2,
        "target_val_loss": share_loss(ref, TARGET_SHARE) / y_scale2,
    }


def share_loss(ref: dict[str, Any], share: float) -> float:
    """Validation MSE (raw) of an estimator with ``share`` of the Bayes posterior's RMSE gain
    over OLS on the validation windows."""
    ols, bayes = np.sqrt(ref["ols_val_mse"]), np.sqrt(ref["bayes_val_mse"])
    return float((ols - share * (ols - bayes)) ** 2)


def report(results: dict[str, Any]) -> str:
    """The share-of-the-Bayes-gain table as Markdown."""
    rows = []
    for exp, entry in results["experiments"].items():
        ref = entry["reference"]
        for name, r in entry["models"].items():
            rows.append(
                [
                    exp,
                    name,
                    f"{r['gain_pct']:.2f}",
                    f"{ref['bayes_gain_pct']:.2f}",
                    f"{100 * r['ratio']:.1f} %",
                    r["steps"],
                    f"{r['seconds']:.0f}",
                    f"{r['cpu_seconds']:.0f}",
                ]
            )
    head = [
        "experiment",
        "model",
        "gain %",
        "Bayes gain %",
        "ratio",
        "steps",
        "seconds",
        "CPU s",
    ]
    b = results["budget"]
    lines = [
        f"# Share of the Bayes gain ({results['tag']})",
        "",
        f"Budget {b['name']}: {b['max_steps']} updates, lr {b['lr']} ({b['lr_schedule']}), "
        f"batch {b['batch_size']}; model overrides {results['overrides'] or 'none'}; "
        f"{results['n_samples']} samples, seed {results['seed']}, "
        f"{results['threads']} torch thread(s). Gain: % RMSE(y) improvement over OLS on the "
        "10 % test split; ratio = gain / the exact Bayes posterior's gain.",
        "",
        *md_table(head, rows, "llrrrrrr"),
    ]
    return "\n".join(lines)


def plot_curves(results: dict[str, Any], path: Path) -> None:
    """Validation loss vs update per experiment, one line per model, Bayes as the floor."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    exps = list(results["experiments"])
    fig, axes = plt.subplots(1, len(exps), figsize=(5.5 * len(exps), 3.8), squeeze=False)
    for ax, exp in zip(axes[0], exps, strict=True):
        entry = results["experiments"][exp]
        floor = target = None
        for name, r in entry["models"].items():
            hist = r["history"]
            ax.plot([h["step"] for h in hist], [h["loss"] for h in hist], marker=".", label=name)
            floor, target = r["bayes_val_loss"], r.get("target_val_loss")
        if floor is not None:
            ax.axhline(floor, color="k", ls="--", lw=1, label="Bayes posterior")
        if target is not None:
            label = f"{100 * TARGET_SHARE:.0f} % of the Bayes gain"
            ax.axhline(target, color="grey", ls=":", lw=1, label=label)
        ax.set(title=exp, xlabel="update", ylabel="validation loss (scaled MSE)")
        ax.legend(fontsize=8)
    fig.suptitle(f"Validation loss vs update ({results['tag']})")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.replot:
        return replot(Path(args.replot))
    changes = {k: getattr(args, k) for k in ("max_steps", "val_every") if getattr(args, k)}
    budget = dataclasses.replace(get_budget(args.budget), **changes, **_pairs(args.budget_set))
    overrides = _pairs(args.set)
    tag = args.tag or budget.name
    out = Path(args.out)
    results: dict[str, Any] = {
        "tag": tag,
        "budget": budget.to_dict(),
        "overrides": overrides,
        "n_samples": args.n_samples,
        "seed": args.seed,
        "threads": args.threads,
        "machine": machine("torch", "lightning"),
        "experiments": {},
    }
    for exp in [e for e in args.experiments.split(",") if e]:
        data = synthetic.generate(exp, n=args.n_samples, seed=args.seed)
        parts = data.split()
        ref = references(exp, parts, budget.val_limit)
        entry: dict[str, Any] = {"reference": ref, "models": {}}
        results["experiments"][exp] = entry
        dm = NeuralBetaDataModule.from_synthetic(data)
        for name in [m for m in args.models.split(",") if m]:
            t0 = time.perf_counter()
            r = run_model(name, overrides, dm, parts["test"], ref, budget, args.seed)
            entry["models"][name] = r
            print(
                f"[{exp}] {name}: gain {r['gain_pct']:.2f} % vs Bayes "
                f"{ref['bayes_gain_pct']:.2f} % ({100 * r['ratio']:.1f} %), "
                f"{r['steps']} steps, {r['seconds']:.0f}s wall / {r['cpu_seconds']:.0f}s CPU "
                f"(total {time.perf_counter() - t0:.0f}s), best step {r['best_step']}",
                flush=True,
            )
            write_results(out / tag, report(results), results)
    md = report(results)
    write_results(out / tag, md, results)
    plot_curves(results, out / f"{tag}_curves.png")
    print(md)
    return results


if __name__ == "__main__":
    main(sys.argv[1:])
