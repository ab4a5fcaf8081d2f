"""The LSTM classifier's forward pass in numpy, so that detection on a CPU needs no torch.

Same numbers as ``models/lstm.py``'s ``LstmClassifier`` (float32, within ~1e-5 on logits):
InputNorm, then ``nn.LSTM`` (batch_first, PyTorch gate order i, f, g, o, biases b_ih + b_hh),
the last time step, then the linear head, batched over windows. Each step of each layer is one
matrix product (recurrent weights, input weights and bias stacked) and a few in-place ufuncs.
Measured (benchmarks, 2 x 128 LSTM, one OpenBLAS thread): about 1.3x torch's CPU time for the same
windows; stacking beat one input projection for all steps followed by per-step adds (~2.6x torch,
strided adds), and a second OpenBLAS thread beside decoding doubled the CPU time.
It lives outside ``adcut.models`` because importing that package imports torch.
"""

from __future__ import annotations

import numpy as np

from adcut.errors import ModelError

# LstmConfig's fields (tests/test_lstm_numpy.py checks they stay the same) and their defaults.
CONFIG_DEFAULTS = {"n_features": 30, "n_classes": 2, "hidden_size": 128, "num_layers": 2, "dropout": 0.0}


class NumpyLstmClassifier:
    """Raw feature windows ``(batch, frames, n_features)`` -> class logits ``(batch, n_classes)``."""

    def __init__(self, state: dict[str, np.ndarray], config: dict, name: str = "<lstm>"):
        unknown = set(config) - set(CONFIG_DEFAULTS)
        if unknown:
            raise ModelError(f"lstm config has unknown fields: {', '.join(sorted(unknown))}")
        cfg = {**CONFIG_DEFAULTS, **config}
        self.n_features, self.hidden, self.n_layers = (
            int(cfg["n_features"]),
            int(cfg["hidden_size"]),
            int(cfg["num_layers"]),
        )
        self.n_classes = int(cfg["n_classes"])
        h = self.hidden
        expected = {
            "norm.mean": (self.n_features,),
            "norm.std": (self.n_features,),
            "head.weight": (self.n_classes, h),
            "head.bias": (self.n_classes,),
        }
        for layer in range(self.n_layers):
            inputs = self.n_features if layer == 0 else h
            expected |= {
                f"lstm.weight_ih_l{layer}": (4 * h, inputs),
                f"lstm.weight_hh_l{layer}": (4 * h, h),
                f"lstm.bias_ih_l{layer}": (4 * h,),
                f"lstm.bias_hh_l{layer}": (4 * h,),
            }
        problems = sorted(set(expected) ^ set(state)) or [
            k for k, shape in expected.items() if tuple(np.shape(state[k])) != shape
        ]
        if problems:
            raise ModelError(
                f"{name}: weights do not fit the lstm architecture (check {', '.join(problems[:3])})"
            )

        def f32(key):
            return np.asarray(state[key], dtype=np.float32)

        self.mean, self.std = f32("norm.mean"), f32("norm.std")
        # Column-major state (units x batch), so that each gate is a contiguous block of rows.
        # Gates reordered i, f, g, o -> i, f, o, g: the sigmoid gates first. sigmoid(x) = (1 + tanh(x/2)) / 2,
        # so their rows are pre-scaled by 1/2 and one tanh covers all four gates.
        order = np.r_[0 : 2 * h, 3 * h : 4 * h, 2 * h : 3 * h]
        scale = np.r_[np.full(3 * h, 0.5), np.ones(h)].astype(np.float32)[:, None]
        # One matrix per layer, [W_hh | W_ih | b_ih + b_hh], applied to the stacked column [h; input; 1]:
        # a step's recurrent product, input projection and bias in one matrix product.
        self.weights = []
        for k in range(self.n_layers):
            bias = f32(f"lstm.bias_ih_l{k}") + f32(f"lstm.bias_hh_l{k}")
            stacked = np.concatenate(
                [f32(f"lstm.weight_hh_l{k}"), f32(f"lstm.weight_ih_l{k}"), bias[:, None]], axis=1
            )
            self.weights.append(np.ascontiguousarray(stacked[order] * scale))
        self.head_w, self.head_b = f32("head.weight"), f32("head.bias")

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return self.logits(x)

    def logits(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float32)
        batch, steps, _ = x.shape
        h = self.hidden
        seq = np.ascontiguousarray(
            ((x - self.mean) / self.std).transpose(1, 2, 0)
        )  # (steps, features, batch)
        # stacked[k] = [hidden of layer k; its input (the features, or layer k-1's hidden); 1]
        stacked = [np.zeros((w.shape[1], batch), np.float32) for w in self.weights]
        for column in stacked:
            column[-1] = 1.0
        cells = [np.zeros((h, batch), np.float32) for _ in self.weights]
        gates = np.empty((4 * h, batch), np.float32)
        scratch = np.empty((h, batch), np.float32)
        sig, i, f, o, g = gates[: 3 * h], gates[:h], gates[h : 2 * h], gates[2 * h : 3 * h], gates[3 * h :]
        top = self.n_layers - 1
        for t in range(steps):
            stacked[0][h:-1] = seq[t]
            for layer, (weights, column, cell) in enumerate(zip(self.weights, stacked, cells)):
                np.matmul(weights, column, out=gates)
                np.tanh(gates, out=gates)
                sig += 1.0
                sig *= 0.5
                cell *= f
                np.multiply(i, g, out=scratch)
                cell += scratch
                np.tanh(cell, out=scratch)
                if layer == top:
                    np.multiply(o, scratch, out=column[:h])
                else:  # the next layer's input now, this layer's own state next step
                    np.multiply(o, scratch, out=stacked[layer + 1][h : 2 * h])
                    column[:h] = stacked[layer + 1][h : 2 * h]
        return (self.head_w @ stacked[top][:h]).T + self.head_b

    def probabilities(self, x: np.ndarray) -> np.ndarray:
        logits = self.logits(x)
        logits -= logits.max(axis=1, keepdims=True)
        exp = np.exp(logits)
        return exp / exp.sum(axis=1, keepdims=True)
