"""``adcut process``: find the ads in episodes or folders, write labels/chapters and the cut audio."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from adcut.cli.segmentation import add_segmentation_arguments, add_words_arguments, segmentation_config
from adcut.errors import AdcutError

if TYPE_CHECKING:
    from adcut.process.episode import ProcessOptions

OUTPUT_HELP = """\
outputs, for an episode show.mp3 (next to it, or in OUTDIR):
  show.adcut.txt      audacity    Audacity label track of every segment (File > Import > Labels)
  show.adcut.json     json        segments with confidence, boundaries, model id, settings,
                                  and each class's probability for every second
  show.chapters.json  podcast     Podcasting 2.0 JSON chapters (version 1.2.0)
  show.ffmeta.txt     ffmetadata  FFmpeg chapters: ffmpeg -i show.mp3 -i show.ffmeta.txt -map_chapters 1 -c copy out.mp3
  show.cue            cue         CUE sheet, one track per segment
  show.adcut.mp3      (unless --no-cut) the episode without the removed class, in the input's own
                      format, rate, channels and about its bitrate; tags, cover art and re-timed
                      chapters copied; short fades on the kept side of each cut. {copied}
                      The JSON's settings.cut_method says which path wrote it. MP3 is cut on
                      frame boundaries (26 ms at 44.1 kHz), each ad's edges rounded outward.

