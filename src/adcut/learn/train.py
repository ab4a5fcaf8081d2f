"""Training a classifier on a cached dataset: balanced sampling, best-by-validation checkpoints, distillation.

Training reads only the dataset's feature matrices (never audio). Each epoch draws batches of
windows (class-weighted sampling by default, uniform when the dataset is balanced by half-swap
augmentation), then scores the validation episodes; the checkpoint on disk is always the best
epoch so far by balanced accuracy (the mean of the per-class recalls, so a model that calls
everything the majority class scores 1/classes however large that class is), ties broken by lower
validation loss. At the end it warns when the kept model (almost) never predicts a class.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from adcut.errors import AdcutError, ModelError
from adcut.learn.dataset import Dataset
from adcut.learn.sources import VALIDATION
from adcut.learn.windows import WindowSamples
from adcut.models.checkpoint import Checkpoint, save_checkpoint

log = logging.getLogger(__name__)

# Threads for training on the CPU. Measured with benchmarks/learn_speed.py on the 2-core machine
# (reference LSTM, hidden 128, batch 32, one epoch of 4,000 cached windows, load average ~2):
# bf16 1 thread 6.5 s, 2 threads 61 s; fp32 1 thread 13.2 s, 2 threads 48.5 s. Each small LSTM
# step is too short to split, and a second OpenMP thread that is descheduled stalls every step.
DEFAULT_TRAIN_THREADS = 1
VALIDATION_BATCH = 256


@dataclass(frozen=True)
class TrainConfig:
    """Training settings; stored in the checkpoint. Defaults follow the reference project."""

    model_type: str = "lstm"
    model_config: Mapping = field(default_factory=dict)  # overrides of the model's config dataclass
    # Adam. Measured (reference LSTM, 6 generated 4-min episodes, 2 for validation, 10 epochs, seeds 0/1):
    # best validation balanced accuracy 8e-5 0.903/0.903 (both at epoch 10, still rising), 3e-4
    # 0.954/0.924, 1e-3 0.935/0.917 (seed 1 there by epoch 3). The reference's 8e-5 is too slow for
    # a few epochs on a CPU; 3e-4 and 1e-3 are within seed noise of each other.
    lr: float = 1e-3
    batch_size: int = 32
    epochs: int = 30
    batches_per_epoch: int | None = None  # None: one pass's worth of training windows
    early_stopping_patience: int | None = 8  # epochs without a better validation score; None = never
    seed: int = 0
    device: str = "auto"
    threads: int | None = None  # None: DEFAULT_TRAIN_THREADS on the CPU
    precision: str = "auto"  # auto | fp32 | bf16 (mixed precision; auto = bf16 where the CPU has it natively)
    distill_alpha: float = 0.5  # weight of the label loss; 1 - alpha goes to matching the teacher
    distill_temperature: float = 2.0

    def to_dict(self) -> dict:
        data = asdict(self)
        data["model_config"] = dict(self.model_config)
        return data


def choose_precision(requested: str, device: str) -> str:
    """``bf16`` autocast for training where the hardware does bf16 natively, else ``fp32``.

    On this project's 2-core Xeon (AMX), bf16 autocast made the reference LSTM's training step
    3.5x faster (~1480 vs ~420 windows per CPU-second, batch 32) and a whole epoch 2x
    (benchmarks/learn_speed.py: 6.5 vs 13.2 s for 4,000 windows), with validation losses equal to
    fp32's to 4 digits over 6 epochs; without native support it would be slower than fp32, so auto
    falls back. Weights stay fp32, and validation and inference run in fp32.
    """
    import torch

    requested = (requested or "auto").lower()
    if requested not in ("auto", "fp32", "bf16"):
        raise AdcutError(f"precision must be auto, fp32 or bf16, not {requested!r}")
    if requested != "auto":
        return requested
    if device == "cpu":
        native = (
            getattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)()
            or getattr(torch.cpu, "_is_amx_tile_supported", lambda: False)()
        )
        return "bf16" if native else "fp32"
    return "fp32"


def distillation_loss(student_logits, teacher_logits, labels, alpha: float, temperature: float):
    """``alpha * CE(labels) + (1 - alpha) * T^2 * KL(softmax(teacher/T) || softmax(student/T))``.

    The T^2 factor keeps the soft term's gradient scale independent of T (Hinton et al.). The
    teacher's logits are detached: gradients reach the student only.
    """
    import torch.nn.functional as F

    hard = F.cross_entropy(student_logits, labels)
    t = float(temperature)
    soft = F.kl_div(
        F.log_softmax(student_logits / t, dim=-1),
        F.log_softmax(teacher_logits.detach() / t, dim=-1),
        log_target=True,
        reduction="batchmean",
    )
    return alpha * hard + (1.0 - alpha) * (t * t) * soft


def normalisation_stats(
    dataset: Dataset, samples: WindowSamples, limit: int = 4096, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Per-feature mean and std over (up to ``limit``) training windows."""
    rng = np.random.default_rng(seed)
    pick = (
        samples
        if len(samples) <= limit
        else samples.take(np.sort(rng.choice(len(samples), limit, replace=False)))
    )
    windows = dataset.gather(pick).reshape(-1, dataset.frames.shape[1]).astype(np.float64)
    return windows.mean(axis=0), windows.std(axis=0)


