"""The ``adcut`` command line: parses arguments and hands over to one module per command.

Each module in this package (``adcut.cli.<command>``) defines ``register(subparsers)``, which adds its parser and sets
``func``. Command modules import heavy libraries (torch) inside ``func``, so ``--help`` is instant.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import logging
import sys

from adcut import __version__
from adcut.errors import AdcutError

# Order here is the order in ``adcut --help``.
COMMAND_MODULES = (
    "demo",
    "dataset",
    "train",
    "classify",
    "evaluate",
    "process",
    "label",
    "models",
    "smooth",
    "timestamps",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="adcut",
        description=(
            "Learn from a few labelled episodes to tell ads from content, then find and cut "
            "them out of new episodes. Typical flow: label -> dataset build -> train -> process."
        ),
    )
    parser.add_argument("--version", action="version", version=f"adcut {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output (-vv for debug)")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bars, only results and errors")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(f"adcut.cli.{name}")
        except ModuleNotFoundError as error:
            if error.name == f"adcut.cli.{name}":
                continue  # command not built yet
            raise
        module.register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    level = logging.WARNING if args.quiet else (logging.INFO if args.verbose == 0 else logging.DEBUG)
    logging.basicConfig(level=level, format="%(message)s", stream=sys.stderr, force=True)
    try:
        result = args.func(args)
        return int(result or 0)
    except AdcutError as error:
        print(f"adcut: error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("adcut: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 1
    except OSError as error:
        if error.errno == errno.ENOSPC:
            print("adcut: error: no space left on the device", file=sys.stderr)
        else:
            where = f"{error.filename}: " if error.filename else ""
            print(f"adcut: error: {where}{error.strerror or error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
