"""Running a model over feature windows: batching, device choice and torch's thread count.

A "predictor" is what ``build_predictor`` returns for a checkpoint: the numpy LSTM on a CPU
(no torch import at all: ~1.2 s and ~235 MB less for ``adcut process``), else the torch module.
``predict_windows`` runs either.
"""

from __future__ import annotations

import os

import numpy as np

from adcut.errors import AdcutError

DEFAULT_BATCH_SIZE = 256
NUMPY_BATCH = 256  # measured in detect: 256 windows per call use ~10% less CPU than 64 in the numpy LSTM


def _no_nvidia_driver() -> bool:
    """True where CUDA surely cannot work (Linux without the NVIDIA driver), known without importing torch."""
    return (
        os.name == "posix"
        and not os.path.exists("/proc/driver/nvidia/version")
        and not os.path.exists("/dev/nvidia0")
    )


def choose_device(requested: str | None = "auto") -> str:
    """``auto`` -> ``cuda`` when a GPU is there, else ``cpu``; ``cuda`` without a GPU is an error."""
    requested = (requested or "auto").lower()
    if requested == "cpu" or (requested == "auto" and _no_nvidia_driver()):
        return "cpu"
    import torch

    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if requested == "cuda" and not torch.cuda.is_available():
        raise AdcutError("--device cuda: no CUDA GPU is available here (use --device cpu or auto)")
    if requested not in ("cpu", "cuda"):
        raise AdcutError(f"--device must be auto, cpu or cuda, not {requested!r}")
    return requested


def set_torch_threads(threads: int | None = None) -> int:
    """Set torch's intra-op threads deliberately (``ADCUT_THREADS`` or ``threads``; default: cores).

    For batched inference all cores help; small-batch LSTM training is often faster on one
    thread (measured by ``benchmarks/learn_speed.py``), so training passes its own number.
    """
    import torch

    if threads is None:
        threads = int(os.environ.get("ADCUT_THREADS", "0")) or (os.cpu_count() or 1)
    threads = max(1, threads)
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    return threads


def build_predictor(checkpoint, device: str = "cpu"):
    """What runs ``checkpoint`` on ``device``: the numpy LSTM on a CPU, else the torch module."""
    if checkpoint.model_type == "lstm" and device == "cpu":
        from adcut.models.lstm_numpy import NumpyLstmClassifier

        return NumpyLstmClassifier(checkpoint.arrays(), checkpoint.model_config, checkpoint.name)
    return checkpoint.build_model(device)


def uses_torch(predictor) -> bool:
    from adcut.models.lstm_numpy import NumpyLstmClassifier

    return not isinstance(predictor, NumpyLstmClassifier)


def predict_windows(
    model, windows: np.ndarray, *, batch_size: int = DEFAULT_BATCH_SIZE, device: str = "cpu"
) -> np.ndarray:
    """Class probabilities ``(n_windows, n_classes)`` for ``(n_windows, frames, features)`` windows.

    ``model`` is a torch module or a predictor from ``build_predictor``.
    """
    if not uses_torch(model):
        # Wider batches only help numpy (fewer, larger steps) and cost it little memory: whatever a
        # caller's torch-tuned batch size, run up to NUMPY_BATCH windows at once.
        batch_size = max(batch_size, NUMPY_BATCH)
        out = [
            model.probabilities(windows[start : start + batch_size])
            for start in range(0, len(windows), batch_size)
        ]
        return np.concatenate(out).astype(np.float32, copy=False) if out else np.zeros((0, 0), np.float32)
    import torch

    model.eval()
    out = []
    with torch.inference_mode():
        for start in range(0, len(windows), batch_size):
            batch = torch.from_numpy(np.ascontiguousarray(windows[start : start + batch_size])).to(device)
            out.append(torch.softmax(model(batch).float(), dim=-1).cpu().numpy())
    if not out:
        return np.zeros((0, 0), np.float32)
    return np.concatenate(out)
