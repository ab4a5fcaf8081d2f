"""``adcut demo``: the whole flow on generated audio, in under two minutes."""

from __future__ import annotations

from pathlib import Path

from adcut.errors import AdcutError


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="run the whole flow on generated episodes (what 'make demo' does)",
        description=(
            "Synthesise a few short labelled episodes in which ads sound different from content (speech-like "
            "sound over a music bed, brighter and louder), build a dataset, train a small model briefly, "
            "process an unseen episode, and print the detected segments beside the truth with the boundary "
            "errors. Deterministic for a given --seed; takes about a minute on two cores."
        ),
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        metavar="DIR",
        help="keep everything (episodes, dataset, model, outputs) in DIR (default: a temporary folder)",
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="seed for the episodes, the split and training (default 0)"
    )
    parser.set_defaults(func=run)


def run(args) -> int:
    import tempfile
    from dataclasses import replace

    from adcut.demo.example import DemoConfig, comparison_table, run_demo

    config = replace(DemoConfig(), seed=args.seed)
    if args.out is not None:
        out = Path(args.out)
        if out.exists() and not out.is_dir():
            raise AdcutError(f"--out {out}: exists and is not a folder")
        out.mkdir(parents=True, exist_ok=True)
        result = run_demo(out, config, progress=not args.quiet)
        print(comparison_table(result))
        print(
            f"\ndone in {result.seconds:.0f} s; everything is in {out}/ "
            f"(try: adcut process {out}/unseen/unseen.mp3 --model {out}/models/demo.safetensors --force)"
        )
        return 0
    with tempfile.TemporaryDirectory(prefix="adcut-demo-") as folder:
        result = run_demo(Path(folder), config, progress=not args.quiet)
        print(comparison_table(result))
        print(f"\ndone in {result.seconds:.0f} s (use --out DIR to keep the files)")
    return 0
