"""Sequence encoders: read a window ``[B, h, F]`` (each step ``y_s || x_s``, plus the products
``x_s y_s`` and ``x_s x_s'`` with ``features="stats"``; ``F = cfg.step_inputs``).

Every encoder returns ``(seq, summary)``: ``seq [B, tokens, F]`` per-token features (a token is
``steps_per_token`` consecutive steps, 1 for the GRU) and ``summary [B, F]``. The NB head reads
``summary``, the NBI head reads ``seq``.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from beta_pipeline.lib.nn.config import NeuralBetaConfig


def step_embedding(in_dim: int, cfg: NeuralBetaConfig) -> nn.Module:
    """Per-step (per-patch) input map: identity/linear or a two-layer MLP (``cfg.embed``)."""
    if cfg.embed == "mlp":
        return nn.Sequential(
            nn.Linear(in_dim, cfg.hidden), nn.GELU(), nn.Linear(cfg.hidden, cfg.hidden)
        )
    return nn.Linear(in_dim, cfg.hidden)


class GRUEncoder(nn.Module):
    """GRU over the window in the configured direction (forward, reverse or bi).

    ``summary`` is the state after the last step read: the newest step for ``forward``, the
    oldest for ``reverse`` (which then has seen the whole window), both concatenated for ``bi``.
    """

    steps_per_token = 1

    def __init__(self, cfg: NeuralBetaConfig) -> None:
        super().__init__()
        self.direction = cfg.gru_direction
        steps_in = cfg.step_inputs
        self.embed = step_embedding(steps_in, cfg) if cfg.embed == "mlp" else nn.Identity()
        self.gru = nn.GRU(
            input_size=cfg.hidden if cfg.embed == "mlp" else steps_in,
            hidden_size=cfg.hidden,
            num_layers=cfg.layers,
            batch_first=True,
            dropout=cfg.dropout if cfg.layers > 1 else 0.0,
            bidirectional=self.direction == "bi",
        )
        self.drop = nn.Dropout(cfg.dropout)
        self.out_dim = cfg.hidden * (2 if self.direction == "bi" else 1)

    def forward(self, inp: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        inp = self.embed(inp)
        if self.direction == "reverse":
            out, _ = self.gru(inp.flip(1))
            out = out.flip(1)
            summary = out[:, 0]
        else:
            out, _ = self.gru(inp)
            if self.direction == "bi":
                half = out.shape[-1] // 2
                summary = torch.cat([out[:, -1, :half], out[:, 0, half:]], dim=-1)
            else:
                summary = out[:, -1]
        return self.drop(out), self.drop(summary)


def sinusoidal_table(length: int, dim: int) -> torch.Tensor:
    """Fixed ``[length, dim]`` sine/cosine positional table (Vaswani et al.)."""
    pos = torch.arange(length, dtype=torch.float32)[:, None]
    freq = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * (-math.log(10000.0) / dim))
    table = torch.zeros(length, dim)
    table[:, 0::2] = torch.sin(pos * freq)
    table[:, 1::2] = torch.cos(pos * freq[: dim // 2])
    return table


class AttentionEncoder(nn.Module):
    """Transformer encoder (no causal mask) over non-overlapping patches of ``patch`` steps.

    A patch is flattened to ``patch * F`` numbers and projected to ``hidden``; positions are
    added (sinusoidal or learned). ``summary`` is the output of the newest token.
    """

    def __init__(self, cfg: NeuralBetaConfig) -> None:
        super().__init__()
        self.patch = cfg.patch
        self.steps_per_token = cfg.patch
        tokens = cfg.window // cfg.patch
        self.embed = step_embedding(cfg.patch * cfg.step_inputs, cfg)
        if cfg.pos_encoding == "learned":
            self.pos = nn.Parameter(torch.randn(tokens, cfg.hidden) * 0.02)
        else:
            self.register_buffer("pos", sinusoidal_table(tokens, cfg.hidden), persistent=False)
        layer = nn.TransformerEncoderLayer(
            d_model=cfg.hidden,
            nhead=cfg.heads,
            dim_feedforward=cfg.ff_mult * cfg.hidden,
            dropout=cfg.dropout,
            batch_first=True,
            norm_first=True,
        )
        self.encoder = nn.TransformerEncoder(layer, cfg.layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(cfg.hidden)
        self.out_dim = cfg.hidden

    def forward(self, inp: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        b, h, f = inp.shape
        tokens = inp.reshape(b, h // self.patch, self.patch * f)
        z = self.embed(tokens) + self.pos[: tokens.shape[1]]
        out = self.norm(self.encoder(z))
        return out, out[:, -1]


def build_encoder(cfg: NeuralBetaConfig) -> GRUEncoder | AttentionEncoder:
    """The encoder named by ``cfg.encoder``."""
    return GRUEncoder(cfg) if cfg.encoder == "gru" else AttentionEncoder(cfg)
