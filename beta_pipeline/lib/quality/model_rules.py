"""Rules of a NeuralBeta training run (``neuralbeta_model_sanity``): finite checkpoint
weights, and a validation RMSE(y) not worse than window OLS on the same windows. torch is
imported only when a rule runs."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from beta_pipeline.lib.quality.outcome import CheckOutcome

if TYPE_CHECKING:  # pragma: no cover
    import torch


def window_ols_rmse(dataset: torch.utils.data.Dataset, batch: int = 4096) -> float:
    """RMSE(y) of the next-step hedge by OLS (no intercept) on each window of ``dataset``
    (NeuralBeta's ``ArrayWindows``/``PanelWindows``: ``x, y, x_next, y_next``), in raw
    units: the baseline of the validation loss."""
    import torch

    sse, n = 0.0, 0
    for lo in range(0, len(dataset), batch):
        b = dataset[torch.arange(lo, min(lo + batch, len(dataset)))]
        x, y = b["x"].double(), b["y"].double()
        if x.dim() == 2:
            x = x[..., None]
        xtx = x.transpose(1, 2) @ x
        xty = x.transpose(1, 2) @ y[..., None]
        eye = 1e-12 * torch.eye(x.shape[-1], dtype=x.dtype)
        beta = torch.linalg.solve(xtx + eye, xty)[..., 0]
        x_next = b["x_next"].double().reshape(beta.shape)
        err = b["y_next"].double() - (beta * x_next).sum(-1)
        err = err[torch.isfinite(err)]
        sse += float(err.pow(2).sum())
        n += int(err.numel())
    return math.sqrt(sse / n) if n else float("nan")


def checkpoint_non_finite(path: str) -> list[str]:
    """Names of the checkpoint's tensors holding a NaN or an infinity (``path``: a file or an
    fsspec URL)."""
    import fsspec
    import torch

    with fsspec.open(path, "rb") as src:
        state = torch.load(src, map_location="cpu", weights_only=False)
    state = state.get("state_dict", state) if isinstance(state, dict) else state
    return [
        name
        for name, t in state.items()
        if isinstance(t, torch.Tensor) and t.is_floating_point() and not torch.isfinite(t).all()
    ]


def check_model_run(
    checkpoint: str, model_rmse_y: float | None, ols_rmse_y: float | None, tolerance: float = 0.0
) -> list[CheckOutcome]:
    """Finite weights in ``checkpoint``; validation RMSE(y) at most the OLS one."""
    try:
        bad = checkpoint_non_finite(checkpoint)
        weights = CheckOutcome(
            "weights_finite",
            not bad,
            "error",
            len(bad),
            "all weights finite" if not bad else f"non-finite tensors: {', '.join(bad[:10])}",
        )
    except (OSError, RuntimeError, ValueError) as exc:
        weights = CheckOutcome("weights_finite", False, "error", None, f"unreadable: {exc}")
    if ols_rmse_y is None or not math.isfinite(ols_rmse_y):
        val = CheckOutcome(
            "val_not_worse_than_ols", True, "warn", None, "no OLS validation RMSE recorded"
        )
    elif model_rmse_y is None or not math.isfinite(model_rmse_y):
        val = CheckOutcome(
            "val_not_worse_than_ols", False, "warn", None, "no finite validation RMSE(y)"
        )
    else:
        ratio = model_rmse_y / ols_rmse_y if ols_rmse_y > 0 else float("inf")
        val = CheckOutcome(
            "val_not_worse_than_ols",
            ratio <= 1.0 + tolerance,
            "warn",
            ratio,
            f"validation RMSE(y) {model_rmse_y:.6g} vs window OLS {ols_rmse_y:.6g} "
            f"({(1 - ratio) * 100:+.2f} % improvement)",
        )
    return [weights, val]
