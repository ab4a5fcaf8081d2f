"""Self-describing checkpoints: everything needed to run a model, loadable without executing code or torch.

A checkpoint is a safetensors file (``NAME.safetensors``; older ones were named ``.pt``): the state dict as tensors, and in its metadata (key ``adcut``)
a JSON object of plain values:

    format_version, model_type, model_config, feature_config, class_names, training (settings),
    metrics (validation), dataset_id, teacher (for distilled students), created (ISO time)

Reading it needs only numpy (``adcut process`` runs an LSTM without importing torch). Files of
format 1 (a ``torch.save``d dict) are still read, with ``torch.load(..., weights_only=True)``.
"""

from __future__ import annotations

import datetime as _dt
import json
import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from adcut.core.files import atomic_write
from adcut.core.segments import default_background
from adcut.errors import ModelError
from adcut.features.mfcc import FeatureConfig

FORMAT_VERSION = 2
LEGACY_FORMAT_VERSION = 1  # torch.save'd dict, before safetensors
METADATA_KEY = "adcut"
DEFAULT_MODELS_DIR = Path("models")
CHECKPOINT_SUFFIX = ".safetensors"  # what adcut writes
CHECKPOINT_SUFFIXES = (CHECKPOINT_SUFFIX, ".pt")  # what it reads: .pt is the name checkpoints had before


@dataclass
class Checkpoint:
    model_type: str
    model_config: dict
    feature_config: FeatureConfig
    class_names: tuple[str, ...]
    state_dict: dict  # name -> numpy array when loaded; torch tensors are accepted too (training)
    training: dict = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)
    dataset_id: str | None = None
    teacher: str | None = None
    created: str = ""
    path: Path | None = None  # where it was loaded from (not stored)
    # The class of unlabelled time (what evaluation, comparison and the labeller fill gaps with). Stored
    # at training from the dataset; checkpoints from before it was stored: core.segments.default_background.
    background: str = ""

    def __post_init__(self) -> None:
        if not self.background:
            self.background = default_background(self.class_names)
        elif self.background not in self.class_names:
            raise ModelError(
                f"{self.name}: background class {self.background!r} is not one of its classes "
                f"({', '.join(self.class_names)})"
            )

    @property
    def name(self) -> str:
        return self.path.name if self.path else f"<{self.model_type}>"

    def description(self) -> dict:
        """Everything but the weights, as plain JSON values."""
        return {
            "format_version": FORMAT_VERSION,
            "model_type": self.model_type,
            "model_config": dict(self.model_config),
            "feature_config": self.feature_config.to_dict(),
            "class_names": list(self.class_names),
            "background": self.background,
            "training": self.training,
            "metrics": self.metrics,
            "dataset_id": self.dataset_id,
            "teacher": self.teacher,
            "created": self.created or _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        }

    def check_feature_count(self, n_features: int, who: str | None = None) -> None:
        """ModelError unless the model reads ``n_features`` per frame (what its feature settings give)."""
        expected = self.model_config.get("n_features")
        if expected is not None and expected != n_features:
            raise ModelError(
                f"{who or self.name}: the model reads {expected} features per frame but its "
                f"feature settings give {n_features}"
            )

    def arrays(self) -> dict[str, np.ndarray]:
        """The state dict as contiguous numpy arrays (torch tensors converted)."""
        return {name: _to_numpy(value) for name, value in self.state_dict.items()}

    def build_model(self, device: str = "cpu"):
        """The torch module with its weights, in eval mode, on ``device``."""
        import torch

        from adcut.models.registry import build_model

        model = build_model(self.model_type, self.model_config)
        # numpy arrays as writable copies (torch.from_numpy wants writable memory); tensors as they are
        state = {
            k: torch.from_numpy(np.array(v)) if isinstance(v, np.ndarray) else v
            for k, v in self.state_dict.items()
        }
        try:
            model.load_state_dict(state)
        except RuntimeError as error:
            raise ModelError(
                f"{self.name}: weights do not fit the {self.model_type} architecture ({str(error).splitlines()[0]})"
            ) from None
        return model.to(device).eval()


def _to_numpy(value) -> np.ndarray:
    if hasattr(value, "detach"):  # a torch tensor
        value = value.detach().cpu().numpy()
    return np.ascontiguousarray(value)


