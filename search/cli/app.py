"""The ``ctmevo`` command line: the parser and ``main``. Commands live in their modules (``COMMANDS`` lists);
each imports what it needs only when it runs, so ``ctmevo --help`` is fast.

``main`` is the last line of defence of the rule "a message, never a traceback": besides :class:`UsageError`
(exit 2) and Ctrl-C (130) it turns the bad-input errors of every layer into exit 2, operational failures (a
cluster that does not answer, a full disk) into exit 1 with one line, and anything unexpected into one line
naming a file that holds the traceback (exit 1). ``CTMEVO_TRACEBACK=1`` re-raises instead, for debugging.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import traceback
from collections.abc import Sequence
from pathlib import Path

from search.cli import campaign_commands, model_commands, train_commands, ui_command, validate
from search.cli.base import (
    EXIT_BAD_INPUT,
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    Command,
    OperationalError,
    UsageError,
    is_bad_input,
)

__all__ = ["build_parser", "main"]

COMMANDS: list[Command] = [*validate.COMMANDS, *campaign_commands.COMMANDS, *ui_command.COMMANDS,
                           *train_commands.COMMANDS, *model_commands.COMMANDS]


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

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("urllib3").setLevel(logging.ERROR)  # its retry lines only repeat our own message
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")  # its INFO lines (creating tables, ...) are noise here
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args._run(args) or 0)
    except UsageError as exc:
        return _error(args.command, str(exc), EXIT_BAD_INPUT)
    except OperationalError as exc:
        return _error(args.command, str(exc), EXIT_FAILED)
    except KeyboardInterrupt:
        print(f"ctmevo {args.command}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # stdout closed early (ctmevo status DIR | head -1): nothing left to say
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_FAILED
    except Exception as exc:
        if os.environ.get("CTMEVO_TRACEBACK"):
            raise
        return _unexpected(args.command, exc)


def _error(command: str, message: str, status: int) -> int:
    print(f"ctmevo {command}: error: {message}", file=sys.stderr)
    return status


def _unexpected(command: str, exc: Exception) -> int:
    """One line for an exception no command turned into a message: bad input (exit 2), an operating-system
    failure (exit 1), or a bug (exit 1; the traceback goes to a file the line names)."""
    if is_bad_input(exc):
        return _error(command, str(exc), EXIT_BAD_INPUT)
    if type(exc).__name__ in ("PoolDisconnected", "ClusterUnreachable"):
        return _error(command, f"{exc}\nStart the Ray cluster (or fix workers.address), then run the command "
                               "again; every completed evaluation is saved", EXIT_FAILED)
    if "mlflow" in sys.modules and type(exc).__module__.startswith(("mlflow", "requests", "urllib3")):
        from search.tracking.client import is_transient, server_down

        if is_transient(exc):
            uri = os.environ.get("MLFLOW_TRACKING_URI") or "the tracking URI"
            return _error(command, f"{server_down(uri, exc)}. Start it (or check the tracking URI), then run the "
                                   "command again", EXIT_FAILED)
    if isinstance(exc, OSError):
        where = f"{exc.filename}: " if exc.filename else ""
        what = f"[Errno {exc.errno}] {exc.strerror}" if exc.strerror else f"{type(exc).__name__}: {exc}"
        return _error(command, f"{where}{what}\nFix the cause (free space, permissions, a mount), then run the "
                               "command again", EXIT_FAILED)
    text = str(exc).strip().splitlines()
    summary = f"{type(exc).__name__}: {text[0][:300]}" if text else type(exc).__name__
    report = Path(tempfile.gettempdir()) / f"ctmevo-error-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.txt"
    try:
        report.write_text(f"ctmevo {' '.join(sys.argv[1:])}\n\n" + "".join(traceback.format_exception(exc)))
        where = f"the full traceback is in {report}"
    except OSError:
        where = "run it again with CTMEVO_TRACEBACK=1 to see the traceback"
    return _error(command, f"unexpected failure: {summary}\nThis is a bug in ctmevo, not in your input: {where}; "
                           "please report it", EXIT_FAILED)
