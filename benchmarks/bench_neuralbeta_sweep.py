"""Fig. 9 on demand: robustness of NB vs NBI to lookback, hidden size and dropout.

One factor at a time around the quick-budget presets (lookback 64, GRU hidden 64/32,
dropout 0) on one synthetic scenario; each cell trains a fresh model and reports its
% RMSE(y) improvement over OLS on the scenario's 10 % test split. CPU by default; pass
``--budget paper`` on a GPU.

    python benchmarks/bench_neuralbeta_sweep.py --scenario stepwise --max-steps 600
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import pandas as pd
import torch
from tqdm import tqdm

from beta_pipeline.lib.neuralbeta import metrics, synthetic, windows
from beta_pipeline.lib.nn import NeuralBetaConfig, NeuralBetaDataModule, predict, train
from beta_pipeline.lib.nn.config import get_budget

GRID: dict[str, list[float | int]] = {
    "window": [32, 64, 128],
    "hidden": [16, 32, 64, 128],
    "dropout": [0.0, 0.25, 0.5],
}
DEFAULTS = {"window": 64, "dropout": 0.0}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--scenario", default="stepwise", choices=list(synthetic.SCENARIOS))
    p.add_argument("--models", default="gru_nb,gru_nbi")
    p.add_argument("--budget", default="quick")
    p.add_argument("--max-steps", type=int, default=600, help="updates per cell")
    p.add_argument("--n-samples", type=int, default=40_000)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="benchmarks/results/sweep")
    return p.parse_args(argv)


def cells(models: list[str]) -> list[tuple[str, str, float | int]]:
    """(model, parameter, value): one factor at a time."""
    return [(m, k, v) for m in models for k, values in GRID.items() for v in values]


def main(argv: list[str] | None = None) -> pd.DataFrame:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    budget = dataclasses.replace(get_budget(args.budget), max_steps=args.max_steps)
    budget = dataclasses.replace(budget, val_every=max(args.max_steps // 4, 1))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    data_by_window: dict[int, synthetic.SyntheticData] = {}
    rows = []
    for model, param, value in tqdm(cells(args.models.split(",")), desc="sweep"):
        settings = {**DEFAULTS, param: value}
        h = int(settings["window"])
        if h not in data_by_window:
            data_by_window[h] = synthetic.generate(
                args.scenario, n=args.n_samples, h=h, seed=args.seed
            )
        data = data_by_window[h]
        overrides = {"dropout": float(settings["dropout"])}
        if param == "hidden":
            overrides["hidden"] = int(value)
        cfg = NeuralBetaConfig.preset(model, window=h, **overrides)
        t0 = time.perf_counter()
        res = train(cfg, NeuralBetaDataModule.from_synthetic(data), budget, seed=args.seed)
        test = data.split()["test"]
        x, y, xn, yn, bn = test.windows()
        beta, _ = predict(res.system, x, y)
        ols = metrics.rmse_y(windows.ols_beta(x, y), xn, yn)
        rows.append(
            {
                "model": model,
                "param": param,
                "value": value,
                "improvement_vs_ols_pct": metrics.improvement_pct(
                    metrics.rmse_y(beta, xn, yn), ols
                ),
                "rmse_beta": metrics.rmse_beta(beta, bn),
                "seconds": time.perf_counter() - t0,
            }
        )
    frame = pd.DataFrame(rows)
    frame.to_csv(out / f"sweep_{args.scenario}.csv", index=False)
    (out / f"sweep_{args.scenario}.json").write_text(json.dumps(vars(args)))
    _plot(frame, out / f"fig9_{args.scenario}.png", args.scenario)
    print(
        frame.pivot_table(
            index=["param", "value"], columns="model", values="improvement_vs_ols_pct"
        )
        .round(2)
        .to_markdown()
    )
    return frame


def _plot(frame: pd.DataFrame, path: Path, scenario: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(GRID), figsize=(4 * len(GRID), 3.2))
    for ax, param in zip(axes, GRID, strict=True):
        for model, part in frame[frame["param"] == param].groupby("model"):
            ax.plot(part["value"], part["improvement_vs_ols_pct"], marker="o", label=model)
        ax.set(title=param, xlabel=param, ylabel="% improvement over OLS")
        ax.legend(fontsize=8)
    fig.suptitle(f"Fig. 9 ({scenario}): NB vs NBI robustness, one factor at a time")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
