"""Files of the synthetic scenarios (METHODS §4): each scenario's Parquet file(s) under a
folder, the views to create over them and a figure (matplotlib loads on use)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from beta_pipeline.lib.neuralbeta import synthetic
from beta_pipeline.lib.neuralbeta.kalman_study import kalman_study

SPLIT_NOTE = "70/20/10 train/val/test in sample order"


@dataclass
class ScenarioFiles:
    """What :func:`write_scenario` wrote."""

    views: dict[str, str]  #: view name (``synthetic.<name>``) -> Parquet path
    stale: list[str]  #: views whose file was removed (a config without that part)
    rows: int  #: samples (or steps) of the main file
    info: dict[str, object]  #: window length and split of the samples
    preview: pd.DataFrame  #: first rows
    png: bytes  #: example betas (or the Kalman study) as a figure


def scenario_path(folder: Path, scenario: str, part: str = "") -> Path:
    """Parquet file of a scenario (``part``: ``""`` or ``"_independent"``)."""
    return Path(folder) / f"{scenario}{part}.parquet"


def write_scenario(
    folder: Path, scenario: str, n_samples: int, window: int, seed: int, independent: int
) -> ScenarioFiles:
    """constant/stepwise/cyclical: ``n_samples`` windows plus, if ``independent``, an
    independent test set (seed + 1); kalman_step: the 1,000-step Kalman study series."""
    from beta_pipeline.lib.neuralbeta import figures

    Path(folder).mkdir(parents=True, exist_ok=True)
    if scenario == "kalman_step":
        s = synthetic.kalman_step(seed=seed)
        frame = pd.DataFrame({"step": np.arange(len(s.x)), "x": s.x, "y": s.y, "beta": s.beta})
        path = scenario_path(folder, scenario)
        frame.to_parquet(path, index=False)
        png = figures.kalman_study_plot(kalman_study(seed=seed)[0])
        return ScenarioFiles({scenario: str(path)}, [], len(frame), {}, frame, png)
    data = synthetic.generate(scenario, n=n_samples, h=window, seed=seed)
    views = {scenario: str(synthetic.save_parquet(data, scenario_path(folder, scenario)))}
    extra_path = scenario_path(folder, scenario, "_independent")
    stale = []
    if not independent and extra_path.exists():
        extra_path.unlink()  # never evaluate on an independent set of an older config
        stale.append(f"{scenario}_independent")
    if independent:
        extra = synthetic.generate(scenario, n=independent, h=window, seed=seed + 1)
        views[f"{scenario}_independent"] = str(synthetic.save_parquet(extra, extra_path))
    info = {"window": data.window, "split": SPLIT_NOTE}
    head = synthetic.to_frame(data.subset(slice(0, 5))).iloc[:, :8]
    png = figures.scenario_examples(data.beta, scenario)
    return ScenarioFiles(views, stale, data.n, info, head, png)


def load_scenario(folder: Path, scenario: str, part: str = "") -> synthetic.SyntheticData:
    """A scenario's data (FileNotFoundError naming the file when it is missing)."""
    path = scenario_path(folder, scenario, part)
    if not path.exists():
        raise FileNotFoundError(path)
    return synthetic.load_parquet(path)


def scenario_test_sets(folder: Path, scenario: str) -> dict[str, synthetic.SyntheticData]:
    """The scenario's test sets: ``split`` (its 10 %) and ``independent`` if written."""
    sets = {"split": load_scenario(folder, scenario).split()["test"]}
    if scenario_path(folder, scenario, "_independent").exists():
        sets["independent"] = load_scenario(folder, scenario, "_independent")
    return sets
