"""``livekit-avsync`` entry point: an argparse front end whose subcommands live in sibling modules.

A subcommand ``NAME`` is the module ``livekit_avsync.cli.NAME_cmd`` exposing
``add_parser(subparsers) -> argparse.ArgumentParser`` (adds and returns its parser) and
``run(args) -> int`` (the exit code). Modules that are absent are simply not offered; one that
fails to import is offered but explains why it cannot run. Errors end in one line on stderr and
a non-zero exit code, never a traceback (unless ``--debug``).
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import logging
import sys
from collections.abc import Callable, Sequence
from typing import NoReturn

from . import CLIError

__all__ = ["COMMANDS", "CLIError", "build_parser", "main"]

PROG = "livekit-avsync"
COMMANDS = ("demo", "measure", "bench", "view")  # looked up as livekit_avsync.cli.<name>_cmd

Runner = Callable[[argparse.Namespace], int]


class _Parser(argparse.ArgumentParser):
    """ArgumentParser whose usage errors are a single line on stderr (exit code 2)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def _unavailable(name: str, reason: str) -> Runner:
    def run(args: argparse.Namespace) -> int:
        raise CLIError(f"the {name!r} command is unavailable: {reason}")

    return run


def _register(subparsers: argparse._SubParsersAction, name: str) -> None:
    module_name = f"{__package__}.{name}_cmd"
    if importlib.util.find_spec(module_name) is None:
        return
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:  # e.g. an optional dependency of that command is missing
        parser = subparsers.add_parser(name, help=f"(unavailable: {exc})")
        parser.set_defaults(_run=_unavailable(name, str(exc)), _command=name)
        return
    parser = module.add_parser(subparsers)
    parser.set_defaults(_run=module.run, _command=name)


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with every available subcommand."""
    parser = _Parser(
        prog=PROG,
        description="Lip-synced avatar audio/video for LiveKit agents: tools.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress (INFO level)")
    parser.add_argument(
        "--debug", action="store_true", help="show the full traceback when a command fails"
    )
    subparsers = parser.add_subparsers(title="commands", metavar="COMMAND")
    for name in COMMANDS:
        _register(subparsers, name)
    parser.set_defaults(_commands=tuple(subparsers.choices))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line with ``argv`` (default ``sys.argv[1:]``); return the exit code."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help or a usage error, already printed
        return exc.code if isinstance(exc.code, int) else 1
    run: Runner | None = getattr(args, "_run", None)
    if run is None:
        commands = ", ".join(args._commands)
        print(f"{PROG}: error: choose a command ({commands}) (see --help)", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        return run(args)
    except KeyboardInterrupt:
        print(f"{PROG} {args._command}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        if args.debug:
            raise
        message = str(exc) if isinstance(exc, CLIError | OSError | ValueError) else repr(exc)
        one_line = " ".join(message.split())
        print(f"{PROG} {args._command}: error: {one_line}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
