"""The reference model: a 2-layer LSTM over a feature window, classified from its last time step."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class LstmConfig:
    n_features: int = 30
    n_classes: int = 2
    hidden_size: int = 128  # reference value
    num_layers: int = 2  # reference value
    dropout: float = 0.0  # between LSTM layers; the reference used none


class InputNorm(nn.Module):
    """Per-feature standardisation with statistics from the training set, stored in the state dict."""

    mean: torch.Tensor  # buffers
    std: torch.Tensor

    def __init__(self, n_features: int):
        super().__init__()
        self.register_buffer("mean", torch.zeros(n_features))
        self.register_buffer("std", torch.ones(n_features))

    def set_stats(self, mean, std) -> None:
        self.mean.copy_(torch.as_tensor(mean, dtype=torch.float32))
        self.std.copy_(torch.as_tensor(std, dtype=torch.float32).clamp_min(1e-6))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


class LstmClassifier(nn.Module):
    def __init__(self, config: LstmConfig):
        super().__init__()
        self.config = config
        self.norm = InputNorm(config.n_features)
        self.lstm = nn.LSTM(
            config.n_features,
            config.hidden_size,
            num_layers=config.num_layers,
            batch_first=True,
            dropout=config.dropout if config.num_layers > 1 else 0.0,
        )
        self.head = nn.Linear(config.hidden_size, config.n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        hidden, _ = self.lstm(self.norm(x))  # (B, T, H)
        return self.head(hidden[:, -1])  # (B, n_classes): decision at the last time step
