"""``adcut cut``: write the ad-free episode from a label file, without running a model."""

from __future__ import annotations

import argparse

from adcut.errors import AdcutError

CUT_HELP = """\
The label file is an Audacity label track (.txt: what the labeller saves after a review), a CSV, or
the .adcut.json of a 'process' run (its classes and confidences are read too). Time it leaves
unlabelled is content. It is checked against the episode: unsorted, overlapping or negative labels,
labels beyond the audio's end or naming an unknown class are refused with FILE:LINE and what is wrong.

outputs, for an episode show.mp3 (next to it, or in OUTDIR):
  show.adcut.mp3      the episode without the removed class, written as 'process' writes it: same
                      format, rate and channels, tags, cover art, chapters re-timed, short fades on the
                      kept side of each cut
  --format LIST       also audacity (show.adcut.txt), json (show.adcut.json: "settings" records the
                      label file and which path wrote the audio), podcast, ffmetadata, cue - made from
                      the label file's segments

how the audio is written:
{copied}

Outputs newer than both the episode and the label file are left alone (--force redoes them).
"""


def _copied_help() -> str:
    from adcut.media.cut import copied_formats

    copied = [x.lstrip(".").upper() for x in copied_formats()]
    lines = []
    if "WAV" in copied:
        lines.append("WAV is cut sample-exact by copying the kept PCM samples (no codec at all).")
    others = [x for x in copied if x != "WAV"]
    if others:
        lines.append(
            f"{', '.join(others)}: the kept audio is copied as it is coded; only a few frames at each "
            "join are re-encoded."
        )
    lines.append(
        "Other formats (FLAC, Ogg Vorbis/Opus, ...), and --reencode, decode and re-encode the whole "
        "episode; a file the copy path cannot handle is re-encoded, with a one-line warning."
    )
    import textwrap

    return textwrap.fill(" ".join(lines), width=100, initial_indent="  ", subsequent_indent="  ")


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "cut",
        help="write the ad-free episode from a label file (no model)",
        description=(
            "Write EPISODE without its ads, as marked in a label file you already have (e.g. one reviewed "
            "in 'adcut label'), with the same outputs and rules as 'process' but without running a model."
        ),
        epilog=CUT_HELP.format(copied=_copied_help()),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "episode", metavar="EPISODE", help="the audio file to cut (mp3, m4a, wav, flac, ogg, ...)"
    )
    parser.add_argument(
        "--labels",
        "-l",
        required=True,
        metavar="FILE",
        help="the segments: Audacity .txt, .csv, or a 'process' run's .adcut.json",
    )
    parser.add_argument(
        "-o",
        "--outdir",
        default=None,
        metavar="OUTDIR",
        help="write the outputs here instead of next to the episode",
    )
    parser.add_argument(
        "--remove",
        default=None,
        metavar="CLASSES",
        help="comma-separated classes to cut out (default: the first class, ad)",
    )
    parser.add_argument(
        "--fade",
        type=float,
        default=None,
        metavar="S",
        help="fade length at each cut, on the kept side (default 0.03)",
    )
    parser.add_argument(
        "--reencode",
        action="store_true",
        help="decode and re-encode the whole episode instead of copying the kept audio",
    )
    parser.add_argument(
        "--format",
        default="",
        metavar="LIST",
        help="also write these, comma-separated: audacity,json,podcast,ffmetadata,cue (default: none)",
    )
    parser.add_argument("--force", action="store_true", help="redo an episode whose outputs are up to date")
    parser.add_argument("--dry-run", action="store_true", help="print what would be written; write nothing")
    parser.set_defaults(func=run)


def _options(args):
    from dataclasses import replace
    from pathlib import Path

    from adcut.formats.export import parse_formats
    from adcut.process.cut_labels import CutOptions

    options = CutOptions(
        formats=parse_formats(args.format) if args.format.strip() else (),
        outdir=Path(args.outdir) if args.outdir else None,
        reencode=args.reencode,
        force=args.force,
        dry_run=args.dry_run,
    )
    if args.remove is not None:
        remove = tuple(x.strip() for x in args.remove.split(",") if x.strip())
        if not remove:
            raise AdcutError("--remove names no class")
        options = replace(options, remove=remove)
    if args.fade is not None:
        if not 0 <= args.fade <= 1:
            raise AdcutError(f"--fade must be between 0 and 1 second, not {args.fade:g}")
        options = replace(options, fade_seconds=args.fade)
    return options


def run(args) -> int:
    from pathlib import Path

    from adcut.core.units import format_time
    from adcut.process.cut_labels import cut_from_labels
    from adcut.process.episode import DRY_RUN, SKIPPED

    run_ = cut_from_labels(Path(args.episode), Path(args.labels), _options(args))
    if run_.status == SKIPPED:
        print(f"skipped (outputs up to date; --force to redo): {run_.episode}")
        return 0
    if run_.status == DRY_RUN:
        print("\n".join(f"would write: {out}" for out in run_.outputs))
        return 0
    cut = run_.cut
    assert cut is not None  # processed: the cut was written
    method = cut.method
    print(
        f"wrote {cut.path} ({method}): kept {format_time(cut.kept_seconds, 1)}, "
        f"removed {format_time(cut.removed_seconds, 1)} in {run_.wall_seconds:.2f} s"
    )
    for out in run_.outputs[1:]:
        print(f"wrote {out}")
    return 0