def _plain(value):
    """JSON fallback for the odd numpy scalar or path in training settings."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not a plain value")


def save_checkpoint(path: Path, checkpoint: Checkpoint) -> None:
    """Write atomically (temporary file, then rename)."""
    from safetensors.numpy import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        metadata = {METADATA_KEY: json.dumps(checkpoint.description(), default=_plain)}
    except TypeError as error:
        raise ModelError(f"{path}: checkpoint description is not plain data ({error})") from None
    with atomic_write(path, "checkpoint") as tmp:
        save_file(checkpoint.arrays(), str(tmp), metadata=metadata)


def _kind(path: Path) -> str:
    """``safetensors`` (an 8-byte header length that fits the file, then a JSON object), ``torch`` (zip or pickle), else why not."""
    with open(path, "rb") as handle:
        head = handle.read(9)
    if not head:
        return "empty file"
    if len(head) == 9 and head[8:9] == b"{" and 8 + struct.unpack("<Q", head[:8])[0] <= path.stat().st_size:
        return "safetensors"
    if head.startswith((b"PK\x03\x04", b"\x80")):
        return "torch"
    return "neither safetensors nor a torch file"


def _read_safetensors(path: Path) -> dict:
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="np") as handle:
            metadata = handle.metadata() or {}
            if METADATA_KEY not in metadata:
                raise ModelError(f"{path}: not an adcut checkpoint (no adcut description in its metadata)")
            state = {name: handle.get_tensor(name) for name in handle.keys()}
        payload = json.loads(metadata[METADATA_KEY])
    except ModelError:
        raise
    except Exception as error:  # safetensors raises its own SafetensorError; json a ValueError
        raise ModelError(f"{path}: not an adcut checkpoint or damaged ({_first_line(error)})") from None
    if not isinstance(payload, dict):
        raise ModelError(f"{path}: not an adcut checkpoint (its description is not an object)")
    payload["state_dict"] = state
    return payload


def _read_legacy(source, path: Path) -> dict:
    """Format 1: a ``torch.save``d dict (``source``: its file or a file object), read without executing code."""
    import torch

    try:
        return torch.load(source, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many kinds (KeyError, UnpicklingError, ...) for foreign bytes
        raise ModelError(f"{path}: not an adcut checkpoint or damaged ({_first_line(error)})") from None


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return (text.splitlines()[0] if text else type(error).__name__)[:160]


def read_description(path: Path) -> dict:
    """The checkpoint's stored plain values (what ``load_checkpoint`` builds on), weights under ``state_dict``."""
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"{path}: model file not found")
    try:
        kind = _kind(path)
    except OSError as error:
        raise ModelError(f"{path}: cannot read model file ({error.strerror or error})") from None
    if kind == "safetensors":
        payload = _read_safetensors(path)
    elif kind == "torch":
        payload = _read_legacy(path, path)
    else:
        raise ModelError(f"{path}: not an adcut checkpoint or damaged ({kind})")
    if not isinstance(payload, dict) or "format_version" not in payload:
        raise ModelError(f"{path}: not an adcut checkpoint (no format_version)")
    return payload


def load_checkpoint(path: Path) -> Checkpoint:
    """Read a checkpoint without executing code; a foreign or damaged file is a ModelError."""
    path = Path(path)
    return _from_payload(read_description(path), path)


def load_checkpoint_bytes(data: bytes, path: Path) -> Checkpoint:
    """A checkpoint from the bytes of its file (as shipped to cluster workers); ``path`` names where it came from.

    ``path`` need not exist where this runs: it gives the model's name in outputs and the time that skip rules
    compare against, where the file is readable.
    """
    path = Path(path)
    data = bytes(data)
    if len(data) >= 9 and data[8:9] == b"{" and 8 + struct.unpack("<Q", data[:8])[0] <= len(data):
        payload = _parse_safetensors_bytes(data, path)
    elif data.startswith((b"PK\x03\x04", b"\x80")):
        import io

        payload = _read_legacy(io.BytesIO(data), path)
    else:
        raise ModelError(
            f"{path}: not an adcut checkpoint or damaged ({'empty file' if not data else 'neither safetensors nor a torch file'})"
        )
    if not isinstance(payload, dict) or "format_version" not in payload:
        raise ModelError(f"{path}: not an adcut checkpoint (no format_version)")
    return _from_payload(payload, path)


def _parse_safetensors_bytes(data: bytes, path: Path) -> dict:
    from safetensors.numpy import load

    try:
        header = json.loads(data[8 : 8 + struct.unpack("<Q", data[:8])[0]])
        metadata = header.get("__metadata__") or {}
        if METADATA_KEY not in metadata:
            raise ModelError(f"{path}: not an adcut checkpoint (no adcut description in its metadata)")
        state = load(data)
        payload = json.loads(metadata[METADATA_KEY])
    except ModelError:
        raise
    except Exception as error:  # as in _read_safetensors
        raise ModelError(f"{path}: not an adcut checkpoint or damaged ({_first_line(error)})") from None
    if not isinstance(payload, dict):
        raise ModelError(f"{path}: not an adcut checkpoint (its description is not an object)")
    payload["state_dict"] = state
    return payload


def _from_payload(payload: dict, path: Path) -> Checkpoint:
    version = payload["format_version"]
    if version not in (FORMAT_VERSION, LEGACY_FORMAT_VERSION):
        raise ModelError(
            f"{path}: checkpoint format {version} is not supported (this adcut reads format {FORMAT_VERSION})"
        )
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
            background=str(payload.get("background") or ""),
        )
    except (KeyError, TypeError) as error:
        raise ModelError(f"{path}: checkpoint is missing {error}") from None
    except ModelError as error:
        raise ModelError(f"{path}: {error}") from None


def newest_model(models_dir: Path = DEFAULT_MODELS_DIR) -> Path:
    """The most recently written checkpoint in ``models_dir`` (what commands use without --model)."""
    models_dir = Path(models_dir)
    found = (
        [p for p in models_dir.iterdir() if p.suffix in CHECKPOINT_SUFFIXES] if models_dir.is_dir() else []
    )
    candidates = sorted(found, key=lambda p: p.stat().st_mtime)
    if not candidates:
        raise ModelError(
            f"no model given and none found in {models_dir}/ (train one with 'adcut train', or pass --model)"
        )
    return candidates[-1]


def resolve_model(path: Path | None, models_dir: Path = DEFAULT_MODELS_DIR) -> Checkpoint:
    """Load ``path``, or the newest checkpoint in ``models_dir`` when ``path`` is None."""
    return load_checkpoint(Path(path) if path else newest_model(models_dir))
