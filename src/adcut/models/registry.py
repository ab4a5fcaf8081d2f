"""The registry that builds a model architecture from a checkpoint's plain config (imports torch)."""

from __future__ import annotations

from dataclasses import asdict, fields

from adcut.errors import ModelError
from adcut.models.lstm import LstmClassifier, LstmConfig
from adcut.models.transformer import TransformerClassifier, TransformerConfig

# model_type -> (config dataclass, module class). Other architectures register here.
MODEL_TYPES: dict[str, tuple[type, type]] = {
    "lstm": (LstmConfig, LstmClassifier),
    "transformer": (TransformerConfig, TransformerClassifier),
}


def build_model(model_type: str, config: dict):
    """A fresh module of ``model_type`` from a plain config dict (as stored in checkpoints)."""
    if model_type not in MODEL_TYPES:
        raise ModelError(f"unknown model type {model_type!r} (known: {', '.join(MODEL_TYPES)})")
    config_cls, model_cls = MODEL_TYPES[model_type]
    known = {f.name for f in fields(config_cls)}
    unknown = set(config) - known
    if unknown:
        raise ModelError(f"{model_type} config has unknown fields: {', '.join(sorted(unknown))}")
    return model_cls(config_cls(**config))


def config_dict(model) -> dict:
    return asdict(model.config)
