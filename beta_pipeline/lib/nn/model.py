"""``NeuralBeta``: encoder + head, in scaled units (see :mod:`beta_pipeline.lib.nn.scaling`)."""

from __future__ import annotations

import torch
from torch import nn

from beta_pipeline.lib.nn.config import NeuralBetaConfig
from beta_pipeline.lib.nn.encoders import build_encoder
from beta_pipeline.lib.nn.heads import NBHead, NBIHead


class NeuralBeta(nn.Module):
    """Maps a window ``x [B, h, d]``, ``y [B, h]`` to ``beta_{t+1} [B, d]`` (and NBI weights).

    The per-step input is ``y_s || x_s`` (``features="raw"``) or ``y_s || x_s || x_s y_s ||
    triu(x_s x_s')`` (``features="stats"``). ``forward`` returns ``(beta, weights)`` with
    ``weights [B, h]`` for NBI and ``None`` for NB.
    """

    def __init__(self, cfg: NeuralBetaConfig) -> None:
        super().__init__()
        self.cfg = cfg
        rows, cols = torch.triu_indices(cfg.d, cfg.d)
        self.register_buffer("_triu", torch.stack([rows, cols]), persistent=False)
        self.encoder = build_encoder(cfg)
        if cfg.head == "nb":
            self.head: NBHead | NBIHead = NBHead(self.encoder.out_dim, cfg.d)
        else:
            self.head = NBIHead(
                self.encoder.out_dim, cfg.d, cfg.window, self.encoder.steps_per_token
            )

    def step_inputs(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """``[B, h, cfg.step_inputs]``: the numbers each step feeds the encoder."""
        parts = [y.unsqueeze(-1), x]
        if self.cfg.features == "stats":
            rows, cols = self._triu
            parts += [x * y.unsqueeze(-1), x[..., rows] * x[..., cols]]
        return torch.cat(parts, dim=-1)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        inp = self.step_inputs(x, y)
        seq, summary = self.encoder(inp)
        return self.head(seq, summary, x, y)
