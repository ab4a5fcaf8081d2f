"""``adcut label``: mark or review an episode's ads in a local browser page."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from adcut.cli.segmentation import add_segmentation_arguments, segmentation_config
from adcut.errors import AdcutError
from adcut.labeller.session import build_session

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
    parser.add_argument(
        "episode", metavar="EPISODE", help="the audio file to label (mp3, m4a, wav, ogg, flac, ...)"
    )
    parser.add_argument(
        "--labels",
        metavar="FILE",
        default=None,
        help=(
            "labels to start from: an Audacity .txt (also where saving writes; created if missing), or a "
            "'process' run's .json/.csv (then saving writes EPISODE.txt). Default: EPISODE.txt if it exists"
        ),
    )
    parser.add_argument(
        "--model",
        metavar="M",
        nargs="?",
        const="",
        default=None,
        help="pre-fill with model M's segments (just --model: the newest in ./models/), "
        "least confident listed first for review",
    )
    parser.add_argument(
        "--port",
        type=int,
        default=None,
        help=f"port to listen on (default {DEFAULT_PORT}, or a free one if that is taken; 0: any free port)",
    )
    parser.add_argument(
        "--host",
        default=None,
        help=f"address to listen on (default {DEFAULT_HOST}: only this machine can connect)",
    )
    parser.add_argument(
        "--no-browser", action="store_true", help="only print the page's address, do not open a browser"
    )
    add_segmentation_arguments(parser)
    parser.set_defaults(func=run)


def run(args) -> int:
    from adcut.labeller.server import bind, is_loopback, make_server, page_url

    if args.port is not None and not 0 <= args.port <= 65535:
        raise AdcutError(f"--port {args.port}: must be from 0 to 65535")
    session = build_session(
        Path(args.episode),
        Path(args.labels) if args.labels else None,
        prefill_model=args.model is not None,
        model=Path(args.model) if args.model else None,
        segmentation=segmentation_config(args),
    )
    host = args.host or DEFAULT_HOST
    if not is_loopback(host):
        print(
            f"adcut: warning: listening on {host}: anyone who can reach this machine and has the address "
            "can hear the episode and change its labels",
            file=sys.stderr,
        )
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
