"""The synthetic study of NeuralBeta: scenarios, baselines and the Kalman study."""

from beta_pipeline.defs.synthetic.assets import (
    SYNTHETIC_ASSETS,
    kalman_study,
    load_scenario,
    scenario_partitions,
    scenario_test_sets,
    synthetic_baselines,
    synthetic_scenarios,
)

__all__ = [
    "SYNTHETIC_ASSETS",
    "kalman_study",
    "load_scenario",
    "scenario_partitions",
    "scenario_test_sets",
    "synthetic_baselines",
    "synthetic_scenarios",
]
