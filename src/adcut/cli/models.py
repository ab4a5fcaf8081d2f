"""``adcut models``: compare checkpoints side by side, or describe one."""

from __future__ import annotations

import json
from pathlib import Path

from adcut.errors import AdcutError


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "models",
        help="compare trained models, or describe one",
        description="Inspect trained models (checkpoints, *.safetensors; older ones *.pt).",
    )
    sub = parser.add_subparsers(dest="models_command", metavar="SUBCOMMAND")

    compare = sub.add_parser(
        "compare",
        help="table of size, accuracy / F1 and speed for several models",
        description=(
            "Compare models on the same labelled audio. For each model: type, parameter count, file size, "
            "feature settings, teacher (for distilled students), window accuracy and F1 of the 'ad' class "
            "(windows inside one class), the same after segmenting whole episodes, "
            "and inference speed in windows per second on this machine (a fixed batch, after a warm-up). "
            "Each model is scored on windows cut with its own feature settings, so models that use cheaper "
            "features are compared on the same audio and labels."
        ),
    )
    compare.add_argument(
        "models", nargs="+", type=Path, metavar="MODEL", help="checkpoint files (*.safetensors, *.pt)"
    )
    compare.add_argument(
        "--data",
        nargs="+",
        type=Path,
        metavar="PATH",
        help=(
            "labelled windows to score on: a dataset folder (its validation episodes), or episode audio "
            "files / folders of them, each with a label file beside it (same name, .txt/.json/.csv). "
            "Without --data only size and speed are shown. Put --data after the models"
        ),
    )
    compare.add_argument(
        "--no-episodes",
        action="store_true",
        help=(
            "skip the whole-episode scores: by default each episode is also segmented as 'adcut "
            "process' does (smoothing, refinement) and scored: share of time right, F1 of 1 s cells "
            "of ads, and F0.5 of whole ad breaks (IoU >= 0.5)"
        ),
    )
    compare.add_argument(
        "--all-episodes",
        action="store_true",
        help="with a dataset, score on all its episodes rather than the validation ones",
    )
    compare.add_argument("--device", default=None, help="auto, cpu or cuda (default: auto)")
    compare.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch CPU threads for scoring and the speed test (default: all cores, or ADCUT_THREADS)",
    )
    compare.add_argument(
        "--batch-size", type=int, default=None, help="windows per batch in the speed test (default 256)"
    )
    compare.add_argument(
        "--min-seconds",
        type=float,
        default=None,
        help="time each model's speed test for at least this long (default 1.0)",
    )
    compare.add_argument("--no-speed", action="store_true", help="skip the speed test")
    compare.add_argument("--json", action="store_true", help="print JSON instead of a table")
    compare.set_defaults(func=run_compare)

    info = sub.add_parser(
        "info",
        help="describe a checkpoint",
        description="Print what a checkpoint holds: architecture, parameters, feature settings, classes, "
        "training settings, validation metrics and, for a distilled student, its teacher.",
    )
    info.add_argument(
        "model",
        type=Path,
        nargs="?",
        default=None,
        metavar="MODEL",
        help="checkpoint file (default: the newest in ./models/)",
    )
    info.add_argument("--json", action="store_true", help="print JSON")
    info.set_defaults(func=run_info)

    parser.set_defaults(func=lambda args: parser.print_help() or 2)


def _data_source(paths: list[Path], all_episodes: bool):
    """A dataset folder's episodes, or episode files / folders given directly."""
    from adcut.evaluate.compare import EpisodeWindows, dataset_windows, find_episodes, is_dataset

    if len(paths) == 1 and is_dataset(paths[0]):
        return dataset_windows(paths[0], validation_only=not all_episodes)
    if any(is_dataset(p) for p in paths):
        raise AdcutError("--data takes one dataset folder, or episode files and folders, not both")
    return EpisodeWindows(find_episodes(paths))


def run_compare(args) -> int:
    from adcut.evaluate.compare import SpeedConfig, compare_models, format_table
    from adcut.models.inference import choose_device, set_torch_threads

    if args.batch_size is not None and args.batch_size < 1:
        raise AdcutError("--batch-size must be at least 1")
    if args.min_seconds is not None and args.min_seconds < 0:
        raise AdcutError("--min-seconds must not be negative")
    device = choose_device(args.device)
    set_torch_threads(args.threads)
    defaults = SpeedConfig()
    speed = (
        None
        if args.no_speed
        else SpeedConfig(
            batch_size=args.batch_size or defaults.batch_size,
            min_seconds=defaults.min_seconds if args.min_seconds is None else args.min_seconds,
        )
    )
    data = _data_source(args.data, args.all_episodes) if args.data else None
    reports = compare_models(args.models, data, device=device, speed=speed, episodes=not args.no_episodes)
    if args.json:
        print(json.dumps([r.to_dict() for r in reports], indent=2))
    else:
        print(format_table(reports))
    return 0


def run_info(args) -> int:
    from adcut.evaluate.compare import count_parameters
    from adcut.models.checkpoint import resolve_model

    ckpt = resolve_model(args.model)
    model = ckpt.build_model("cpu")
    info = {
        "file": str(ckpt.path),
        "model_type": ckpt.model_type,
        "parameters": count_parameters(model),
        "file_bytes": ckpt.path.stat().st_size if ckpt.path else None,
        "architecture": ckpt.model_config,
        "features": ckpt.feature_config.to_dict(),
        "classes": list(ckpt.class_names),
        "teacher": ckpt.teacher,
        "dataset": ckpt.dataset_id,
        "training": ckpt.training,
        "metrics": ckpt.metrics,
        "created": ckpt.created,
    }
    if args.json:
        print(json.dumps(info, indent=2, default=str))
        return 0
    cfg = ckpt.feature_config
    fields = [
        ("file", info["file"]),
        ("model", f"{ckpt.model_type}, {info['parameters']:,} parameters, {info['file_bytes']:,} bytes"),
        ("architecture", _pairs(ckpt.model_config)),
        (
            "features",
            f"{cfg.n_mfcc} MFCC + deltas at {cfg.sample_rate} Hz, window {cfg.window_frames} frames "
            f"({cfg.window_seconds:.2f} s), hop {cfg.window_hop_frames} frames ({cfg.window_hop_seconds:.2f} s)",
        ),
        ("classes", ", ".join(ckpt.class_names)),
        ("teacher", ckpt.teacher or "-"),
        ("dataset", ckpt.dataset_id or "-"),
        ("training", _pairs(ckpt.training) or "-"),
        ("metrics", _pairs(ckpt.metrics) or "-"),
        ("created", ckpt.created or "-"),
    ]
    lines = [f"{name + ':':<14}{value}" for name, value in fields]
    print("\n".join(lines))
    return 0


def _pairs(mapping: dict) -> str:
    def show(value):
        return f"{value:.4g}" if isinstance(value, float) else str(value)

    return ", ".join(f"{k}={show(v)}" for k, v in mapping.items() if not isinstance(v, (dict, list)))
