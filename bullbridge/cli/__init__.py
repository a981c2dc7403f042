"""The ``bullbridge`` command.

Each subcommand lives in its own module under ``bullbridge.cli`` with two
functions: ``register(subparsers)`` adds its parser(s) and sets
``func=<callable(args) -> int>`` as a default. Adding a command is one module
plus one name in ``COMMAND_MODULES``.

Every command accepts ``--log-level``, ``--log-format`` and ``--debug`` before
or after its name, and fails the one way :mod:`bullbridge.cli.failures`
describes: one line on stderr and a documented exit code.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

from bullbridge.cli.failures import EXIT_HELP, Exit, debug_requested, run_command
from bullbridge.cli.logs import FORMATS, configure, level_name
from bullbridge.redact import printable

COMMAND_MODULES = ["worker", "demo", "monitor", "monitor_web", "schedule", "doctor", "interop"]
#: Commands that log at INFO unless told otherwise (a long-running process says what it does).
INFO_BY_DEFAULT = ("worker",)


class Parser(argparse.ArgumentParser):
    """argparse, failing in one line: ``bullbridge stats: <problem> (see bullbridge stats --help)``."""

    def error(self, message: str) -> NoReturn:
        print(f"{self.prog}: {printable(message, single_line=True)} (see {self.prog} --help)", file=sys.stderr)
        sys.exit(int(Exit.USAGE))


def _add_process_options(parser: argparse.ArgumentParser, *, top: bool) -> None:
    """``--log-level``, ``--log-format``, ``--debug``: on the top parser with their defaults,
    on every subcommand with none (so they may come after the command's name too)."""
    unset: Any = None if top else argparse.SUPPRESS
    group = parser.add_argument_group("process options")
    group.add_argument(
        "--log-level",
        type=level_name,
        default=unset,
        metavar="LEVEL",
        help="DEBUG, INFO, WARNING, ERROR (default: INFO for worker, WARNING otherwise)",
    )
    group.add_argument(
        "--log-format", choices=FORMATS, default=unset, help="text (default) or json: one object per line"
    )
    group.add_argument(
        "--debug",
        action="store_true",
        default=False if top else argparse.SUPPRESS,
        help="print a traceback with errors (also BULLBRIDGE_DEBUG=1)",
    )


def _subparsers(parser: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
    found: list[argparse.ArgumentParser] = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in dict.fromkeys(action.choices.values()):
                found.append(child)
                found.extend(_subparsers(child))
    return found


def version_line() -> str:
    """``bullbridge 0.2.0 (Python 3.11.2, port bullmq 3.4.4)``: what ``--version`` prints. The
    version's one source is ``bullbridge.__version__`` (pyproject reads it); the port's comes from
    its installed metadata, so nothing heavy is imported."""
    import platform
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as installed

    from bullbridge import __version__

    try:
        port = installed("bullmq")
    except PackageNotFoundError:  # pragma: no cover - a broken install
        port = "not installed"
    return f"bullbridge {__version__} (Python {platform.python_version()}, port bullmq {port})"


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="bullbridge", description="Python on BullMQ queues shared with Node.js", epilog=EXIT_HELP)
    _add_process_options(parser, top=True)
    parser.add_argument("--version", action="version", version=version_line(), help="print the version and exit")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(f"bullbridge.cli.{name}").register(sub)
    for child in _subparsers(parser):
        _add_process_options(child, top=False)
        if child.epilog is None:
            child.epilog = "exit codes: see bullbridge --help"
    return parser


def command_name(args: argparse.Namespace) -> str:
    """``stats``, ``queue retry``, ``schedule list``...: how the failure line names the command."""
    parts = [args.command]
    for attr in ("action", "schedule_command", "interop_command", "migrate_command"):
        value = getattr(args, attr, None)
        if isinstance(value, str):
            parts.append(value)
    return " ".join(parts)


def main(argv: Sequence[str] | None = None) -> int:
    raw = list(argv) if argv is not None else sys.argv[1:]
    args = build_parser().parse_args(raw)
    args.argv = raw  # for commands that re-run themselves (worker --processes)
    args.debug = bool(getattr(args, "debug", False)) or debug_requested(raw)
    level = args.log_level or ("INFO" if args.command in INFO_BY_DEFAULT else "WARNING")
    configure(level, args.log_format or "text")
    return run_command(command_name(args), lambda: int(args.func(args)), debug=args.debug)


if __name__ == "__main__":
    sys.exit(main())
