"""``adcut serve``: the ad-free feeds, their audio and a status page, with the background work."""

from __future__ import annotations

import logging
import signal
import sys

from adcut.cli.feed import add_data_argument
from adcut.errors import AdcutError

log = logging.getLogger(__name__)


def register(subparsers) -> None:
    from adcut.serve.choices import DEFAULT_MARK, PENDING_MODES, PENDING_ORIGINAL
    from adcut.serve.urls import DEFAULT_HOST, DEFAULT_PORT

    parser = subparsers.add_parser(
        "serve",
        help="serve ad-free copies of your podcast feeds to any podcast app",
        description=(
            "Run the web server for the feeds added with 'adcut feed add', refresh them periodically, "
            "and download, detect and cut their newest episodes in the background. Prints the status "
            "page's address; Ctrl+C stops (work in progress is queued again for next time)."
        ),
    )
    parser.add_argument(
        "--host",
        default=DEFAULT_HOST,
        help=f"address to listen on (default {DEFAULT_HOST}: only this machine); another address "
        "needs --public-url",
    )
    parser.add_argument(
        "--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT}; 0: any free port)"
    )
    parser.add_argument(
        "--public-url",
        default=None,
        metavar="URL",
        help="the address apps reach this server at (e.g. http://192.168.1.20:8766), used in feed URLs",
    )
    parser.add_argument(
        "--workers", type=int, default=1, metavar="N", help="episodes processed at once (default 1)"
    )
    parser.add_argument(
        "--refresh-minutes",
        type=float,
        default=30.0,
        metavar="M",
        help="how often upstream feeds are fetched (default 30)",
    )
    parser.add_argument(
        "--episodes",
        type=int,
        default=3,
        metavar="K",
        help="process the K newest episodes of each feed (default 3)",
    )
    parser.add_argument(
        "--keep",
        type=int,
        default=0,
        metavar="N",
        help="keep the files of each feed's N newest episodes only; older ones are deleted at each "
        "refresh and leave the ad-free feed (default 0: keep all)",
    )
    parser.add_argument(
        "--list-pending",
        nargs="?",
        const=PENDING_ORIGINAL,
        default=None,
        choices=PENDING_MODES,
        metavar="original|wait",
        help="list episodes not processed yet instead of leaving them out until they are ready: "
        "'original' (the default of the bare flag) with their original, ad-carrying audio; "
        "'wait' (episodes in the queue) with their ad-free URL, which answers 503 with "
        "Retry-After until the cut is ready, then serves it",
    )
    parser.add_argument(
        "--mark",
        default=DEFAULT_MARK,
        help=f"added to each show's title so apps keep it apart from the original (default {DEFAULT_MARK!r})",
    )
    add_data_argument(parser)
    parser.set_defaults(func=run)


def run(args) -> int:
    from adcut.serve.handler import Options
    from adcut.serve.paths import DataDir
    from adcut.serve.service import Service
    from adcut.serve.urls import is_loopback

    if not is_loopback(args.host):
        if not args.public_url:
            raise AdcutError(
                f"--host {args.host}: other devices will fetch the feeds, so give --public-url "
                "(the address they reach this machine at, e.g. http://192.168.1.20:8766)"
            )
        print(
            f"adcut: warning: listening on {args.host}: anyone on that network who has a feed URL (it carries "
            "the token) can fetch these feeds",
            file=sys.stderr,
        )
    if args.public_url and not args.public_url.startswith(("http://", "https://")):
        raise AdcutError(f"--public-url {args.public_url}: must start with http:// or https://")
    if args.workers < 1 or args.episodes < 0 or args.refresh_minutes <= 0 or args.keep < 0:
        raise AdcutError(
            "--workers must be at least 1, --episodes and --keep at least 0, --refresh-minutes above 0"
        )
    if args.keep and args.keep < args.episodes:
        raise AdcutError(
            f"--keep {args.keep} is less than --episodes {args.episodes}: episodes would be cut and deleted"
        )
    service = Service(
        DataDir(args.data),
        host=args.host,
        port=args.port,
        workers=args.workers,
        refresh_minutes=args.refresh_minutes,
        episodes=args.episodes,
        public_url=args.public_url,
        options=Options(mark=args.mark, list_pending=args.list_pending),
        keep=args.keep,
    )
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    service.start()
    print(f"adcut serve: status page {service.status_url}", flush=True)
    for feed in service.store.feeds():
        from adcut.serve.urls import feed_url

        print(f"  {feed.name}: {feed_url(service.base_url, feed.name, service.token)}", flush=True)
    try:
        service.wait()
    except KeyboardInterrupt:
        print("adcut serve: stopping (episodes in progress are queued again)", file=sys.stderr, flush=True)
    finally:
        service.stop()
    return 0
