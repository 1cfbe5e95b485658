"""Output heads: NB (linear) and NBI (positive weights + regularised WLS layer)."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


def wls_layer(
    x: torch.Tensor, y: torch.Tensor, w: torch.Tensor, mu: torch.Tensor, log_sigma: torch.Tensor
) -> torch.Tensor:
    """``beta = (Sigma^-1 + X'WX)^-1 (Sigma^-1 mu + X'Wy)`` for a batch.

    ``x [B, h, d]``, ``y [B, h]``, ``w [B, h]`` (positive), ``mu [d]``, ``log_sigma [d]`` (the log
    of the diagonal of Sigma). Solved with a batched Cholesky factorisation, no inverse.
    """
    prec = torch.exp(-log_sigma)
    xw = x * w.unsqueeze(-1)
    a = xw.transpose(1, 2) @ x + torch.diag_embed(prec).expand(x.shape[0], -1, -1)
    b = (xw * y.unsqueeze(-1)).sum(1) + prec * mu
    chol = torch.linalg.cholesky(a)
    return torch.cholesky_solve(b.unsqueeze(-1), chol).squeeze(-1)


class NBHead(nn.Module):
    """Linear map of the encoder summary to ``beta`` in R^d."""

    def __init__(self, in_dim: int, d: int) -> None:
        super().__init__()
        self.linear = nn.Linear(in_dim, d)

    @torch.no_grad()
    def init_prior(self, mean: torch.Tensor, var: torch.Tensor, noise_var: float) -> None:
        """Start the output at the average beta (the bias; scaled units)."""
        self.linear.bias.copy_(mean)

    def forward(
        self, seq: torch.Tensor, summary: torch.Tensor, x: torch.Tensor, y: torch.Tensor
    ) -> tuple[torch.Tensor, None]:
        return self.linear(summary), None


class NBIHead(nn.Module):
    """One positive weight per step: ``w_s = softplus(a(seq_s) + b_s)``.

    ``a`` is a linear map of the per-token encoder features (a token of ``steps_per_token``
    steps gets that many weights) and ``b_s`` a trainable per-position bias (init 0), which
    lets the model learn an age profile (e.g. exponential decay) directly; the data-dependent
    part modulates it. ``a`` starts at zero, so an untrained NBI is ridge regression with
    uniform weights ``softplus(0)``. ``mu`` and ``log_sigma`` (diagonal Sigma =
    exp(log_sigma)) are global trainable parameters, initialised at 0 (prior N(0, I) in scaled
    units).
    """

    def __init__(self, in_dim: int, d: int, window: int, steps_per_token: int = 1) -> None:
        super().__init__()
        self.steps_per_token = steps_per_token
        self.linear = nn.Linear(in_dim, steps_per_token)
        nn.init.zeros_(self.linear.weight)  # start as ridge WLS with uniform weights
        nn.init.zeros_(self.linear.bias)
        self.position_bias = nn.Parameter(torch.zeros(window))
        self.mu = nn.Parameter(torch.zeros(d))
        self.log_sigma = nn.Parameter(torch.zeros(d))

    @torch.no_grad()
    def init_prior(self, mean: torch.Tensor, var: torch.Tensor, noise_var: float) -> None:
        """Empirical-Bayes start (scaled units): ``mu`` = the average window OLS beta,
        ``Sigma`` = the variance of those betas, uniform weights ``1 / noise_var``. The
        untrained NBI is then the Bayesian posterior mean under that prior."""
        self.mu.copy_(mean)
        self.log_sigma.copy_(torch.log(var.clamp_min(1e-4)))
        w0 = torch.tensor(1.0 / max(noise_var, 1e-6))
        self.linear.bias.fill_(float(w0 + torch.log(-torch.expm1(-w0))))  # softplus^-1(w0)

    def weights(self, seq: torch.Tensor) -> torch.Tensor:
        """``[B, h]`` positive weights from ``seq [B, tokens, F]``."""
        return F.softplus(self.linear(seq).flatten(1) + self.position_bias)

    def forward(
        self, seq: torch.Tensor, summary: torch.Tensor, x: torch.Tensor, y: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        w = self.weights(seq)
        return wls_layer(x, y, w, self.mu, self.log_sigma), w
