"""NeuralBeta in Dagster: the synthetic study (``defs/synthetic``), model training
(experiment x model partitions) and walk-forward retraining (cut-off year x model), the
one step that loads their runs, evaluation with Table 1 and figures, and daily market
betas/NBI weights."""

from beta_pipeline.defs.neuralbeta.evaluation import neuralbeta_evaluation
from beta_pipeline.defs.neuralbeta.inference import neuralbeta_betas
from beta_pipeline.defs.neuralbeta.runs import neuralbeta_runs
from beta_pipeline.defs.neuralbeta.training import model_partitions, neuralbeta_model
from beta_pipeline.defs.neuralbeta.walkforward import (
    neuralbeta_walkforward_model,
    walkforward_partitions,
)
from beta_pipeline.defs.synthetic import (
    kalman_study,
    scenario_partitions,
    synthetic_baselines,
    synthetic_scenarios,
)

NEURALBETA_ASSETS = [
    synthetic_scenarios,
    synthetic_baselines,
    kalman_study,
    neuralbeta_model,
    neuralbeta_walkforward_model,
    neuralbeta_runs,
    neuralbeta_evaluation,
    neuralbeta_betas,
]

__all__ = [
    "NEURALBETA_ASSETS",
    "kalman_study",
    "model_partitions",
    "neuralbeta_betas",
    "neuralbeta_evaluation",
    "neuralbeta_model",
    "neuralbeta_runs",
    "neuralbeta_walkforward_model",
    "scenario_partitions",
    "synthetic_baselines",
    "synthetic_scenarios",
    "walkforward_partitions",
]
