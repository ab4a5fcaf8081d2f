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
    "cut",
    "label",
    "feed",
    "serve",
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
    _add_global_flags(parser, after_command=False)
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(f"adcut.cli.{name}").register(subparsers)
    for command in _leaf_parsers(parser):
        _add_global_flags(command, after_command=True)
    return parser


# The global flags are also accepted after the command (``adcut process show.mp3 -q``). There they are
# stored under their own names, because a subcommand's parser starts from an empty namespace and would
# otherwise overwrite what was given before the command; ``main`` adds the two together.
_AFTER = "_after_command"


def _add_global_flags(parser: argparse.ArgumentParser, after_command: bool) -> None:
    suffix = _AFTER if after_command else ""
    unset = argparse.SUPPRESS  # after the command: absent unless given
    parser.add_argument(
        "-v",
        "--verbose",
        dest=f"verbose{suffix}",
        action="count",
        default=unset if after_command else 0,
        help="more log output (-vv for debug)",
    )
    parser.add_argument(
        "-q",
        "--quiet",
        dest=f"quiet{suffix}",
        action="store_true",
        default=unset if after_command else False,
        help="no progress bars, only results and errors",
    )


def _leaf_parsers(parser: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
    """Every parser below ``parser`` that has no subcommands of its own (``process``, ``dataset build``, ...)."""
    leaves = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in dict.fromkeys(action.choices.values()):  # aliases map to the same parser
                leaves.extend(_leaf_parsers(child) or [child])
    return leaves


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    args.verbose += vars(args).pop(f"verbose{_AFTER}", 0)
    args.quiet = args.quiet or vars(args).pop(f"quiet{_AFTER}", False)
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
