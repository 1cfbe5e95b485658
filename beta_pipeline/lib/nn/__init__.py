"""NeuralBeta (NB) and NeuralBeta-Interpretable (NBI): PyTorch + Lightning, no Dagster."""

from beta_pipeline.lib.nn.config import BUDGETS, Budget, NeuralBetaConfig, get_budget
from beta_pipeline.lib.nn.data import (
    ArrayWindows,
    NeuralBetaDataModule,
    PanelWindows,
    market_windows,
    window_ols_moments,
)
from beta_pipeline.lib.nn.heads import NBHead, NBIHead, wls_layer
from beta_pipeline.lib.nn.model import NeuralBeta
from beta_pipeline.lib.nn.scaling import Scaler
from beta_pipeline.lib.nn.system import NeuralBetaSystem
from beta_pipeline.lib.nn.train import (
    TrainResult,
    load_and_predict,
    load_system,
    predict,
    predict_dataset,
    train,
)

__all__ = [
    "BUDGETS",
    "ArrayWindows",
    "Budget",
    "NBHead",
    "NBIHead",
    "NeuralBeta",
    "NeuralBetaConfig",
    "NeuralBetaDataModule",
    "NeuralBetaSystem",
    "PanelWindows",
    "Scaler",
    "TrainResult",
    "get_budget",
    "load_and_predict",
    "load_system",
    "market_windows",
    "predict",
    "predict_dataset",
    "train",
    "window_ols_moments",
    "wls_layer",
]