def sampling_weights(labels: np.ndarray, n_classes: int) -> np.ndarray:
    """Per-window probabilities giving every present class the same total weight."""
    counts = np.bincount(labels, minlength=n_classes).astype(np.float64)
    weights = 1.0 / counts[labels]
    return weights / weights.sum()


def label_durations(manifest: dict) -> dict[str, dict]:
    """Per class: ``count``, ``min``, ``p10`` and ``median`` seconds of the labelled segments.

    Only segments with a neighbour on both sides count: the first and last of an episode are cut
    by its start or end, so their lengths say nothing about how long that class lasts. Detection
    derives its minimum durations from these (segment.resolve_minimums).
    """
    lengths: dict[str, list[float]] = {}
    for episode in manifest.get("episodes", []):
        runs: list[list] = []  # [label, start, end], touching segments of one class merged
        for seg in sorted(episode.get("segments") or [], key=lambda s: float(s["start"])):
            label, start, end = str(seg["label"]), float(seg["start"]), float(seg["end"])
            if runs and runs[-1][0] == label and start <= runs[-1][2] + 1e-6:
                runs[-1][2] = max(runs[-1][2], end)
            else:
                runs.append([label, start, end])
        for label, start, end in runs[1:-1]:
            lengths.setdefault(label, []).append(end - start)
    return {
        label: {
            "count": len(values),
            "min": round(min(values), 3),
            "p10": round(float(np.percentile(values, 10)), 3),
            "median": round(float(np.median(values)), 3),
        }
        for label, values in sorted(lengths.items())
        if values
    }


def balanced_accuracy(predicted: np.ndarray, labels: np.ndarray, n_classes: int) -> float:
    """Mean recall over the classes present in ``labels`` (each class counts the same, whatever its share)."""
    recalls = [float((predicted[labels == c] == c).mean()) for c in range(n_classes) if (labels == c).any()]
    return float(np.mean(recalls)) if recalls else 0.0


RARE_PREDICTION = (
    0.02  # a class with validation windows that the model predicts for fewer than this share of them
)


def class_warnings(metrics: Mapping, classes) -> list[str]:
    """One line per class that the kept model never (or almost never) predicts on validation, with what to try."""
    recalls = metrics.get("val_recall") or {}
    messages = []
    for name in classes:
        if name in recalls and recalls[name] < RARE_PREDICTION:
            messages.append(
                f"the model almost never predicts {name!r} on validation (recall {recalls[name]:.3f}): it has not "
                f"learned that class. Try more epochs, another --lr, more labelled {name!r} episodes, or check "
                f"the labels (host-read ads have no sound cue: see --learn-phrases / --words)"
            )
    return messages


def _logits(model, dataset: Dataset, samples: WindowSamples, device: str, batch: int = VALIDATION_BATCH):
    import torch

    out = []
    model.eval()
    with torch.inference_mode():
        for start in range(0, len(samples), batch):
            part = samples.take(np.arange(start, min(start + batch, len(samples))))
            out.append(model(torch.from_numpy(dataset.gather(part)).to(device)).float().cpu())
    return torch.cat(out) if out else torch.zeros((0, len(dataset.classes)))


