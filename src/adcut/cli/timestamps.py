"""``adcut timestamps``: convert between seconds and [h:]mm:ss."""

from __future__ import annotations

from adcut.core.units import format_time, parse_time
from adcut.errors import AdcutError


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "timestamps",
        help="convert times between seconds and h:mm:ss",
        description="Convert each time: seconds (600, 90.5) become h:mm:ss, and h:mm:ss or mm:ss become seconds.",
    )
    parser.add_argument("times", nargs="+", metavar="TIME", help="e.g. 1:30, 01:02:03, 600")
    parser.add_argument(
        "--decimals", type=int, default=None, help="digits after the second (default: as needed, up to 3)"
    )
    parser.set_defaults(func=run)


def run(args) -> int:
    for text in args.times:
        try:
            seconds = parse_time(text)
        except ValueError:
            raise AdcutError(
                f"{text!r} is not a time (use seconds like 90.5, or [h:]mm:ss like 1:02:03)"
            ) from None
        if ":" in text:
            print(f"{text} = {seconds:g}")
        else:
            decimals = args.decimals if args.decimals is not None else (0 if seconds == int(seconds) else 3)
            print(f"{text} = {format_time(seconds, decimals)}")
    return 0
