"""What every ``python -m m2se.<package>`` command shares: bad input is one line on stderr and exit status 2.

A command-line user gets ``<prog>: error: <what was wrong>`` and no traceback; ``--debug`` shows the
traceback. Bad input is what the library raises for it: ``ValueError`` (including undecodable text and
malformed JSON), ``TypeError`` and ``OSError`` (missing, unreadable or existing files).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from typing import NoReturn

BAD_INPUT_ERRORS = (ValueError, TypeError, OSError)


class CommandLineParser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose usage errors are one line (argparse prints the usage first by default)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


def add_debug_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--debug", action="store_true", help="show the full traceback of an error")


def run_command(
    parser: argparse.ArgumentParser,
    command: Callable[[argparse.Namespace], int],
    argv: Sequence[str] | None = None,
) -> int:
    """Parse ``argv`` and run ``command``; bad input exits 2 with one line (a traceback with ``--debug``)."""
    args = parser.parse_args(argv)
    try:
        return command(args)
    except BAD_INPUT_ERRORS as error:
        if getattr(args, "debug", False):
            raise
        message = " ".join(str(error).split()) or type(error).__name__
        parser.exit(2, f"{parser.prog}: error: {message}\n")
