"""Temperature scaling: one number that makes a model's softmax confidences match its validation accuracy."""

from __future__ import annotations

import numpy as np


def fit_temperature(logits, labels, *, max_iter: int = 100) -> float:
    """The T > 0 minimising the NLL of ``softmax(logits / T)`` on held-out ``labels`` (1.0 when empty).

    Optimised over log T (so T stays positive) with L-BFGS; the result is clamped to [0.05, 20]
    so a degenerate validation set (e.g. everything right with huge margins) cannot yield an
    absurd value.
    """
    import torch
    import torch.nn.functional as F

    logits = torch.as_tensor(np.asarray(logits), dtype=torch.float64)
    labels = torch.as_tensor(np.asarray(labels), dtype=torch.long)
    if logits.ndim != 2 or len(logits) == 0 or len(labels) != len(logits):
        return 1.0
    log_t = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    optimiser = torch.optim.LBFGS([log_t], lr=0.5, max_iter=max_iter, line_search_fn="strong_wolfe")

    def closure():
        optimiser.zero_grad()
        loss = F.cross_entropy(logits / log_t.exp(), labels)
        loss.backward()
        return loss

    optimiser.step(closure)
    value = float(log_t.detach().exp())
    if not np.isfinite(value):
        return 1.0
    return float(np.clip(value, 0.05, 20.0))