An episode whose outputs are all newer than both the episode and the model is skipped (--force
redoes it). Files named *.adcut.* are never taken as episodes.
"""


def _copied_help() -> str:
    from adcut.media.cut import copied_formats

    copied = copied_formats()
    if not copied:
        return "Every format is\n                      decoded and re-encoded whole."
    return (
        f"{', '.join(x.lstrip('.').upper() for x in copied)}: cut by\n"
        "                      copying the kept audio as it is coded (WAV: the PCM samples, sample-exact),\n"
        "                      re-encoding only a few frames at each join where the codec needs it; other\n"
        "                      formats, and --reencode, decode and re-encode the whole episode."
    )


def register(subparsers) -> None:
    from adcut.process.episode import ProcessOptions

    defaults = ProcessOptions()
    parser = subparsers.add_parser(
        "process",
        help="find and cut the ads in episodes or folders of episodes",
        description=(
            "Decode each episode, run the model over it, smooth the decisions into segments, print the "
            "boundary times (seconds where the class changes) and a table of segments, and write the "
            "chosen outputs. A folder means every audio file in it, processed in parallel."
        ),
        epilog=OUTPUT_HELP.format(copied=_copied_help()),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "inputs",
        nargs="+",
        metavar="EPISODE_OR_DIR",
        help="audio files, folders of them, and @LIST files naming one path a line",
    )
    parser.add_argument(
        "--model", "-m", default=None, help="checkpoint (.safetensors); default: the newest in ./models/"
    )
    parser.add_argument(
        "-o", "--outdir", default=None, help="write outputs here instead of next to each episode"
    )
    parser.add_argument(
        "--format",
        default=None,
        metavar="LIST",
        help="comma-separated: audacity,json,podcast,ffmetadata,cue (default: audacity,json)",
    )
    parser.add_argument(
        "--no-cut", action="store_true", help="do not write the cut audio, only labels/chapters"
    )
    parser.add_argument(
        "--remove",
        default=None,
        metavar="CLASSES",
        help=f"comma-separated classes to cut out (default: {','.join(defaults.remove)})",
    )
    parser.add_argument(
        "--fade",
        type=float,
        default=None,
        metavar="S",
        help=f"fade length at each cut, on the kept side (default {defaults.fade_seconds:g})",
    )
    parser.add_argument(
        "--reencode",
        action="store_true",
        help="write the cut audio by decoding and re-encoding the whole episode, even where "
        "the kept audio could be copied (see below)",
    )
    parser.add_argument("--dry-run", action="store_true", help="print what would be written; write nothing")
    parser.add_argument("--force", action="store_true", help="redo episodes whose outputs are up to date")
    parser.add_argument(
        "--jobs",
        "-j",
        type=int,
        default=None,
        metavar="N",
        help="worker processes for several episodes (default: number of cores; with --backend ray: "
        "Ray workers, default one per free CPU of the cluster, or per GPU with --device cuda)",
    )
    parser.add_argument(
        "--backend",
        choices=("local", "ray"),
        default="local",
        help="local: a process pool on this machine (default); ray: Ray actors on a local Ray "
        "instance or, with --address, a running cluster (pip install 'adcut[ray]')",
    )
    parser.add_argument(
        "--address",
        default=None,
        metavar="ADDR",
        help="with --backend ray: join the cluster at ADDR (auto, host:port or ray://host:port); "
        "episodes and outputs must be on storage every node reads at the same path",
    )
    parser.add_argument(
        "--device", default="auto", choices=("auto", "cpu", "cuda"), help="where the model runs"
    )
    add_segmentation_arguments(parser)
    add_words_arguments(parser)
    parser.set_defaults(func=run)


def _options(args: argparse.Namespace, device: str | None = None) -> ProcessOptions:
    from dataclasses import replace

    from adcut.formats.export import parse_formats
    from adcut.models.inference import choose_device
    from adcut.process.episode import ProcessOptions

    options = ProcessOptions(
        formats=parse_formats(args.format),
        cut=not args.no_cut,
        cut_method="reencode" if args.reencode else "auto",
        outdir=args.outdir,
        force=args.force,
        dry_run=args.dry_run,
        device=device or choose_device(args.device),
        segmentation=segmentation_config(args),
    )
    if args.remove:
        remove = tuple(x.strip() for x in args.remove.split(",") if x.strip())
        if not remove:
            raise AdcutError("--remove names no class")
        options = replace(options, remove=remove)
    if args.jobs is not None and args.jobs < 1:
        raise AdcutError(f"--jobs must be at least 1, not {args.jobs}")
    if args.fade is not None and not 0 <= args.fade <= 1:
        raise AdcutError(f"--fade must be between 0 and 1 second, not {args.fade:g}")
    if args.fade is not None:
        options = replace(options, fade_seconds=args.fade)
    return options


def segment_table(detection) -> str:
    from adcut.core.units import format_time

    rows = [("class", "start", "end", "duration", "mean p")]
    for seg, conf in zip(detection.segments, detection.confidences):
        rows.append(
            (
                seg.label,
                format_time(seg.start, 1),
                format_time(seg.end, 1),
                format_time(seg.duration),
                f"{conf:.3f}",
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows)


def report(result, write, show_name: bool) -> None:
    from adcut.process.episode import DRY_RUN, FAILED, SKIPPED

    if result.status == FAILED:
        return  # listed once, with the others, at the end
    if result.status == SKIPPED:
        write(f"skipped (outputs up to date; --force to redo): {result.path}")
        return
    if result.status == DRY_RUN:
        write("\n".join(f"would write: {out}" for out in result.outputs))
        return
    detection = result.detection
    lines = [f"# {result.path}"] if show_name else []
    lines += [f"{t:.2f}" for t in detection.boundaries]
    lines += ["", segment_table(detection)]
    if show_name:
        lines.append("")
    write("\n".join(lines))


def run(args) -> int:
    from adcut.core.units import format_time
    from adcut.models.checkpoint import resolve_model
    from adcut.process.batch import collect_episodes, process_many
    from adcut.process.episode import FAILED, PROCESSED, SKIPPED, check_model

    if args.address is not None and args.backend != "ray":
        raise AdcutError("--address joins a Ray cluster: use it with --backend ray")
    if args.backend == "ray":
        from adcut.process.ray_backend import require_ray

        require_ray()
    checkpoint = resolve_model(args.model)
    options = _options(args, device="cpu" if args.backend == "ray" else None)
    check_model(checkpoint, options)
    episodes = collect_episodes(args.inputs)
    several = len(episodes) > 1
    backend = None
    if args.backend == "ray":
        from adcut.process.ray_backend import RayBackend

        # Where the model runs is decided by the cluster's GPUs, not by this machine's.
        backend = RayBackend(address=args.address, workers=args.jobs, device=args.device)
    try:
        summary = process_many(
            episodes,
            checkpoint,
            options,
            jobs=args.jobs,
            progress=not args.quiet,
            on_result=lambda result, write: report(result, write, several),
            backend=backend,
        )
    finally:
        if backend is not None:
            backend.close()
    if not several:
        result = summary.results[0]
        if result.status == FAILED:
            raise AdcutError(result.error)
        return 0
    hours = summary.audio_seconds / 3600
    speed = summary.audio_seconds / summary.wall_seconds if summary.wall_seconds > 0 else 0.0
    print(
        f"{summary.count(PROCESSED)} processed, {summary.count(SKIPPED)} skipped, {summary.count(FAILED)} failed; "
        f"{hours:.2f} h of audio ({format_time(summary.audio_seconds)}) in {summary.wall_seconds:.1f} s, "
        f"{speed:.0f}x realtime"
    )
    if backend is not None and summary.count(PROCESSED):
        nodes = ", ".join(f"{node} {count}" for node, count in summary.per_node().items())
        print(f"episodes per node: {nodes} (Ray start-up {backend.startup_seconds:.1f} s of the total)")
    if summary.failed:
        print(f"{len(summary.failed)} of {len(summary.results)} episodes failed:", file=sys.stderr)
        for result in summary.failed:
            print(f"  {result.error}", file=sys.stderr)
        return 1
    return 0
