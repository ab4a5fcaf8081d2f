"""Self-describing checkpoints: everything needed to run a model, loadable without executing code.

A checkpoint is a ``torch.save``d dict of plain values plus the state dict, so it loads with
``torch.load(..., weights_only=True)``:

    format_version, model_type, model_config, feature_config, class_names, state_dict,
    training (settings), metrics (validation), dataset_id, teacher (for distilled students),
    created (ISO time)
"""

from __future__ import annotations

import datetime as _dt
import os
from dataclasses import dataclass, field
from pathlib import Path

from adcut.errors import ModelError, OutputError
from adcut.features import FeatureConfig

FORMAT_VERSION = 1
DEFAULT_MODELS_DIR = Path("models")
CHECKPOINT_SUFFIX = ".pt"


@dataclass
class Checkpoint:
    model_type: str
    model_config: dict
    feature_config: FeatureConfig
    class_names: tuple[str, ...]
    state_dict: dict
    training: dict = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)
    dataset_id: str | None = None
    teacher: str | None = None
    created: str = ""
    path: Path | None = None  # where it was loaded from (not stored)

    @property
    def name(self) -> str:
        return self.path.name if self.path else f"<{self.model_type}>"

    def to_payload(self) -> dict:
        return {
            "format_version": FORMAT_VERSION,
            "model_type": self.model_type,
            "model_config": dict(self.model_config),
            "feature_config": self.feature_config.to_dict(),
            "class_names": list(self.class_names),
            "state_dict": {k: v.detach().cpu() for k, v in self.state_dict.items()},
            "training": self.training,
            "metrics": self.metrics,
            "dataset_id": self.dataset_id,
            "teacher": self.teacher,
            "created": self.created or _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        }

    def build_model(self, device: str = "cpu"):
        """The module with its weights, in eval mode, on ``device``."""
        from adcut.models import build_model

        model = build_model(self.model_type, self.model_config)
        try:
            model.load_state_dict(self.state_dict)
        except RuntimeError as error:
            raise ModelError(f"{self.name}: weights do not fit the {self.model_type} architecture ({str(error).splitlines()[0]})") from None
        return model.to(device).eval()


def save_checkpoint(path: Path, checkpoint: Checkpoint) -> None:
    """Write atomically (temporary file, then rename)."""
    import torch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        torch.save(checkpoint.to_payload(), tmp)
        os.replace(tmp, path)
    except OSError as error:
        tmp.unlink(missing_ok=True)
        raise OutputError(f"{path}: cannot write checkpoint ({error.strerror or error})") from None


def load_checkpoint(path: Path) -> Checkpoint:
    """Read a checkpoint without executing code; a foreign or damaged file is a ModelError."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise ModelError(f"{path}: model file not found")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many kinds (KeyError, UnpicklingError, ...) for foreign bytes
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ModelError(f"{path}: not an adcut checkpoint or damaged ({first[:160]})") from None
    if not isinstance(payload, dict) or "format_version" not in payload:
        raise ModelError(f"{path}: not an adcut checkpoint (no format_version)")
    version = payload["format_version"]
    if version != FORMAT_VERSION:
        raise ModelError(f"{path}: checkpoint format {version} is not supported (this adcut reads format {FORMAT_VERSION})")
    try:
        return Checkpoint(
            model_type=str(payload["model_type"]),
            model_config=dict(payload["model_config"]),
            feature_config=FeatureConfig.from_dict(dict(payload["feature_config"])),
            class_names=tuple(payload["class_names"]),
            state_dict=dict(payload["state_dict"]),
            training=dict(payload.get("training") or {}),
            metrics=dict(payload.get("metrics") or {}),
            dataset_id=payload.get("dataset_id"),
            teacher=payload.get("teacher"),
            created=str(payload.get("created") or ""),
            path=path,
        )
    except (KeyError, TypeError) as error:
        raise ModelError(f"{path}: checkpoint is missing {error}") from None
    except ModelError as error:
        raise ModelError(f"{path}: {error}") from None


def newest_model(models_dir: Path = DEFAULT_MODELS_DIR) -> Path:
    """The most recently written checkpoint in ``models_dir`` (what commands use without --model)."""
    models_dir = Path(models_dir)
    candidates = sorted(models_dir.glob(f"*{CHECKPOINT_SUFFIX}"), key=lambda p: p.stat().st_mtime) if models_dir.is_dir() else []
    if not candidates:
        raise ModelError(f"no model given and none found in {models_dir}/ (train one with 'adcut train', or pass --model)")
    return candidates[-1]


def resolve_model(path: Path | None, models_dir: Path = DEFAULT_MODELS_DIR) -> Checkpoint:
    """Load ``path``, or the newest checkpoint in ``models_dir`` when ``path`` is None."""
    return load_checkpoint(Path(path) if path else newest_model(models_dir))
