"""The ``ctmevo`` command line: the parser and ``main``. Commands live in their modules (``COMMANDS`` lists);
each imports what it needs only when it runs, so ``ctmevo --help`` is fast."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from search.cli import campaign_commands, model_commands, train_commands, validate
from search.cli.base import EXIT_BAD_INPUT, EXIT_INTERRUPTED, Command, UsageError

__all__ = ["build_parser", "main"]

COMMANDS: list[Command] = [*validate.COMMANDS, *campaign_commands.COMMANDS, *train_commands.COMMANDS,
                           *model_commands.COMMANDS]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ctmevo",
        description="Open-ended architecture search for Continuous Thought Machines.",
        epilog="Run 'ctmevo COMMAND --help' for a command's options.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for command in COMMANDS:
        p = sub.add_parser(command.name, help=command.help,
                           description=command.help[:1].upper() + command.help[1:] + ".")
        command.setup(p)
        p.set_defaults(_run=command.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    import logging
    import os

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")  # its INFO lines (creating tables, ...) are noise here
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args._run(args) or 0)
    except UsageError as exc:
        print(f"ctmevo {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print(f"ctmevo {args.command}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
