"""``adcut label``: mark or review an episode's ads in a local browser page."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

from adcut.errors import AdcutError, LabelError

log = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765
KEYS_HELP = (
    "Keys on the page: space play/pause, left/right seek 5 s (Shift: 1 s), [ / ] start / end an ad, "
    "n / p next / previous boundary, Delete remove the segment under the playhead, Ctrl+S save, ? all keys"
)


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "label",
        help="mark or review an episode's ads in the browser",
        description=(
            "Start a local web page to mark where the ads are in EPISODE (waveform, playback, keyboard "
            "shortcuts), or to review a model's proposal. Saving writes an Audacity label file beside the "
            "episode (EPISODE.txt, or --labels), keeping the previous one as .bak. " + KEYS_HELP + "."
        ),
    )
    parser.add_argument("episode", metavar="EPISODE", help="the audio file to label (mp3, m4a, wav, ogg, flac, ...)")
    parser.add_argument(
        "--labels", metavar="FILE", default=None,
        help=("labels to start from: an Audacity .txt (also where saving writes; created if missing), or a "
              "'process' run's .json/.csv (then saving writes EPISODE.txt). Default: EPISODE.txt if it exists"),
    )
    parser.add_argument("--model", metavar="M", nargs="?", const="", default=None,
                        help="pre-fill with model M's segments (just --model: the newest in ./models/), "
                             "least confident listed first for review")
    parser.add_argument("--port", type=int, default=None,
                        help=f"port to listen on (default {DEFAULT_PORT}, or a free one if that is taken; "
                             "0: any free port)")
    parser.add_argument("--host", default=None,
                        help=f"address to listen on (default {DEFAULT_HOST}: only this machine can connect)")
    parser.add_argument("--no-browser", action="store_true",
                        help="only print the page's address, do not open a browser")
    parser.set_defaults(func=run)


def background_class(classes: tuple[str, ...]) -> str:
    """Unlabelled time is 'content' when that is a class, else the last class."""
    return "content" if "content" in classes else classes[-1]


def read_prefill(path: Path, classes: tuple[str, ...], duration: float | None):
    """``(classes, [PrefilledSegment])`` from a label file; a .json may carry ``confidence`` and ``classes``."""
    from adcut.labeller.server import PrefilledSegment
    from adcut.labels import read_json, read_labels, validate_segments

    if path.suffix.lower() != ".json":
        segments = read_labels(path, classes=classes, background=None)
        validate_segments(segments, duration=duration, classes=classes, source=str(path))
        return classes, [PrefilledSegment(s) for s in segments]
    try:
        raw = json.loads(path.read_text(encoding="utf-8-sig"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        raw = None  # read_json below gives the precise message
    if isinstance(raw, dict) and isinstance(raw.get("classes"), list) and len(raw["classes"]) >= 2:
        classes = tuple(str(c) for c in raw["classes"])
    segments, _ = read_json(path, classes)
    validate_segments(segments, duration=duration, classes=classes, source=str(path))
    items = raw.get("segments") if isinstance(raw, dict) else raw
    prefill = []
    for i, seg in enumerate(segments):
        confidence = items[i].get("confidence")
        if confidence is not None and (isinstance(confidence, bool) or not isinstance(confidence, (int, float))
                                       or not 0.0 <= confidence <= 1.0):
            raise LabelError(f"{path}: segment {i + 1}: confidence must be a number from 0 to 1")
        prefill.append(PrefilledSegment(seg, confidence))
    return classes, prefill


def build_session(args):
    """The LabelSession for the parsed arguments (all input errors are AdcutErrors)."""
    from adcut.audio import probe
    from adcut.labeller.server import LabelSession, PrefilledSegment
    from adcut.labels import DEFAULT_CLASSES, LABEL_SUFFIXES

    episode = Path(args.episode)
    info = probe(episode)  # AudioError for missing, empty or non-audio files
    duration = info.duration
    labels_arg = Path(args.labels) if args.labels else None
    if labels_arg is not None:
        if labels_arg.suffix.lower() not in LABEL_SUFFIXES:
            raise LabelError(f"{labels_arg}: unknown label format (use one of {', '.join(LABEL_SUFFIXES)})")
        if labels_arg.resolve() == episode.resolve():
            raise LabelError(f"{labels_arg}: is the episode itself, not a label file")
        if labels_arg.is_dir():
            raise LabelError(f"{labels_arg}: is a folder, not a label file")
    audacity = labels_arg is not None and labels_arg.suffix.lower() in (".txt", ".lab")
    labels_path = labels_arg if audacity else episode.with_suffix(".txt")
    if labels_path.resolve() == episode.resolve():
        raise LabelError(f"{episode}: cannot save labels beside an episode named .txt; pass --labels FILE")

    classes: tuple[str, ...] = DEFAULT_CLASSES
    prefill: list = []
    source = ""
    if args.model is not None:
        from adcut.checkpoint import resolve_model
        from adcut.segment import SegmentationConfig, detect

        checkpoint = resolve_model(Path(args.model) if args.model else None)
        classes = tuple(checkpoint.class_names)
        log.info("finding %s segments in %s with %s ...", "/".join(classes), episode.name, checkpoint.name)
        detection = detect(episode, checkpoint, SegmentationConfig())
        prefill = [PrefilledSegment(s, c) for s, c in zip(detection.segments, detection.confidences)]
        duration = detection.duration
        source = f"model {checkpoint.name}"
    elif labels_arg is not None and (labels_arg.exists() or not audacity):
        if not labels_arg.exists():
            raise LabelError(f"{labels_arg}: label file not found")
        classes, prefill = read_prefill(labels_arg, classes, duration)
        source = f"labels {labels_arg.name}"
    elif labels_path.exists():
        classes, prefill = read_prefill(labels_path, classes, duration)
        source = f"labels {labels_path.name}"
    if len(classes) < 2:
        raise AdcutError("the labeller needs at least two classes")
    return LabelSession(episode=episode, labels_path=labels_path, classes=classes,
                        background=background_class(classes), declared_duration=duration, prefill=prefill,
                        source=source)


def run(args) -> int:
    from adcut.labeller.server import bind, is_loopback, make_server, page_url

    if args.port is not None and not 0 <= args.port <= 65535:
        raise AdcutError(f"--port {args.port}: must be from 0 to 65535")
    session = build_session(args)
    host = args.host or DEFAULT_HOST
    if not is_loopback(host):
        print(f"adcut: warning: listening on {host}: anyone who can reach this machine and has the address "
              "can hear the episode and change its labels", file=sys.stderr)
    if args.port is not None:
        sock = bind(host, args.port)
    else:
        try:
            sock = bind(host, DEFAULT_PORT)
        except AdcutError:
            sock = bind(host, 0)  # the usual port is taken (another labeller?): any free one
    url = page_url(session, sock, host)
    server = make_server(session)
    print(f"Labelling {session.episode.name}; labels are saved to {session.labels_path}")
    print(f"Open {url}   (Ctrl+C to stop)", flush=True)
    if not args.no_browser:
        import webbrowser

        try:
            webbrowser.open(url)
        except webbrowser.Error:
            log.warning("could not open a browser; open the address above")
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
    return 0
