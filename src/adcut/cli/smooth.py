"""``adcut smooth``: apply the reference project's four forgiving rules to a list of per-window classes."""

from __future__ import annotations

import sys
from pathlib import Path

from adcut.errors import AdcutError


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "smooth",
        help="clean a per-window class list with the reference pattern rules",
        description=(
            "Read one class per line (A/B, or class names such as ad/content; '-' reads standard input), "
            "apply the reference project's four forgiving rules (flip short outlier runs between longer "
            "runs, resolve ABAB alternations, absorb short stubs at the edges) and print the smoothed "
            "list, one per line, in the notation of the input."
        ),
    )
    parser.add_argument(
        "predictions",
        metavar="PREDICTIONS.txt",
        help="one class per line; blank lines and # comments are ignored",
    )
    parser.add_argument(
        "--classes", default="ad,content", help="class names, first = A (default: ad,content)"
    )
    parser.add_argument(
        "--max-run", type=int, default=5, metavar="N", help="longest outlier run the rules flip (default 5)"
    )
    parser.set_defaults(func=run)


def read_predictions(path: str, classes: tuple[str, ...]) -> tuple[list[str], bool]:
    """Class names per line, and whether the file used the A/B letters."""
    from adcut.core.files import read_text_file
    from adcut.core.segments import canonical_label

    text = sys.stdin.read() if path == "-" else read_text_file(Path(path), "predictions file", AdcutError)
    labels, letters = [], True
    for number, line in enumerate(text.splitlines(), start=1):
        token = line.split("#", 1)[0].strip()
        if not token:
            continue
        name = canonical_label(token, classes)
        if name is None:
            raise AdcutError(f"{path}:{number}: unknown class {token!r} (use A/B or {', '.join(classes)})")
        letters = (
            letters and token.lower() in ("a", "b") and token.lower() not in [c.lower() for c in classes]
        )
        labels.append(name)
    if not labels:
        raise AdcutError(f"{path}: no predictions in the file")
    return labels, letters


def run(args) -> int:
    from adcut.detect.smoothing import reference_rules

    classes = tuple(c.strip() for c in args.classes.split(",") if c.strip())
    if len(classes) < 2:
        raise AdcutError("--classes needs at least two names")
    if args.max_run < 2:
        raise AdcutError(f"--max-run must be at least 2, not {args.max_run}")
    labels, letters = read_predictions(args.predictions, classes)
    smoothed = reference_rules(labels, classes, max_run=args.max_run)
    letter = {name: "AB"[i] for i, name in enumerate(classes[:2])}
    for name in smoothed:
        print(letter.get(name, name) if letters else name)
    return 0
