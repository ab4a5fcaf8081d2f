"""``adcut dataset build|import-reference|info``: labelled episodes -> cached features and window index."""

from __future__ import annotations

import argparse
from pathlib import Path

from adcut.errors import AdcutError

# Feature options: dataset flag -> FeatureConfig field (None = keep the FeatureConfig default).
_FEATURE_FLAGS = {
    "sample_rate": "Hz the audio is resampled to (default 4096)",
    "n_fft": "FFT size in samples (default 512)",
    "hop_length": "samples between frames (default 256)",
    "n_mels": "mel bands (default 128)",
    "n_mfcc": "MFCCs per frame; features are 3x this with deltas (default 10)",
    "window_frames": "frames per model window (default 131 = 8.19 s)",
    "window_hop_frames": "frames between windows (default 64)",
}


def _add_feature_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group(
        "features (defaults: the reference project's; a model must use its dataset's)"
    )
    for name, text in _FEATURE_FLAGS.items():
        group.add_argument(f"--{name.replace('_', '-')}", type=int, default=None, metavar="N", help=text)


def _add_config_options(parser: argparse.ArgumentParser, split_options: bool = True) -> None:
    if split_options:
        parser.add_argument(
            "--validation-fraction",
            type=float,
            default=None,
            metavar="F",
            help="share of episodes held out for validation (default 0.2; split by episode, never by window)",
        )
        parser.add_argument(
            "--validation",
            action="append",
            default=None,
            metavar="EPISODE",
            help="hold out this episode (id, file name or stem); repeatable; overrides --validation-fraction",
        )
    straddling = parser.add_mutually_exclusive_group()
    straddling.add_argument(
        "--keep-straddling",
        dest="keep_straddling",
        action="store_true",
        default=None,
        help="keep windows that cross a label boundary, with their majority class (default)",
    )
    straddling.add_argument(
        "--drop-straddling",
        dest="keep_straddling",
        action="store_false",
        help="leave windows that cross a label boundary out of training (the reference way; "
        "measured to widen detected ads by about a window)",
    )
    parser.add_argument(
        "--augment-half-swap",
        action="store_true",
        default=None,
        help="balance classes with new windows joining halves of two windows of the same class "
        "(the reference augmentation) instead of weighted sampling",
    )
    parser.add_argument(
        "--learn-phrases",
        action="store_true",
        default=None,
        help="transcribe the training episodes' ads and some content once (pocketsphinx, several "
        "times realtime) and keep the phrases far more frequent in ads; the model carries them "
        "and 'process --words auto' listens for them",
    )
    parser.add_argument(
        "--seed", type=int, default=None, help="seed for the validation choice and augmentation (default 0)"
    )
    parser.add_argument(
        "--classes", default=None, metavar="A,B", help="class names, first = 'a' (default ad,content)"
    )
    parser.add_argument(
        "--background",
        default=None,
        metavar="CLASS",
        help="class of time the label files leave unlabelled (default content)",
    )


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "dataset",
        help="build a training dataset (cached features) from labelled episodes",
        description="Build, import and inspect datasets: cached features of labelled episodes plus their split.",
    )
    sub = parser.add_subparsers(dest="dataset_command", metavar="ACTION")
    sub.required = True

    build = sub.add_parser(
        "build",
        help="compute features of labelled episodes into DATASET_DIR",
        description=(
            "Each episode is an audio file with a label file of the same name beside it (.txt Audacity labels, "
            ".json or .csv; only the ads need marking), or listed in a segments.txt in its folder. A folder "
            "stands for every labelled audio file in it. Features are computed once and cached; rebuilding "
            "reuses the features of unchanged audio."
        ),
    )
    build.add_argument(
        "episodes", nargs="+", type=Path, metavar="EPISODE", help="audio files or folders of them"
    )
    build.add_argument(
        "-o", "--output", type=Path, required=True, metavar="DATASET_DIR", help="dataset folder to write"
    )
    build.add_argument(
        "--jobs", type=int, default=None, metavar="N", help="episodes decoded at once (default: CPU cores)"
    )
    _add_config_options(build)
    _add_feature_options(build)
    build.set_defaults(func=run_build)

    ref = sub.add_parser(
        "import-reference",
        help="import the reference layout train/A, train/B, val/A, val/B of audio chunks",
        description=(
            "Import the reference project's chunk folders: DIR/train/A, DIR/train/B, DIR/val/A, DIR/val/B. "
            "A = first class (ad), B = second (content). Each chunk is a one-class episode; its split is its folder's."
        ),
    )
    ref.add_argument("folder", type=Path, metavar="DIR")
    ref.add_argument(
        "-o", "--output", type=Path, required=True, metavar="DATASET_DIR", help="dataset folder to write"
    )
    _add_config_options(ref, split_options=False)
    _add_feature_options(ref)
    ref.set_defaults(func=run_import_reference)

    info = sub.add_parser(
        "info",
        help="show a dataset's episodes, classes and window counts",
        description="Print a dataset's summary: windows per class and split, and its episodes.",
    )
    info.add_argument("dataset", type=Path, metavar="DATASET_DIR")
    info.set_defaults(func=run_info)


