"""The ``bullbridge`` command, on click.

Each subcommand lives in its own module under ``bullbridge.cli`` with one
function, ``register(root)``, that adds its click command(s) to the root group
with :func:`bullbridge.cli.build.command` / ``group``; a command's body is a plain function
``run(args) -> int`` taking the parsed options as attributes. Adding a command
is one module plus one name in ``COMMAND_MODULES``.

Every command accepts ``--log-level``, ``--log-format`` and ``--debug`` before
or after its name, and fails the one way :mod:`bullbridge.cli.failures`
describes: one line on stderr and a documented exit code - usage errors too
(``bullbridge stats: no such option: --nope (see bullbridge stats --help)``).
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence

import click

from bullbridge.cli.build import ARGV, CONTEXT, process_options
from bullbridge.cli.failures import EXIT_HELP, Exit
from bullbridge.redact import printable

COMMAND_MODULES = ["worker", "demo", "monitor", "monitor_web", "schedule", "doctor", "interop"]


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


# --- the root ---------------------------------------------------------------------------------


def _print_version(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    if value and not ctx.resilient_parsing:
        click.echo(version_line())
        ctx.exit(0)


def build_cli() -> click.Group:
    root = click.Group(
        "bullbridge",
        help="Python on BullMQ queues shared with Node.js",
        params=[
            *process_options(),
            click.Option(
                ["--version"],
                is_flag=True,
                expose_value=False,
                is_eager=True,
                callback=_print_version,
                help="print the version and exit",
            ),
        ],
        context_settings=CONTEXT,
        epilog=EXIT_HELP,
    )
    for name in COMMAND_MODULES:
        importlib.import_module(f"bullbridge.cli.{name}").register(root)
    return root


def _usage_error(exc: click.UsageError) -> int:
    path = exc.ctx.command_path if exc.ctx is not None else "bullbridge"
    message = exc.format_message().rstrip(".")
    print(f"{path}: {printable(message, single_line=True)} (see {path} --help)", file=sys.stderr)
    return int(Exit.USAGE)


def main(argv: Sequence[str] | None = None) -> int:
    raw = list(argv) if argv is not None else sys.argv[1:]
    cli = build_cli()
    try:
        with cli.make_context("bullbridge", list(raw)) as ctx:
            ctx.meta[ARGV] = raw  # for commands that re-run themselves (worker --processes)
            result = cli.invoke(ctx)
    except click.UsageError as exc:
        return _usage_error(exc)
    except click.exceptions.Exit as done:  # --help, --version
        return int(done.exit_code)
    except click.Abort:
        print("bullbridge: interrupted", file=sys.stderr)
        return int(Exit.INTERRUPTED)
    return int(result) if isinstance(result, int) else 0


if __name__ == "__main__":
    sys.exit(main())
