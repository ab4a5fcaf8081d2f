"""A small encoder-only transformer over a feature window, mean-pooled over time into class logits."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from adcut.errors import ModelError
from adcut.models.lstm import InputNorm


@dataclass(frozen=True)
class TransformerConfig:
    n_features: int = 30
    n_classes: int = 2
    d_model: int = 32  # reference value
    n_heads: int = 4  # reference value
    num_layers: int = 2  # reference value
    dim_feedforward: int = 128  # reference value
    dropout: float = 0.1  # reference value
    max_frames: int = 1024  # longest window accepted (64 s at 16 frames/s)


def sinusoidal_positions(n_positions: int, d_model: int) -> torch.Tensor:
    """``(n_positions, d_model)`` fixed sine/cosine encodings (Vaswani et al., 2017).

    Fixed rather than learned so that a window length unseen in training still gets sensible
    positions, and nothing about positions has to be learned from a few episodes.
    """
    position = torch.arange(n_positions, dtype=torch.float32)[:, None]
    rates = torch.exp(torch.arange(0, d_model, 2, dtype=torch.float32) * (-math.log(10000.0) / d_model))
    table = torch.zeros(n_positions, d_model)
    table[:, 0::2] = torch.sin(position * rates)
    table[:, 1::2] = torch.cos(position * rates)[:, : d_model // 2]
    return table


class TransformerClassifier(nn.Module):
    positions: torch.Tensor  # a buffer

    def __init__(self, config: TransformerConfig):
        super().__init__()
        if config.d_model % config.n_heads:
            raise ModelError(
                f"transformer d_model {config.d_model} is not divisible by n_heads {config.n_heads}"
            )
        self.config = config
        self.norm = InputNorm(config.n_features)
        self.project = nn.Linear(config.n_features, config.d_model)
        # Not persistent: derived from the config, so checkpoints stay small and independent of it.
        self.register_buffer(
            "positions", sinusoidal_positions(config.max_frames, config.d_model), persistent=False
        )
        layer = nn.TransformerEncoderLayer(
            config.d_model,
            config.n_heads,
            dim_feedforward=config.dim_feedforward,
            dropout=config.dropout,
            batch_first=True,
            norm_first=True,  # pre-norm trains stably without a warm-up schedule
        )
        self.encoder = nn.TransformerEncoder(
            layer, config.num_layers, norm=nn.LayerNorm(config.d_model), enable_nested_tensor=False
        )
        self.head = nn.Linear(config.d_model, config.n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        frames = x.shape[1]
        if frames > self.config.max_frames:
            raise ModelError(
                f"window of {frames} frames is longer than this transformer's max_frames {self.config.max_frames} "
                "(train one with a larger max_frames, e.g. --model-option max_frames=N)"
            )
        hidden = self.project(self.norm(x)) + self.positions[:frames]  # (B, T, d_model)
        hidden = self.encoder(hidden)
        return self.head(hidden.mean(dim=1))  # (B, n_classes): every frame votes equally
