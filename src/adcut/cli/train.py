"""``adcut train DATASET_DIR``: train a model on a cached dataset and save its best epoch."""

from __future__ import annotations

from pathlib import Path

from adcut.errors import AdcutError


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "train",
        help="train a model on a dataset built with 'adcut dataset build'",
        description=(
            "Train a classifier on DATASET_DIR's cached features (no audio is decoded). The checkpoint keeps "
            "the epoch with the best validation balanced accuracy (mean per-class recall; ties: lower loss). "
            "Defaults: 2-layer LSTM, hidden 128, Adam with lr 1e-3."
        ),
    )
    parser.add_argument("dataset", type=Path, metavar="DATASET_DIR")
    parser.add_argument(
        "-o",
        "--output",
        type=Path,
        default=None,
        metavar="MODEL.safetensors",
        help="checkpoint to write (default: models/<model>-<dataset id>-<time>.safetensors)",
    )
    parser.add_argument(
        "--model", dest="model_type", default=None, help="architecture: lstm or transformer (default lstm)"
    )
    parser.add_argument(
        "--model-option",
        action="append",
        default=None,
        metavar="KEY=VALUE",
        help="architecture setting, e.g. hidden_size=64; repeatable",
    )
    parser.add_argument(
        "--teacher",
        type=Path,
        default=None,
        metavar="TEACHER",
        help=(
            "distil from this trained model: loss = alpha * cross-entropy(labels) + (1 - alpha) * T^2 * "
            "KL(student/T || teacher/T). The student uses the dataset's features, which may be cheaper "
            "than the teacher's: then the teacher's inputs are computed from each episode's source audio "
            "with the teacher's own features, its window centred on the student's window (so that audio "
            "must still be where the dataset was built from). The checkpoint records the teacher"
        ),
    )
    parser.add_argument(
        "--alpha", type=float, default=None, help="distillation: weight of the label loss (default 0.5)"
    )
    parser.add_argument(
        "--temperature", type=float, default=None, help="distillation temperature (default 2)"
    )
    parser.add_argument("--epochs", type=int, default=None, help="most epochs (default 30)")
    parser.add_argument(
        "--batches-per-epoch", type=int, default=None, help="default: one pass over the training windows"
    )
    parser.add_argument(
        "--patience",
        type=int,
        default=None,
        help="stop after this many epochs without improvement (default 8; 0 = never)",
    )
    parser.add_argument("--lr", type=float, default=None, help="Adam learning rate (default 1e-3)")
    parser.add_argument("--batch-size", type=int, default=None, help="windows per batch (default 32)")
    parser.add_argument(
        "--seed",
        type=int,
        default=None,
        help="seed: same seed, same data, same machine -> same weights (default 0)",
    )
    parser.add_argument(
        "--device",
        default=None,
        choices=("auto", "cpu", "cuda"),
        help="default auto: a GPU when there is one",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch CPU threads (default 1: fastest for small LSTM batches)",
    )
    parser.add_argument(
        "--precision",
        default=None,
        choices=("auto", "fp32", "bf16"),
        help="bf16 = mixed precision (default auto: bf16 where the CPU supports it natively, ~3x faster)",
    )
    parser.set_defaults(func=run)


def _parse_value(text: str):
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return {"true": True, "false": False}.get(text.lower(), text)


def _model_options(items) -> dict:
    options = {}
    for item in items or ():
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise AdcutError(f"--model-option {item!r}: use KEY=VALUE, e.g. hidden_size=64")
        options[key.strip()] = _parse_value(value.strip())
    return options


def default_output(model_type: str, dataset_id: str) -> Path:
    import datetime as dt

    from adcut.models.checkpoint import CHECKPOINT_SUFFIX, DEFAULT_MODELS_DIR

    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    return DEFAULT_MODELS_DIR / f"{model_type}-{dataset_id[:8]}-{stamp}{CHECKPOINT_SUFFIX}"


def run(args) -> int:
    from adcut.learn.dataset import load_dataset
    from adcut.learn.train import TrainConfig, train
    from adcut.models.checkpoint import CHECKPOINT_SUFFIXES, load_checkpoint

    values = {
        "model_type": args.model_type,
        "lr": args.lr,
        "batch_size": args.batch_size,
        "epochs": args.epochs,
        "batches_per_epoch": args.batches_per_epoch,
        "seed": args.seed,
        "device": args.device,
        "threads": args.threads,
        "precision": args.precision,
        "distill_alpha": args.alpha,
        "distill_temperature": args.temperature,
    }
    values = {k: v for k, v in values.items() if v is not None}
    if args.patience is not None:
        values["early_stopping_patience"] = args.patience or None
    for name in ("batch_size", "epochs", "batches_per_epoch", "threads"):
        if name in values and values[name] < 1:
            raise AdcutError(f"--{name.replace('_', '-')} must be at least 1")
    values["model_config"] = _model_options(args.model_option)
    config = TrainConfig(**values)
    teacher = load_checkpoint(args.teacher) if args.teacher else None
    dataset = load_dataset(args.dataset)
    output = args.output or default_output(config.model_type, dataset.dataset_id)
    if output.suffix not in CHECKPOINT_SUFFIXES:
        raise AdcutError(f"{output}: a model file name must end in {' or '.join(CHECKPOINT_SUFFIXES)}")
    if args.teacher and output.resolve() == args.teacher.resolve():
        raise AdcutError(f"{output}: is the teacher; give the student another name")
    checkpoint = train(dataset, config, output, teacher=teacher, progress=not args.quiet)
    metrics = checkpoint.metrics
    summary = f"saved {output} (epoch {metrics.get('epoch')}"
    if "val_accuracy" in metrics:
        summary += f", validation accuracy {metrics['val_accuracy']:.3f}"
        if "val_balanced_accuracy" in metrics:
            summary += f" (balanced {metrics['val_balanced_accuracy']:.3f})"
        summary += f", loss {metrics['val_loss']:.4f}"
    else:
        summary += ", no validation episodes"
    print(summary + ")")
    return 0
