"""The ``ctmevo`` command line. Each sub-command imports what it needs only when it runs, so ``--help`` is fast.

Exit status: 0 on success, 2 on bad input (a clear message names the file, the field, the value and what is
allowed), 1 on other failures, 130 after Ctrl-C.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

EXIT_BAD_INPUT = 2


class UsageError(Exception):
    """Bad input from the user: printed without a traceback, exit status 2."""


def _cmd_validate(args: argparse.Namespace) -> int:
    import yaml

    path = Path(args.file)
    if not path.is_file():
        raise UsageError(f"{path}: no such file")
    try:
        doc = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise UsageError(f"{path}: malformed YAML: {exc}") from None
    if isinstance(doc, dict) and "genes" in doc:
        from genome import GenomeError, SchemaError
        from genome.io import genome_from_document

        try:
            genome = genome_from_document(doc, source=str(path))
        except (GenomeError, SchemaError) as exc:
            raise UsageError(str(exc)) from None
        print(f"{path}: valid genome {genome.hash}: {_genome_summary(genome, args.task)}")
        return 0
    from search.config import ConfigError, parse_campaign_config

    try:
        config = parse_campaign_config(doc, source=str(path))
    except ConfigError as exc:
        raise UsageError(str(exc)) from None
    print(f"{path}: valid campaign '{config.name}': {config.summary()}")
    return 0


def _genome_summary(genome, task_name: str | None) -> str:
    from genome import estimate

    if task_name is None:
        task_name = "parity"
    from ctm import make_task
    from ctm.result import TaskSpec

    shape = make_task(TaskSpec(name=task_name)).shape
    cost = estimate(genome, shape)
    return (f"T={genome.ticks} M={genome.memory_length} D={genome.d_model} D_in={genome.d_input}, "
            f"{cost.params:,} parameters and {cost.macs_per_forward:,} MACs per forward on {task_name}")


@dataclass(frozen=True)
class Command:
    help: str
    setup: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


COMMANDS: dict[str, Command] = {}


def register(name: str, help_text: str, setup: Callable[[argparse.ArgumentParser], None],
             run: Callable[[argparse.Namespace], int]) -> None:
    """Add a sub-command; ``setup`` adds its arguments, ``run`` returns the exit status."""
    COMMANDS[name] = Command(help_text, setup, run)


def _setup_validate(p: argparse.ArgumentParser) -> None:
    p.add_argument("file", help="a genome file (with 'genes:') or a campaign file")
    p.add_argument("--task", default=None, help="task for the genome's cost summary (default: parity)")


register("validate", "check a genome or campaign file and print a one-line summary", _setup_validate,
         _cmd_validate)


def build_parser() -> argparse.ArgumentParser:
    import search.commands
    import search.train_commands  # noqa: F401  (registers export and train)
    parser = argparse.ArgumentParser(
        prog="ctmevo",
        description="Open-ended architecture search for Continuous Thought Machines.",
        epilog="Run 'ctmevo COMMAND --help' for a command's options.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, command in COMMANDS.items():
        p = sub.add_parser(name, help=command.help, description=command.help[:1].upper() + command.help[1:] + ".")
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
        return 130


if __name__ == "__main__":  # ``python -m search.cli``: run the registry's module, not a second copy of it
    from search.cli import main as registered_main

    sys.exit(registered_main())