def train(
    dataset: Dataset,
    config: TrainConfig,
    output_path: Path,
    teacher: Checkpoint | None = None,
    progress: bool = True,
) -> Checkpoint:
    """Train a fresh model on ``dataset`` and keep its best epoch at ``output_path``; returns that checkpoint."""
    import torch
    import torch.nn.functional as F
    from tqdm import tqdm

    from adcut.learn.calibration import fit_temperature
    from adcut.models.inference import choose_device, set_torch_threads
    from adcut.models.registry import MODEL_TYPES, build_model, config_dict

    if config.model_type not in MODEL_TYPES:
        raise ModelError(f"unknown model type {config.model_type!r} (known: {', '.join(MODEL_TYPES)})")
    if config.batch_size < 1 or config.epochs < 1 or config.lr <= 0:
        raise AdcutError("batch size and epochs must be at least 1, and the learning rate positive")
    if not 0.0 <= config.distill_alpha <= 1.0 or config.distill_temperature <= 0:
        raise AdcutError("distillation alpha must be in [0, 1] and its temperature positive")
    device = choose_device(config.device)
    precision = choose_precision(config.precision, device)
    threads = set_torch_threads(config.threads or DEFAULT_TRAIN_THREADS)
    if teacher is not None:
        from adcut.learn.distill import check_teacher_classes

        # Other features than the dataset's are computed from the audio (adcut.distill), not refused.
        check_teacher_classes(teacher, dataset)

    train_samples = dataset.training_samples()
    val_samples = dataset.samples(VALIDATION)
    if len(train_samples) == 0:
        raise AdcutError(f"dataset {dataset.path} has no training windows")
    present = np.bincount(train_samples.label, minlength=len(dataset.classes))
    if (present == 0).any():
        missing = ", ".join(c for c, n in zip(dataset.classes, present) if n == 0)
        log.warning("no training windows of class %s: the model cannot learn it", missing)

    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    model_config = {
        "n_features": dataset.feature_config.n_features,
        "n_classes": len(dataset.classes),
        **dict(config.model_config),
    }
    for name in ("n_features", "n_classes"):
        expected = dataset.feature_config.n_features if name == "n_features" else len(dataset.classes)
        if model_config[name] != expected:
            raise ModelError(
                f"model option {name}={model_config[name]} does not fit the dataset, which has {expected}"
            )
    model = build_model(config.model_type, model_config)
    mean, std = normalisation_stats(dataset, train_samples, seed=config.seed)
    if hasattr(model, "norm"):  # every model standardises its input inside itself
        model.norm.set_stats(mean, std)
    model.to(device)
    optimiser = torch.optim.Adam(model.parameters(), lr=config.lr)

    teacher_logits = None
    if teacher is not None:
        log.info("computing teacher logits of %d training windows", len(train_samples))
        from adcut.learn.distill import teacher_logits as distill_teacher_logits

        teacher_logits = distill_teacher_logits(teacher, dataset, train_samples, device)

    uniform = dataset.config.augment_half_swap
    weights = None if uniform else sampling_weights(train_samples.label, len(dataset.classes))
    per_epoch = config.batches_per_epoch or max(1, math.ceil(len(train_samples) / config.batch_size))
    labels_all = torch.from_numpy(train_samples.label)

    training_record = {
        **config.to_dict(),
        "device": device,
        "threads": threads,
        "precision_used": precision,
        "train_windows": len(train_samples),
        "validation_windows": len(val_samples),
        "batches_per_epoch_used": per_epoch,
        "balancing": "half-swap augmentation" if uniform else "weighted sampling",
        "history": [],  # every epoch's metrics, so the choice of the best one can be checked
        "label_durations": label_durations(dataset.manifest),  # detection's minimum durations come from these
        "phrases": list(
            dataset.manifest.get("phrases") or []
        ),  # learned sponsor phrases (process --words spots them)
    }
    best: tuple[float, float] | None = None  # (balanced accuracy, -loss): larger is better
    best_metrics: dict = {}
    best_state = None
    stale = 0
    output_path = Path(output_path)

    def make_checkpoint(state, metrics) -> Checkpoint:
        return Checkpoint(
            model_type=config.model_type,
            model_config=config_dict(model),
            feature_config=dataset.feature_config,
            class_names=tuple(dataset.classes),
            state_dict=state,
            training=training_record,
            metrics=metrics,
            dataset_id=dataset.dataset_id,
            background=dataset.config.background,
            teacher=(f"{teacher.name} (dataset {teacher.dataset_id})" if teacher is not None else None),
        )

    for epoch in range(1, config.epochs + 1):
        began = time.perf_counter()
        model.train()
        draws = per_epoch * config.batch_size
        picks = (
            rng.choice(len(train_samples), draws, replace=True, p=weights)
            if not uniform
            else rng.permutation(np.resize(np.arange(len(train_samples)), draws))
        )
        total_loss = 0.0
        bar = tqdm(
            range(per_epoch),
            desc=f"epoch {epoch}/{config.epochs}",
            unit="batch",
            disable=not progress,
            leave=False,
        )
        for step in bar:
            index = picks[step * config.batch_size : (step + 1) * config.batch_size]
            x = torch.from_numpy(dataset.gather(train_samples.take(index))).to(device)
            y = labels_all[index].to(device)
            with torch.autocast(device_type=device, dtype=torch.bfloat16, enabled=precision == "bf16"):
                logits = model(x).float()
            if teacher_logits is not None:
                loss = distillation_loss(
                    logits,
                    teacher_logits[index].to(device),
                    y,
                    config.distill_alpha,
                    config.distill_temperature,
                )
            else:
                loss = F.cross_entropy(logits, y)
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            total_loss += loss.item()
            if step % 10 == 0:
                bar.set_postfix(loss=f"{total_loss / (step + 1):.4f}")
        bar.close()
        train_loss = total_loss / per_epoch

        metrics: dict[str, Any] = {"epoch": epoch, "train_loss": round(train_loss, 6)}
        if len(val_samples):
            val_logits = _logits(model, dataset, val_samples, device)
            val_labels = torch.from_numpy(val_samples.label)
            val_loss = float(F.cross_entropy(val_logits, val_labels))
            predicted = val_logits.argmax(dim=1).numpy()
            accuracy = float((predicted == val_samples.label).mean())
            recalls = {
                name: round(float((predicted[val_samples.label == c] == c).mean()), 6)
                for c, name in enumerate(dataset.classes)
                if (val_samples.label == c).any()
            }
            balanced = balanced_accuracy(predicted, val_samples.label, len(dataset.classes))
            predicted_share = {
                name: round(float((predicted == c).mean()), 6) for c, name in enumerate(dataset.classes)
            }
            metrics.update(
                val_loss=round(val_loss, 6),
                val_accuracy=round(accuracy, 6),
                val_balanced_accuracy=round(balanced, 6),
                val_recall=recalls,
                val_predicted_share=predicted_share,
            )
            score = (round(balanced, 6), -val_loss)
            improved = best is None or score > best
        else:
            improved = True  # nothing to compare with: keep the latest
        elapsed = time.perf_counter() - began
        line = f"epoch {epoch}/{config.epochs}: train loss {train_loss:.4f}"
        if len(val_samples):
            line += (
                f", val loss {metrics['val_loss']:.4f}, val accuracy {metrics['val_accuracy']:.3f}"
                f", balanced {metrics['val_balanced_accuracy']:.3f}"
            )
        line += f", {elapsed:.1f} s" + (" *" if improved else "")
        log.info(line)
        training_record["history"].append(metrics)
        if improved:
            best = score if len(val_samples) else None
            best_metrics = metrics
            best_state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
            save_checkpoint(output_path, make_checkpoint(best_state, best_metrics))
            stale = 0
        else:
            stale += 1
            if config.early_stopping_patience is not None and stale >= config.early_stopping_patience:
                log.info("no better validation score for %d epochs: stopping early", stale)
                break

    # Calibrate the best model's confidences on the validation windows.
    temperature = 1.0
    if len(val_samples):
        model.load_state_dict(best_state)
        temperature = fit_temperature(_logits(model, dataset, val_samples, device).numpy(), val_samples.label)
    best_metrics = {**best_metrics, "temperature": temperature, "epochs_run": epoch}
    if len(val_samples):
        from adcut.learn.alignment import measure_alignment

        best_metrics.update(
            measure_alignment(model, dataset, device=device) or {}
        )  # window_anchor, edge_offsets
    for message in class_warnings(best_metrics, dataset.classes):
        log.warning(message)
    checkpoint = make_checkpoint(best_state, best_metrics)
    save_checkpoint(output_path, checkpoint)
    checkpoint.path = output_path
    return checkpoint
