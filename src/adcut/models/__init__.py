"""Model architectures, one file each, and the registry that builds them from a checkpoint's config.

Every model takes feature windows ``(batch, frames, n_features)`` of raw (unnormalised) features
and returns class logits ``(batch, n_classes)``. Input normalisation lives inside the model as
buffers, so a checkpoint alone is enough to run it.
"""

from __future__ import annotations

from dataclasses import asdict, fields

from adcut.errors import ModelError
from adcut.models.lstm import LstmClassifier, LstmConfig

# model_type -> (config dataclass, module class). Other architectures register here.
MODEL_TYPES: dict[str, tuple[type, type]] = {
    "lstm": (LstmConfig, LstmClassifier),
}


def _register_optional() -> None:
    try:
        from adcut.models.transformer import TransformerClassifier, TransformerConfig
    except ImportError:
        return
    MODEL_TYPES["transformer"] = (TransformerConfig, TransformerClassifier)


_register_optional()


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