def _configs(args):
    from adcut.features.mfcc import FeatureConfig
    from adcut.learn.dataset import DatasetConfig

    feature_values = {
        name: getattr(args, name) for name in _FEATURE_FLAGS if getattr(args, name, None) is not None
    }
    for name, value in feature_values.items():
        if value <= 0:
            raise AdcutError(f"--{name.replace('_', '-')} must be positive")
    fcfg = FeatureConfig(**feature_values)
    if fcfg.n_fft > fcfg.sample_rate or fcfg.hop_length > fcfg.n_fft:
        raise AdcutError("--n-fft must not exceed --sample-rate, nor --hop-length --n-fft")
    values = {}
    if getattr(args, "validation_fraction", None) is not None:
        if not 0.0 <= args.validation_fraction < 1.0:
            raise AdcutError("--validation-fraction must be at least 0 and below 1")
        values["validation_fraction"] = args.validation_fraction
    if getattr(args, "validation", None):
        values["validation_episodes"] = tuple(args.validation)
    for name in ("keep_straddling", "augment_half_swap", "seed", "background", "learn_phrases"):
        if getattr(args, name, None) is not None:
            values[name] = getattr(args, name)
    if args.classes is not None:
        classes = tuple(c.strip() for c in args.classes.split(",") if c.strip())
        if len(classes) < 2 or len(set(classes)) != len(classes):
            raise AdcutError("--classes needs at least two different names, e.g. ad,content")
        values["classes"] = classes
        values.setdefault("background", classes[-1])
    return fcfg, DatasetConfig(**values)


def _print_report(dataset) -> None:
    from adcut.learn.dataset import report

    print(report(dataset))


def run_build(args) -> int:
    from adcut.learn.dataset import build_dataset
    from adcut.learn.sources import find_episodes

    fcfg, config = _configs(args)
    sources = find_episodes(args.episodes)
    _print_report(build_dataset(sources, args.output, fcfg, config, progress=not args.quiet, jobs=args.jobs))
    return 0


def run_import_reference(args) -> int:
    from adcut.learn.dataset import build_dataset
    from adcut.learn.sources import find_reference_chunks

    fcfg, config = _configs(args)
    sources = find_reference_chunks(args.folder, config.classes)
    _print_report(build_dataset(sources, args.output, fcfg, config, progress=not args.quiet))
    return 0


def run_info(args) -> int:
    from adcut.learn.dataset import load_dataset

    dataset = load_dataset(args.dataset)
    _print_report(dataset)
    print()
    for episode in dataset.episodes:
        counts = ", ".join(f"{n} {c}" for c, n in episode["windows"].items())
        print(
            f"{episode['split']:<11}{episode['id']}  {episode['duration'] / 60:.1f} min  windows: {counts}  ({episode['source']})"
        )
    return 0
