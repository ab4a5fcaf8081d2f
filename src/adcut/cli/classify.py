"""``adcut classify CLIP...``: one class and probability per clip (the reference ``main.py file.wav``)."""

from __future__ import annotations

import sys
from pathlib import Path


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "classify",
        help="classify whole clips: one class and probability per file",
        description=(
            "Classify each clip as a whole (mean over its windows; a clip shorter than one window is padded). "
            "Prints 'CLIP<TAB>CLASS<TAB>PROBABILITY' per clip. Without --model the newest checkpoint in "
            "./models/ is used, and named on the first line."
        ),
    )
    parser.add_argument("clips", nargs="+", type=Path, metavar="CLIP", help="audio files")
    parser.add_argument(
        "--model", type=Path, default=None, metavar="MODEL", help="checkpoint (default: newest in ./models/)"
    )
    parser.add_argument("--device", default=None, choices=("auto", "cpu", "cuda"), help="default auto")
    parser.set_defaults(func=run)


def run(args) -> int:
    from adcut.errors import AdcutError
    from adcut.evaluate.clips import ClipClassifier
    from adcut.models.checkpoint import resolve_model
    from adcut.models.inference import choose_device

    checkpoint = resolve_model(args.model)
    classifier = ClipClassifier(checkpoint, choose_device(args.device))
    print(f"model: {checkpoint.path}")
    failed = 0
    for clip in args.clips:
        try:
            result = classifier.classify(clip)
        except AdcutError as error:  # one bad clip does not stop the others
            print(f"adcut: error: {error}", file=sys.stderr)
            failed += 1
            continue
        print(f"{clip}\t{result.predicted}\t{result.confidence:.3f}", flush=True)
    return 1 if failed else 0
