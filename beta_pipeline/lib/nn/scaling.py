"""Input scaling of NeuralBeta.

Choice: ``y`` and each factor ``x_j`` are divided by a fixed global scale, their root mean
square (about zero, not the std: centring would add an intercept the model does not have),
fitted on the training split and stored in the model's hparams. Daily returns (~1e-2) then
reach the network at order 1, and the NBI prior (``mu``, ``Sigma``) lives in units where the
weights' scale is comparable across data sets.

The whole network, the NBI WLS layer included, works in scaled units: with ``y' = y / s_y`` and
``x'_j = x_j / s_j``, ``y = <beta, x>`` is ``y' = <beta', x'>`` with
``beta'_j = beta_j s_j / s_y``. WLS is equivariant under this change of units (the prior is
carried along), so the layer's ``beta'`` is un-scaled exactly by ``beta_j = beta'_j s_y / s_j``.
The loss is the scaled hedging MSE, ``MSE_raw / s_y**2``: same minimiser, well conditioned.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch


@dataclass
class Scaler:
    """Global RMS scales: ``y_scale`` (float) and ``x_scale`` (one per factor)."""

    y_scale: float
    x_scale: list[float]

    @classmethod
    def fit(cls, y: np.ndarray, x: np.ndarray) -> Scaler:
        """RMS of ``y`` (any shape) and of ``x [..., d]`` per factor, NaNs ignored."""
        y = np.asarray(y, dtype=float)
        x = np.asarray(x, dtype=float)
        ys = float(np.sqrt(np.nanmean(y**2)))
        xs = np.sqrt(np.nanmean(x.reshape(-1, x.shape[-1]) ** 2, axis=0))
        if not np.isfinite(ys) or ys <= 0 or not np.all(np.isfinite(xs)) or np.any(xs <= 0):
            raise ValueError("cannot fit a scale on all-zero or empty data")
        return cls(ys, [float(v) for v in xs])

    @classmethod
    def identity(cls, d: int) -> Scaler:
        return cls(1.0, [1.0] * d)

    def to_dict(self) -> dict[str, float | list[float]]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> Scaler:
        return cls(float(values["y_scale"]), [float(v) for v in values["x_scale"]])

    def beta_factor(self) -> torch.Tensor:
        """``s_y / s_j`` per factor: ``beta = beta_scaled * beta_factor``."""
        return torch.tensor([self.y_scale / s for s in self.x_scale], dtype=torch.float32)
